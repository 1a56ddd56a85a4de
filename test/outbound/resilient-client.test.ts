// The resilient client against a real fault-injecting upstream on loopback (no mocked transport):
// retries, backoff, Retry-After, deadlines, the retry budget, the breaker, the bulkhead, typed
// errors and header propagation. Waits are observed through an injected clock where the test is
// about the delay chosen, and measured in real time only where the test is about real time.

import t from 'tap'
import { performance } from 'node:perf_hooks'
import { Type } from '@sinclair/typebox'
import { createResilientClient, type Clock, type ResilientClientOptions } from '../../outbound/resilient-client.ts'
import {
  BulkheadFullError, CircuitOpenError, UpstreamAbortedError, UpstreamConnectionError, UpstreamError, UpstreamHttpError,
  UpstreamResponseInvalidError, UpstreamTimeoutError
} from '../../outbound/upstream-errors.ts'
import { fault, startFaultUpstream, startNonHttpUpstream, type Fault } from '../helpers/fault-upstream.ts'

// Timers fire late on a busy machine, never early: generous above, tight below.
const LATE_MS = 200

const Quote = Type.Object({ symbol: Type.String(), price: Type.Number(), currency: Type.String(), asOf: Type.String() })

interface Teardown { teardown: (fn: () => unknown) => void }

async function setup (t: Teardown, options: Partial<ResilientClientOptions> = {}, otherwise?: Fault) {
  const upstream = await startFaultUpstream(t, otherwise)
  const seen = { attempts: 0, retries: 0, exhausted: 0, outcomes: [] as string[], states: [] as string[] }
  const stateWaiters = new Map<string, () => void>()
  const client = createResilientClient({
    name: 'test',
    baseUrl: upstream.url,
    backoff: { baseMs: 10, maxMs: 50 },
    observer: {
      attempt: () => { seen.attempts++ },
      retry: () => { seen.retries++ },
      retryBudgetExhausted: () => { seen.exhausted++ },
      outcome: (outcome) => { seen.outcomes.push(outcome) },
      circuitStateChange: (state) => {
        seen.states.push(state)
        stateWaiters.get(state)?.()
      }
    },
    ...options
  })
  t.teardown(() => client.close())
  /** Resolves when the breaker next enters `state` (bounded). */
  const nextState = (state: string, timeoutMs = 5000) => new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`breaker never became ${state}`)), timeoutMs)
    stateWaiters.set(state, () => { clearTimeout(timer); stateWaiters.delete(state); resolve() })
  })
  return { upstream, client, seen, nextState }
}

/** A clock whose sleeps return at once and are recorded: delays observed without waiting. */
function fakeClock (start = Date.now()): { clock: Clock, sleeps: number[] } {
  let now = start
  const sleeps: number[] = []
  return {
    sleeps,
    clock: {
      now: () => now,
      sleep: async (ms) => {
        sleeps.push(ms)
        now += ms
      }
    }
  }
}

t.test('503 then 200: one success after one retry', async (t) => {
  const { upstream, client, seen } = await setup(t)
  upstream.script(fault.unavailable(), fault.ok())
  const quote = await client.getJson('/quotes/ACME', Quote)
  t.equal(quote.symbol, 'ACME')
  t.equal(upstream.count, 2)
  t.same({ attempts: seen.attempts, retries: seen.retries, outcomes: seen.outcomes }, { attempts: 2, retries: 1, outcomes: ['success'] })
})

t.test('Retry-After: 1 delays the retry by at least one second', async (t) => {
  const { upstream, client } = await setup(t)
  upstream.script(fault.unavailable('1'), fault.ok())
  await client.getJson('/quotes/ACME', Quote)
  t.equal(upstream.count, 2)
  const gap = upstream.requests[1]!.at - upstream.requests[0]!.at
  // 995: Node's timers round to whole milliseconds and may fire up to 1 ms before the exact instant.
  t.ok(gap >= 995, `retry came ${gap.toFixed(1)} ms after the 503`)
})

t.test('a 429 is retried after its Retry-After too', async (t) => {
  const { clock, sleeps } = fakeClock()
  const { upstream, client } = await setup(t, { clock })
  upstream.script(fault.tooManyRequests('2'), fault.ok())
  await client.getJson('/quotes/ACME', Quote)
  t.same(sleeps, [2000])
})

