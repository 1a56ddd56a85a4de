// GET /api/v1/quotes/:symbol against a real fault-injecting upstream on loopback: what a client of
// Keel gets when the upstream is healthy, failing, slow, broken or behind an open breaker, and what
// operators see in the metrics and on /health/ready.

import t, { type Test } from 'tap'
import { performance } from 'node:perf_hooks'
import { request as httpRequest } from 'node:http'
import { connect as http2Connect, constants as h2 } from 'node:http2'
import { build, listen, spawnServer } from '../../helpers/app.ts'
import type { App } from '../../../app.ts'
import { scrapeMetrics } from '../../helpers/metrics.ts'
import { fault, startFaultUpstream, startNonHttpUpstream, type FaultUpstream } from '../../helpers/fault-upstream.ts'

// Timers fire late on a busy machine, never early: generous above, tight below.
const LATE_MS = 200

interface Teardown { teardown: (fn: () => unknown) => void }

async function quotesApp (t: Teardown, env: Record<string, string> = {}, upstream?: FaultUpstream) {
  const up = upstream ?? await startFaultUpstream(t)
  const built = await build(t, { UPSTREAM_QUOTES_URL: up.url, ...env })
  return { ...built, upstream: up }
}

/** One successful call first: a fresh app's first request pays one-off costs that timing tests must not measure. */
async function warmUp (app: App, upstream: FaultUpstream): Promise<void> {
  upstream.script(fault.ok())
  const res = await app.inject('/api/v1/quotes/WARM')
  if (res.statusCode !== 200) throw new Error(`warm-up failed: ${res.statusCode}`)
}

