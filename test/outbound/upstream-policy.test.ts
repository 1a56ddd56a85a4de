// The outbound policy as an operator sets it: UPSTREAM_* variables → Config → client options, with
// documented defaults, and a bad value refused with the variable named.

import t from 'tap'
import { ConfigError } from '../../core/config.ts'
import { clientOptions } from '../../outbound/plugin.ts'
import { testConfig } from '../helpers/app.ts'

t.test('the defaults: 3 s per call, 2 retries within a 20 % + 5/s budget, breaker at 50 % of 10 for 10 s, 64 + 64 slots', async (t) => {
  const { upstreams } = testConfig()
  t.equal(upstreams.quotesUrl, undefined)
  t.same(upstreams.policy, {
    timeoutMs: 3000,
    connectTimeoutMs: 1000,
    headersTimeoutMs: 2000,
    bodyTimeoutMs: 2000,
    maxRetries: 2,
    retryBudgetRatio: 0.2,
    retryMinPerSecond: 5,
    breakerErrorPercent: 50,
    breakerVolume: 10,
    breakerResetMs: 10_000,
    maxConcurrency: 64,
    maxQueue: 64
  })
})

t.test('every variable reaches the client options', async (t) => {
  const { upstreams } = testConfig({
    UPSTREAM_QUOTES_URL: 'http://quotes.internal:8080/v1',
    UPSTREAM_TIMEOUT_MS: '900',
    UPSTREAM_CONNECT_TIMEOUT_MS: '50',
    UPSTREAM_HEADERS_TIMEOUT_MS: '400',
    UPSTREAM_BODY_TIMEOUT_MS: '300',
    UPSTREAM_MAX_RETRIES: '1',
    UPSTREAM_RETRY_BUDGET_PERCENT: '10',
    UPSTREAM_RETRY_MIN_PER_SECOND: '0',
    UPSTREAM_BREAKER_ERROR_PERCENT: '25',
    UPSTREAM_BREAKER_VOLUME: '20',
    UPSTREAM_BREAKER_RESET_MS: '5000',
    UPSTREAM_MAX_CONCURRENCY: '8',
    UPSTREAM_MAX_QUEUE: '0'
  })
  t.equal(upstreams.quotesUrl, 'http://quotes.internal:8080/v1')
  t.same(clientOptions(upstreams.policy), {
    timeoutMs: 900,
    connectTimeoutMs: 50,
    headersTimeoutMs: 400,
    bodyTimeoutMs: 300,
    maxRetries: 1,
    retryBudget: { ratio: 0.1, minPerSecond: 0, windowMs: 10_000 },
    breaker: { errorThresholdPercentage: 25, volumeThreshold: 20, resetTimeoutMs: 5000, rollingWindowMs: 10_000 },
    maxConcurrency: 8,
    maxQueue: 0
  })
})

t.test('a bad upstream setting is refused with the variable and the expected form', async (t) => {
  const bad: Array<[Record<string, string>, RegExp]> = [
    [{ UPSTREAM_QUOTES_URL: 'quotes.internal' }, /UPSTREAM_QUOTES_URL .*expected an http\(s\) base URL/],
    [{ UPSTREAM_TIMEOUT_MS: '10' }, /UPSTREAM_TIMEOUT_MS .*"10".*milliseconds, 50–600000/],
    [{ UPSTREAM_MAX_RETRIES: 'many' }, /UPSTREAM_MAX_RETRIES .*"many".*an integer 0–10/],
    [{ UPSTREAM_RETRY_BUDGET_PERCENT: '150' }, /UPSTREAM_RETRY_BUDGET_PERCENT .*a percentage 0–100/],
    [{ UPSTREAM_BREAKER_ERROR_PERCENT: '0' }, /UPSTREAM_BREAKER_ERROR_PERCENT .*a percentage 1–100/],
    [{ UPSTREAM_BREAKER_RESET_MS: '5' }, /UPSTREAM_BREAKER_RESET_MS .*milliseconds, 100–600000/],
    [{ UPSTREAM_MAX_CONCURRENCY: '0' }, /UPSTREAM_MAX_CONCURRENCY .*an integer 1–10000/]
  ]
  for (const [env, message] of bad) {
    const err = (() => { try { testConfig(env) } catch (e) { return e } })()
    t.ok(err instanceof ConfigError, Object.keys(env).join())
    t.match((err as Error).message, message)
  }
})