t.test('a POST without Idempotency-Key is not retried; with one it is, under the same key', async (t) => {
  const { upstream, client } = await setup(t)
  upstream.script(fault.unavailable())
  const err = await client.postJson('/quotes/ACME', { qty: 1 }, Quote).catch((e: unknown) => e)
  t.ok(err instanceof UpstreamHttpError)
  t.match(err, { status: 503, stoppedBy: 'not-idempotent', attempts: 1 })
  t.equal(upstream.count, 1)

  upstream.script(fault.unavailable(), fault.ok())
  await client.postJson('/quotes/ACME', { qty: 1 }, Quote, { idempotencyKey: true })
  t.equal(upstream.count, 3)
  const [first, second] = upstream.requests.slice(1).map((r) => r.headers['idempotency-key'])
  t.match(first, /^[0-9a-f-]{36}$/, 'a generated key')
  t.equal(second, first, 'the retry repeats the key')

  upstream.script(fault.unavailable(), fault.ok())
  await client.postJson('/quotes/ACME', {}, Quote, { idempotencyKey: 'order-42' })
  t.same(upstream.requests.slice(3).map((r) => r.headers['idempotency-key']), ['order-42', 'order-42'])
  t.equal(upstream.requests[3]!.headers['content-type'], 'application/json')
})

t.test('4xx answers are not retried', async (t) => {
  const { upstream, client } = await setup(t)
  upstream.script(fault.status(404))
  await t.rejects(client.getJson('/quotes/NOPE', Quote), { code: 'UPSTREAM_HTTP_ERROR', status: 404, attempts: 1 })
  t.equal(upstream.count, 1)
})

t.test('retries stop after maxRetries with the last error', async (t) => {
  const { upstream, client, seen } = await setup(t, { maxRetries: 2 }, fault.status(502))
  await t.rejects(client.getJson('/quotes/ACME', Quote), { code: 'UPSTREAM_HTTP_ERROR', status: 502, stoppedBy: 'max-retries', attempts: 3 })
  t.equal(upstream.count, 3)
  t.same(seen.outcomes, ['http_error'])
})

t.test('backoff delays are jittered and capped (injected random and clock)', async (t) => {
  const { clock, sleeps } = fakeClock()
  const randoms = [0.5, 0.9, 0.999, 0.25]
  const { upstream, client } = await setup(t, {
    clock, random: () => randoms.shift()!, maxRetries: 4, backoff: { baseMs: 100, maxMs: 300 }
  })
  upstream.script(fault.unavailable(), fault.unavailable(), fault.unavailable(), fault.unavailable(), fault.ok())
  await client.getJson('/quotes/ACME', Quote)
  // Ceilings 100, 200, 400→300 (cap), 800→300 (cap), each scaled by its random draw.
  t.same(sleeps, [50, 180, 299, 75])
})

t.test('Retry-After may exceed the backoff cap while the deadline allows it', async (t) => {
  const start = Date.parse('2026-01-01T00:00:00Z')
  const { clock, sleeps } = fakeClock(start)
  const { upstream, client } = await setup(t, { clock, timeoutMs: 10_000, backoff: { baseMs: 100, maxMs: 300 } })
  upstream.script(fault.unavailable('5'), fault.unavailable('Thu, 01 Jan 2026 00:00:08 GMT'), fault.ok())
  await client.getJson('/quotes/ACME', Quote)
  t.same(sleeps, [5000, 3000], 'seconds, then an HTTP date three seconds after the clock')
})

t.test('a Retry-After beyond the deadline ends the call at once instead of waiting', async (t) => {
  const { clock, sleeps } = fakeClock()
  const { upstream, client } = await setup(t, { clock, timeoutMs: 2000 })
  upstream.script(fault.unavailable('5'), fault.ok())
  await t.rejects(client.getJson('/quotes/ACME', Quote), { code: 'UPSTREAM_HTTP_ERROR', status: 503, retryAfterMs: 5000, stoppedBy: 'deadline' })
  t.same(sleeps, [])
  t.equal(upstream.count, 1)
})