function assertProblem (t: Test, res: { statusCode: number, headers: Record<string, unknown>, body: string }, status: number, code: string): void {
  t.equal(res.statusCode, status)
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  const body = JSON.parse(res.body) as Record<string, unknown>
  t.match(body, { status, code, instance: /^\/api\/v1\/quotes\// })
  // Nothing about the upstream leaks: no address, no upstream status, no internal code or stack.
  t.notMatch(res.body, /127\.0\.0\.1|UPSTREAM_|ECONN|UND_ERR|stack|at .*\.ts/)
}

t.test('a quote comes from the upstream, public, with only the documented fields', async (t) => {
  const { app, upstream } = await quotesApp(t)
  upstream.script(fault.ok({ symbol: 'ACME', price: 12.5, currency: 'EUR', asOf: '2026-01-02T03:04:05Z', internalCost: 3 }))
  const res = await app.inject('/api/v1/quotes/ACME')
  t.equal(res.statusCode, 200)
  t.same(res.json(), { symbol: 'ACME', price: 12.5, currency: 'EUR', asOf: '2026-01-02T03:04:05Z' })
  t.equal(upstream.requests[0]!.url, '/quotes/ACME')
  t.equal(upstream.requests[0]!.headers.accept, 'application/json')
})

t.test('a malformed symbol is a 400 and never reaches the upstream', async (t) => {
  const { app, upstream } = await quotesApp(t)
  for (const bad of ['.hidden', '-x', 'ABCDEFGHIJKLM', 'A%2FB', 'A_B', 'A%00']) {
    const res = await app.inject(`/api/v1/quotes/${bad}`)
    t.equal(res.statusCode, 400, bad)
    t.equal(res.json().code, 'VALIDATION')
  }
  // `..` never becomes a path segment upstream: normalised away before routing, or refused by the pattern.
  t.ok([400, 404].includes((await app.inject('/api/v1/quotes/%2E%2E')).statusCode))
  t.equal(upstream.count, 0)
})

t.test('a symbol the upstream does not know is a 404', async (t) => {
  const { app, upstream } = await quotesApp(t)
  upstream.script(fault.status(404))
  const res = await app.inject('/api/v1/quotes/NOPE')
  assertProblem(t, res, 404, 'NOT_FOUND')
  t.equal(upstream.count, 1, 'a 404 is not retried')
})

t.test('an upstream failing after retries is a 502 problem+json', async (t) => {
  const { app, upstream } = await quotesApp(t, { UPSTREAM_MAX_RETRIES: '2' })
  upstream.otherwise(fault.unavailable())
  const res = await app.inject('/api/v1/quotes/ACME')
  assertProblem(t, res, 502, 'BAD_GATEWAY')
  t.equal(upstream.count, 3, 'one call and two retries')
})

t.test('connection reset, slow body and invalid JSON each answer 502 problem+json', async (t) => {
  const { app, upstream } = await quotesApp(t, { UPSTREAM_MAX_RETRIES: '0', UPSTREAM_BODY_TIMEOUT_MS: '200' })
  for (const [what, f] of [['connection reset', fault.reset()], ['slow body', fault.slowBody(3000)], ['invalid JSON', fault.invalidJson()]] as const) {
    upstream.script(f)
    const res = await app.inject('/api/v1/quotes/ACME')
    t.test(what, async (t) => assertProblem(t, res, 502, 'BAD_GATEWAY'))
  }
  t.equal(upstream.count, 3)
})

t.test('an upstream answering something other than HTTP is a 502 problem+json and counts against its breaker', async (t) => {
  const garbage = await startNonHttpUpstream(t)
  const { app } = await build(t, {
    UPSTREAM_QUOTES_URL: garbage.url, UPSTREAM_MAX_RETRIES: '0', UPSTREAM_BREAKER_VOLUME: '2', UPSTREAM_BREAKER_ERROR_PERCENT: '50'
  })
  for (let i = 0; i < 2; i++) assertProblem(t, await app.inject('/api/v1/quotes/ACME'), 502, 'BAD_GATEWAY')
  t.equal(garbage.count, 2)
  assertProblem(t, await app.inject('/api/v1/quotes/ACME'), 503, 'SERVICE_UNAVAILABLE')
  t.equal(garbage.count, 2, 'the open breaker kept the third call away from it')
})

t.test('an upstream slower than the deadline is a 504 at the deadline', async (t) => {
  const { app, upstream } = await quotesApp(t, { UPSTREAM_TIMEOUT_MS: '400' })
  await warmUp(app, upstream)
  upstream.otherwise(fault.slowHeaders(3000))
  const started = performance.now()
  const res = await app.inject('/api/v1/quotes/ACME')
  const elapsed = performance.now() - started
  assertProblem(t, res, 504, 'GATEWAY_TIMEOUT')
  t.ok(elapsed >= 395 && elapsed <= 400 + LATE_MS, `answered after ${elapsed.toFixed(0)} ms (deadline 400)`)
  t.equal(upstream.count, 2, 'one attempt after the warm-up')
})

t.test('the inbound x-request-timeout-ms caps the outbound deadline and is passed on, reduced', async (t) => {
  const { app, upstream } = await quotesApp(t, { UPSTREAM_TIMEOUT_MS: '5000' })
  await warmUp(app, upstream)
  upstream.otherwise(fault.slowHeaders(3000))
  const started = performance.now()
  const res = await app.inject({ url: '/api/v1/quotes/ACME', headers: { 'x-request-timeout-ms': '400' } })
  const elapsed = performance.now() - started
  assertProblem(t, res, 504, 'GATEWAY_TIMEOUT')
  t.ok(elapsed >= 395 && elapsed <= 400 + LATE_MS, `answered after ${elapsed.toFixed(0)} ms (inbound budget 400, client timeout 5000)`)
  const left = Number(upstream.requests[1]!.headers['x-request-timeout-ms'])
  t.ok(left > 0 && left <= 400, `the upstream was told ${left} ms`)
})

// A hanging upstream, one slot and no queue: while the abandoned call held its slot, the next call would be refused (503).
const ONE_SLOT = { UPSTREAM_MAX_CONCURRENCY: '1', UPSTREAM_MAX_QUEUE: '0', UPSTREAM_TIMEOUT_MS: '5000', UPSTREAM_HEADERS_TIMEOUT_MS: '5000' }

async function assertSlotFreed (t: Test, app: App, upstream: FaultUpstream): Promise<void> {
  await upstream.waitForAbandoned(1, 2000)
  upstream.otherwise(fault.ok())
  const next = await app.inject('/api/v1/quotes/NEXT')
  t.equal(next.statusCode, 200, 'the next call got the only slot at once')
  t.match(await scrapeMetrics(app), /upstream_call_duration_seconds_count\{upstream="quotes",outcome="aborted"\} 1/)
}

t.test('a client that goes away mid-call (HTTP/1.1) cancels the upstream call and frees its slot at once', async (t) => {
  const upstream = await startFaultUpstream(t, fault.slowHeaders(5000))
  const { app, url } = await listen(t, { TLS: 'off', UPSTREAM_QUOTES_URL: upstream.url, ...ONE_SLOT })
  const req = httpRequest(`${url}/api/v1/quotes/GONE`)
  req.on('error', () => {})
  req.end()
  await upstream.waitForRequests(1)
  req.destroy()
  await assertSlotFreed(t, app, upstream)
})

t.test('a client that cancels its HTTP/2 stream mid-call cancels the upstream call and frees its slot at once', async (t) => {
  const upstream = await startFaultUpstream(t, fault.slowHeaders(5000))
  const { app, url, ca } = await listen(t, { UPSTREAM_QUOTES_URL: upstream.url, ...ONE_SLOT })
  const session = http2Connect(url, { ca })
  t.teardown(() => session.destroy())
  session.on('error', () => {})
  const stream = session.request({ ':path': '/api/v1/quotes/GONE' })
  stream.on('error', () => {})
  stream.end()
  await upstream.waitForRequests(1)
  stream.close(h2.NGHTTP2_CANCEL)
  await assertSlotFreed(t, app, upstream)
})

t.test('a malformed x-request-timeout-ms is a 400', async (t) => {
  const { app, upstream } = await quotesApp(t)
  for (const bad of ['soon', '0', '-5', '1.5', '600001']) {
    const res = await app.inject({ url: '/api/v1/quotes/ACME', headers: { 'x-request-timeout-ms': bad } })
    t.equal(res.statusCode, 400, bad)
    t.match(res.json(), { code: 'VALIDATION', errors: [{ path: /x-request-timeout-ms/ }] })
  }
  t.equal(upstream.count, 0)
})

t.test('breaker: opens after the threshold, then answers 503 + Retry-After without the upstream and fast', async (t) => {
  const { app, upstream, logs } = await quotesApp(t, {
    UPSTREAM_MAX_RETRIES: '0', UPSTREAM_BREAKER_VOLUME: '4', UPSTREAM_BREAKER_ERROR_PERCENT: '50', UPSTREAM_BREAKER_RESET_MS: '800'
  })
  upstream.otherwise(fault.status(500))
  for (let i = 0; i < 4; i++) t.equal((await app.inject('/api/v1/quotes/x')).statusCode, 502)
  await logs.waitFor(/upstream circuit opened/)

  const res = await app.inject('/api/v1/quotes/x')
  assertProblem(t, res, 503, 'SERVICE_UNAVAILABLE')
  t.match(res.headers['retry-after'], /^[1-9]\d*$/)
  // The median of several answers: one slow scheduling blip must not decide the test.
  const times: number[] = []
  for (let i = 0; i < 9; i++) {
    const started = performance.now()
    const r = await app.inject('/api/v1/quotes/x')
    times.push(performance.now() - started)
    t.equal(r.statusCode, 503)
  }
  const median = times.sort((a, b) => a - b)[4]!
  t.ok(median < 5, `answered in ${median.toFixed(2)} ms (median of 9)`)
  t.equal(upstream.count, 4, 'no request reached the upstream while open')

  const ready = await app.inject('/health/ready')
  t.equal(ready.statusCode, 200, 'an open breaker degrades readiness, never fails it')
  t.match(ready.json(), { status: 'ok', checks: { 'upstream:quotes': { status: 'degraded', detail: /circuit open/ } } })
  t.match(await scrapeMetrics(app), /upstream_circuit_state\{upstream="quotes"\} 2/)
})

t.test('breaker: after the reset timeout exactly one probe goes through, and its success closes the breaker', async (t) => {
  const { app, upstream, logs } = await quotesApp(t, {
    UPSTREAM_MAX_RETRIES: '0', UPSTREAM_BREAKER_VOLUME: '2', UPSTREAM_BREAKER_RESET_MS: '300'
  })
  upstream.otherwise(fault.status(503))
  for (let i = 0; i < 2; i++) await app.inject('/api/v1/quotes/x')
  await logs.waitFor(/upstream circuit opened/)
  await logs.waitFor(/upstream circuit half-open/)

  upstream.otherwise(fault.slowHeaders(150))
  const answers = await Promise.all([1, 2, 3, 4].map(() => app.inject('/api/v1/quotes/x')))
  t.same(answers.map((r) => r.statusCode).sort(), [200, 503, 503, 503])
  t.equal(upstream.count, 3, 'exactly one probe reached the upstream')
  await logs.waitFor(/upstream circuit closed/)
  t.equal((await app.inject('/api/v1/quotes/x')).statusCode, 200)
  t.match((await app.inject('/health/ready')).json(), { checks: { 'upstream:quotes': { status: 'ok' } } })
  t.match(await scrapeMetrics(app), /upstream_circuit_state\{upstream="quotes"\} 0/)
})

t.test('breaker: 4xx answers never open it', async (t) => {
  const { app, upstream } = await quotesApp(t, { UPSTREAM_BREAKER_VOLUME: '2', UPSTREAM_BREAKER_ERROR_PERCENT: '1' })
  upstream.otherwise(fault.status(404))
  for (let i = 0; i < 10; i++) t.equal((await app.inject('/api/v1/quotes/x')).statusCode, 404)
  t.equal(upstream.count, 10)
  t.match(await scrapeMetrics(app), /upstream_circuit_state\{upstream="quotes"\} 0/)
})

t.test('x-request-id and traceparent arrive at the upstream; the metrics show attempts, retries and outcomes', async (t) => {
  const { app, upstream } = await quotesApp(t)
  upstream.script(fault.unavailable(), fault.ok())
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
  const res = await app.inject({
    url: '/api/v1/quotes/ACME',
    headers: { 'x-request-id': 'client-req-7', traceparent: `00-${traceId}-00f067aa0ba902b7-01` }
  })
  t.equal(res.statusCode, 200)
  for (const r of upstream.requests) {
    t.equal(r.headers['x-request-id'], 'client-req-7')
    t.match(r.headers.traceparent, new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`))
  }
  await app.inject('/api/v1/quotes/ACME')
  t.match(upstream.requests[2]!.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'the generated request id')
  t.equal(upstream.requests[2]!.headers.traceparent, undefined, 'without tracing no trace is started here')

  const metrics = await scrapeMetrics(app)
  t.match(metrics, /upstream_attempts_total\{upstream="quotes"\} 3/)
  t.match(metrics, /upstream_retries_total\{upstream="quotes"\} 1/)
  t.match(metrics, /upstream_retry_budget_exhausted_total\{upstream="quotes"\} 0/)
  t.match(metrics, /upstream_call_duration_seconds_count\{upstream="quotes",outcome="success"\} 2/)
  t.match(metrics, /upstream_circuit_state\{upstream="quotes"\} 0/)
})

t.test('without UPSTREAM_QUOTES_URL the route answers 503 "not configured" and readiness lists no upstream', async (t) => {
  const { app } = await build(t)
  t.equal(app.upstreams.quotes, undefined)
  const res = await app.inject('/api/v1/quotes/ACME')
  assertProblem(t, res, 503, 'SERVICE_UNAVAILABLE')
  t.match(res.json().detail, /not configured/)
  t.notOk('upstream:quotes' in (await app.inject('/health/ready')).json().checks)
})

t.test('closing the app closes the upstream client', async (t) => {
  const { app } = await quotesApp(t)
  t.equal((await app.inject('/api/v1/quotes/ACME')).statusCode, 200)
  const client = app.upstreams.quotes!
  await app.close()
  await t.rejects(client.request({ path: '/quotes/ACME' }))
})

t.test('an UPSTREAM_QUOTES_URL with credentials stops the start without printing them', async (t) => {
  const password = 'SECRETPW-9f3a1c'
  // Nothing is asked of this address: the client refuses it before any connection.
  const server = spawnServer(t, { TLS: 'off', UPSTREAM_QUOTES_URL: `http://keel:${password}@127.0.0.1:9/v1` })
  t.equal(await server.exited, 1)
  t.match(server.output(), /cannot start: .*credentials/)
  t.notOk(server.output().includes(password), 'the password is never printed')
})