t.test('deadline: an upstream slower than the deadline fails at the deadline with one attempt', async (t) => {
  const { upstream, client, seen } = await setup(t, { timeoutMs: 500, headersTimeoutMs: 10_000 }, fault.slowHeaders(3000))
  const started = performance.now()
  const err = await client.getJson('/quotes/ACME', Quote).catch((e: unknown) => e)
  const elapsed = performance.now() - started
  t.ok(err instanceof UpstreamTimeoutError)
  t.match(err, { code: 'UPSTREAM_DEADLINE_EXCEEDED', phase: 'deadline', attempts: 1 })
  t.ok(elapsed >= 495 && elapsed <= 500 + LATE_MS, `failed after ${elapsed.toFixed(0)} ms (deadline 500)`)
  t.equal(upstream.count, 1)
  t.same(seen.outcomes, ['deadline_exceeded'])
})

t.test('deadline: no attempt starts once it could not finish in time', async (t) => {
  // The call has 1000 ms, an attempt needs at least 200, each retry waits 399 (injected clock):
  // attempts start at 0, 399 and 798; a fourth could start at 1197 at the earliest — past the deadline.
  const { clock, sleeps } = fakeClock()
  const { upstream, client } = await setup(t, {
    clock, timeoutMs: 1000, minAttemptMs: 200, maxRetries: 10, random: () => 0.999, backoff: { baseMs: 400, maxMs: 400 }
  }, fault.unavailable())
  await t.rejects(client.getJson('/quotes/ACME', Quote), { code: 'UPSTREAM_HTTP_ERROR', status: 503, stoppedBy: 'deadline', attempts: 3 })
  t.equal(upstream.count, 3)
  t.same(sleeps, [399, 399], 'no wait for an attempt that could not finish')
})

t.test('deadline: a call whose deadline (e.g. the inbound request\'s) has nearly passed never reaches the upstream', async (t) => {
  const { upstream, client } = await setup(t, { minAttemptMs: 50 })
  await t.rejects(client.getJson('/quotes/ACME', Quote, { deadlineAt: Date.now() + 10 }), { code: 'UPSTREAM_DEADLINE_EXCEEDED', attempts: 0 })
  t.equal(upstream.count, 0)
})

t.test('deadline: an earlier deadlineAt caps the client\'s timeout, and the upstream is told the time left', async (t) => {
  const { upstream, client } = await setup(t, { timeoutMs: 5000, headersTimeoutMs: 10_000 }, fault.slowHeaders(3000))
  const started = performance.now()
  await t.rejects(client.getJson('/quotes/ACME', Quote, { deadlineAt: Date.now() + 400 }), { code: 'UPSTREAM_DEADLINE_EXCEEDED', phase: 'deadline' })
  const elapsed = performance.now() - started
  t.ok(elapsed >= 395 && elapsed <= 400 + LATE_MS, `failed after ${elapsed.toFixed(0)} ms (deadline 400)`)
  const left = Number(upstream.requests[0]!.headers['x-request-timeout-ms'])
  t.ok(left > 0 && left <= 400, `x-request-timeout-ms: ${left}`)
})

t.test('budget: against an upstream that always fails, N calls send at most N × (1 + ratio) + reserve requests', async (t) => {
  const { clock } = fakeClock()
  const N = 30
  const { upstream, client, seen } = await setup(t, {
    clock,
    maxRetries: 3,
    retryBudget: { ratio: 0.2, minPerSecond: 1, windowMs: 10_000 }, // reserve: 1/s × 10 s = 10
    breaker: { errorThresholdPercentage: 50, volumeThreshold: 1_000_000, resetTimeoutMs: 10_000, rollingWindowMs: 10_000 }
  }, fault.status(503))
  const stops: unknown[] = []
  for (let i = 0; i < N; i++) {
    const err = await client.getJson('/quotes/ACME', Quote).then(() => undefined, (e: { stoppedBy?: string }) => e)
    stops.push(err?.stoppedBy)
  }
  const bound = N * 1.2 + 10
  t.ok(upstream.count <= bound, `${upstream.count} upstream requests for ${N} calls (bound ${bound}; without a budget ${N * 4})`)
  t.ok(upstream.count > N, 'some retries were allowed')
  t.ok(seen.exhausted > 0, 'budget exhaustion is reported')
  t.ok(stops.includes('retry-budget-exhausted'))
})

t.test('breaker: opens after the threshold, fails fast, lets exactly one probe through, and closes on its success', async (t) => {
  const { upstream, client, seen, nextState } = await setup(t, {
    maxRetries: 0,
    breaker: { errorThresholdPercentage: 50, volumeThreshold: 4, resetTimeoutMs: 300, rollingWindowMs: 10_000 }
  }, fault.status(500))
  const opened = nextState('open')
  for (let i = 0; i < 4; i++) await t.rejects(client.getJson('/quotes/ACME', Quote), { code: 'UPSTREAM_HTTP_ERROR', status: 500 })
  await opened
  t.equal(client.circuitState().state, 'open')

  const err = await client.getJson('/quotes/ACME', Quote).catch((e: unknown) => e)
  t.ok(err instanceof CircuitOpenError)
  t.match(err, { code: 'UPSTREAM_CIRCUIT_OPEN', attempts: 0 })
  t.ok((err as CircuitOpenError).retryAfterMs > 0 && (err as CircuitOpenError).retryAfterMs <= 300)
  t.equal(upstream.count, 4, 'the refused call never reached the upstream')

  await nextState('half-open')
  upstream.otherwise(fault.slowHeaders(100))
  const results = await Promise.allSettled([1, 2, 3].map(() => client.getJson('/quotes/ACME', Quote)))
  t.equal(upstream.count, 5, 'exactly one probe')
  t.equal(results.filter((r) => r.status === 'fulfilled').length, 1)
  t.equal(results.filter((r) => r.status === 'rejected' && r.reason instanceof CircuitOpenError).length, 2)
  t.equal(client.circuitState().state, 'closed')
  t.same(seen.states, ['open', 'half-open', 'closed'])
  await client.getJson('/quotes/ACME', Quote)
  t.equal(upstream.count, 6)
})

t.test('breaker: a failed probe opens it again', async (t) => {
  const { upstream, client, nextState } = await setup(t, {
    maxRetries: 0,
    breaker: { errorThresholdPercentage: 50, volumeThreshold: 2, resetTimeoutMs: 200, rollingWindowMs: 10_000 }
  }, fault.status(503))
  for (let i = 0; i < 2; i++) await t.rejects(client.getJson('/quotes/ACME', Quote))
  await nextState('half-open')
  const reopened = nextState('open')
  await t.rejects(client.getJson('/quotes/ACME', Quote), { code: 'UPSTREAM_HTTP_ERROR', status: 503 })
  await reopened
  t.equal(upstream.count, 3)
  await t.rejects(client.getJson('/quotes/ACME', Quote), CircuitOpenError)
})

t.test('breaker: 4xx answers never open it', async (t) => {
  const { upstream, client, seen } = await setup(t, {
    breaker: { errorThresholdPercentage: 10, volumeThreshold: 2, resetTimeoutMs: 10_000, rollingWindowMs: 10_000 }
  }, fault.status(404))
  for (let i = 0; i < 20; i++) await t.rejects(client.getJson('/quotes/NOPE', Quote), { code: 'UPSTREAM_HTTP_ERROR', status: 404 })
  upstream.otherwise(fault.tooManyRequests())
  await t.rejects(client.getJson('/quotes/NOPE', Quote), { code: 'UPSTREAM_HTTP_ERROR', status: 429 })
  t.equal(client.circuitState().state, 'closed')
  t.same(seen.states, [])
})

t.test('a connection reset is a typed connection error, retried for a GET', async (t) => {
  const { upstream, client } = await setup(t, { maxRetries: 1 }, fault.reset())
  const err = await client.getJson('/quotes/ACME', Quote).catch((e: unknown) => e)
  t.ok(err instanceof UpstreamConnectionError, String(err))
  t.match(err, { code: 'UPSTREAM_CONNECTION_FAILED', stoppedBy: 'max-retries', attempts: 2 })
  t.equal(upstream.count, 2)
})

t.test('a refused connection is a typed connection error', async (t) => {
  const upstream = await startFaultUpstream(t)
  await upstream.close()
  const client = createResilientClient({ name: 'gone', baseUrl: upstream.url, maxRetries: 0 })
  t.teardown(() => client.close())
  await t.rejects(client.getJson('/x', Quote), { code: 'UPSTREAM_CONNECTION_FAILED' })
})

t.test('a body that stalls past the body timeout is a typed timeout, never retried once part of it arrived', async (t) => {
  const { upstream, client } = await setup(t, { bodyTimeoutMs: 200 }, fault.slowBody(2000))
  const err = await client.getJson('/quotes/ACME', Quote).catch((e: unknown) => e)
  t.ok(err instanceof UpstreamTimeoutError)
  t.match(err, { code: 'UPSTREAM_BODY_TIMEOUT', phase: 'body', stoppedBy: 'body-consumed', attempts: 1 })
  t.equal(upstream.count, 1)
})

t.test('invalid JSON, a body of the wrong shape and an oversized body are typed invalid responses, not retried', async (t) => {
  const { upstream, client } = await setup(t, { maxResponseBytes: 1000 })
  upstream.script(fault.invalidJson())
  const notJson = await client.getJson('/quotes/ACME', Quote).catch((e: unknown) => e)
  t.ok(notJson instanceof UpstreamResponseInvalidError)
  t.match(notJson, { code: 'UPSTREAM_RESPONSE_INVALID', message: /not JSON/ })
  upstream.script(fault.ok({ symbol: 'ACME', price: 'free', currency: 'USD', asOf: 'now' }))
  await t.rejects(client.getJson('/quotes/ACME', Quote), { code: 'UPSTREAM_RESPONSE_INVALID', message: /schema at \/price/ })
  upstream.script(fault.ok({ filler: 'x'.repeat(5000) }))
  await t.rejects(client.getJson('/quotes/ACME', Quote), { code: 'UPSTREAM_RESPONSE_INVALID', message: /over 1000 bytes/ })
  t.equal(upstream.count, 3)
})

t.test('an upstream that answers something other than HTTP is a typed invalid response, counted against it by the breaker', async (t) => {
  const upstream = await startNonHttpUpstream(t)
  const states: string[] = []
  const client = createResilientClient({
    name: 'garbage',
    baseUrl: upstream.url,
    maxRetries: 0,
    breaker: { errorThresholdPercentage: 50, volumeThreshold: 2, resetTimeoutMs: 10_000, rollingWindowMs: 10_000 },
    observer: { circuitStateChange: (state) => { states.push(state) } }
  })
  t.teardown(() => client.close())
  for (let i = 0; i < 2; i++) {
    const err = await client.getJson('/quotes/ACME', Quote).catch((e: unknown) => e)
    t.ok(err instanceof UpstreamResponseInvalidError, String(err))
    t.match(err, { code: 'UPSTREAM_RESPONSE_INVALID', attempts: 1 })
  }
  t.equal(upstream.count, 2)
  t.equal(client.circuitState().state, 'open', 'two failures out of two opened the breaker')
  t.same(states, ['open'])
})

t.test('x-request-id, traceparent and tracestate reach the upstream; without tracing every attempt continues the caller\'s span', async (t) => {
  const { upstream, client } = await setup(t)
  upstream.script(fault.unavailable(), fault.ok())
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
  await client.getJson('/quotes/ACME', Quote, { requestId: 'req-1', traceparent, tracestate: 'k=v' })
  const [a, b] = upstream.requests.map((r) => r.headers)
  t.equal(a!['x-request-id'], 'req-1')
  t.equal(b!['x-request-id'], 'req-1')
  t.equal(a!.tracestate, 'k=v')
  // No span is recorded here, so the upstream's spans are children of the caller's.
  t.equal(a!.traceparent, traceparent)
  t.equal(b!.traceparent, traceparent)

  await client.getJson('/quotes/ACME', Quote)
  t.equal(upstream.requests[2]!.headers.traceparent, undefined, 'no trace is invented when none came in and none is recorded')
})

t.test('tracestate: an oversized inbound tracestate is not forwarded as is, and none travels without a valid traceparent', async (t) => {
  const { upstream, client } = await setup(t)
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
  await client.getJson('/quotes/ACME', Quote, { traceparent, tracestate: 'x'.repeat(15_000) })
  t.equal(upstream.requests[0]!.headers.tracestate, undefined, 'a 15 KB tracestate is dropped')
  const many = Array.from({ length: 20 }, (_, i) => `k${i}=${'v'.repeat(100)}`).join(',')
  await client.getJson('/quotes/ACME', Quote, { traceparent, tracestate: many })
  const forwarded = String(upstream.requests[1]!.headers.tracestate ?? '')
  t.ok(forwarded.length > 0 && forwarded.length <= 512, `forwarded ${forwarded.length} of ${many.length} characters`)
  t.ok(many.startsWith(forwarded), 'the leftmost (most recent) members are kept')
  t.ok(forwarded.split(',').length <= 32)
  await client.getJson('/quotes/ACME', Quote, { tracestate: 'k=v' })
  t.equal(upstream.requests[2]!.headers.tracestate, undefined, 'a new trace starts without the inbound state')
})

t.test('the bulkhead queues calls beyond its capacity and refuses calls beyond its queue', async (t) => {
  const { upstream, client } = await setup(t, { maxConcurrency: 1, maxQueue: 1 }, fault.slowHeaders(200))
  const first = client.getJson('/quotes/A', Quote)
  const second = client.getJson('/quotes/B', Quote)
  const third = await client.getJson('/quotes/C', Quote).catch((e: unknown) => e)
  t.ok(third instanceof BulkheadFullError)
  t.match(third, { code: 'UPSTREAM_BULKHEAD_FULL', attempts: 0 })
  t.same((await Promise.all([first, second])).map((q) => q.symbol), ['A', 'B'])
  t.equal(upstream.count, 2)
  t.equal(client.circuitState().state, 'closed', 'refusals do not count against the upstream')
})

t.test('the caller\'s signal aborts a call with a typed error', async (t) => {
  const { client } = await setup(t, {}, fault.slowHeaders(2000))
  const controller = new AbortController()
  const call = client.getJson('/quotes/ACME', Quote, { signal: controller.signal })
  setImmediate(() => controller.abort())
  const err = await call.catch((e: unknown) => e)
  t.ok(err instanceof UpstreamAbortedError)
  t.match(err, { code: 'UPSTREAM_ABORTED' })
  await t.rejects(client.getJson('/quotes/ACME', Quote, { signal: AbortSignal.abort() }), { code: 'UPSTREAM_ABORTED', attempts: 0 })
})

t.test('the caller\'s signal also ends a call waiting to retry', async (t) => {
  const { upstream, client } = await setup(t, { timeoutMs: 5000 })
  upstream.script(fault.unavailable('2'), fault.ok())
  const controller = new AbortController()
  const call = client.getJson('/quotes/ACME', Quote, { signal: controller.signal })
  await upstream.waitForRequests(1)
  controller.abort()
  await t.rejects(call, { code: 'UPSTREAM_ABORTED', attempts: 1 })
  t.equal(upstream.count, 1)
})

t.test('a bug in the request (an invalid header) is not blamed on the upstream', async (t) => {
  const { upstream, client } = await setup(t, {
    breaker: { errorThresholdPercentage: 1, volumeThreshold: 1, resetTimeoutMs: 10_000, rollingWindowMs: 10_000 }
  })
  const err = await client.request({ path: '/quotes/ACME', headers: { 'x-bad': 'a\r\nb' } }).catch((e: unknown) => e)
  t.match(err, { code: 'UND_ERR_INVALID_ARG' })
  t.notOk(err instanceof UpstreamError, 'surfaces as itself: a 500, not a 502')
  t.equal(upstream.count, 0)
  t.equal(client.circuitState().state, 'closed')
})

t.test('request() sends any method under the base URL\'s path prefix and returns the raw response', async (t) => {
  const upstream = await startFaultUpstream(t)
  const client = createResilientClient({ name: 'raw', baseUrl: `${upstream.url}/v2/` })
  t.teardown(() => client.close())
  const res = await client.request({ method: 'put', path: '/quotes/ACME', body: 'x', headers: { 'x-extra': '1' } })
  t.equal(res.status, 200)
  t.equal(JSON.parse(res.body.toString()).symbol, 'ACME')
  t.match(upstream.requests[0], { method: 'PUT', url: '/v2/quotes/ACME', headers: { 'x-extra': '1' } })
  t.throws(() => client.request({ path: 'quotes' }), TypeError)
})

t.test('createResilientClient refuses bad options with a clear message', async (t) => {
  t.throws(() => createResilientClient({ name: 'x', baseUrl: 'not a url' }), { name: 'TypeError', message: /not a URL/ })
  t.throws(() => createResilientClient({ name: 'x', baseUrl: 'ftp://host' }), { message: /http\(s\)/ })
  t.throws(() => createResilientClient({ name: 'x', baseUrl: 'http://host/?q=1' }), { message: /query/ })
  t.throws(() => createResilientClient({ name: 'Bad Name', baseUrl: 'http://host' }), { message: /lowercase/ })
  t.throws(() => createResilientClient({ name: 'x', baseUrl: 'http://host', timeoutMs: 0 }), { name: 'RangeError', message: /timeoutMs/ })
  t.throws(() => createResilientClient({ name: 'x', baseUrl: 'http://host', maxRetries: -1 }), { message: /maxRetries/ })
})
