// The spans of resilient-client calls, recorded by an in-process SDK: a call's span inside the
// caller's active span, a CLIENT span per attempt named in the traceparent the upstream receives,
// and the refusals — breaker rejections, an exhausted retry budget, a full bulkhead — as events.

import t from 'tap'
import { Type } from '@sinclair/typebox'
import { trace, SpanStatusCode } from '@opentelemetry/api'
import { node, tracing } from '@opentelemetry/sdk-node'
import { createResilientClient, type ResilientClientOptions } from '../../outbound/resilient-client.ts'
import { fault, startFaultUpstream, type Fault } from '../helpers/fault-upstream.ts'

const exporter = new tracing.InMemorySpanExporter()
const provider = new node.NodeTracerProvider({ spanProcessors: [new tracing.SimpleSpanProcessor(exporter)] })
provider.register()
t.teardown(() => provider.shutdown())

const Quote = Type.Object({ symbol: Type.String() })
const spans = () => exporter.getFinishedSpans()
const callSpans = () => spans().filter((s) => s.attributes['keel.upstream.name'] !== undefined)
const attemptsOf = (call: ReturnType<typeof spans>[number]) => spans().filter((s) => s.parentSpanContext?.spanId === call.spanContext().spanId)

async function setup (t: { teardown: (fn: () => unknown) => void }, options: Partial<ResilientClientOptions>, otherwise?: Fault) {
  exporter.reset()
  const upstream = await startFaultUpstream(t, otherwise)
  const client = createResilientClient({ name: 'quotes', baseUrl: upstream.url, backoff: { baseMs: 1, maxMs: 5 }, ...options })
  t.teardown(() => client.close())
  return { upstream, client }
}

t.test('a call inside a span is its child, with one CLIENT span per attempt named to the upstream', async (t) => {
  const { upstream, client } = await setup(t, {})
  upstream.script(fault.unavailable('0'), fault.ok())
  const tracer = trace.getTracer('test')
  await tracer.startActiveSpan('handler', async (handler) => {
    await client.getJson('/quotes/ACME', Quote)
    handler.end()
  })
  const handler = spans().find((s) => s.name === 'handler')!
  const [call] = callSpans()
  t.equal(call!.parentSpanContext?.spanId, handler.spanContext().spanId)
  t.equal(call!.name, 'GET quotes')
  const attempts = attemptsOf(call!)
  t.same(attempts.map((a) => a.attributes['keel.upstream.attempt']), [1, 2])
  t.same(upstream.requests.map((r) => r.headers.traceparent), attempts.map((a) => `00-${a.spanContext().traceId}-${a.spanContext().spanId}-01`))
  t.equal(attempts[0]!.status.code, SpanStatusCode.ERROR)
  t.equal(attempts[1]!.attributes['keel.upstream.retry_reason'], 'http_503')
})

t.test('an open breaker\'s refusal is an event on a call span that has no attempt', async (t) => {
  const breaker = { errorThresholdPercentage: 50, volumeThreshold: 2, resetTimeoutMs: 60_000, rollingWindowMs: 10_000 }
  const { client } = await setup(t, { breaker, maxRetries: 0 }, fault.status(500))
  for (let i = 0; i < 2; i++) await client.getJson('/quotes/X', Quote).catch(() => {})
  t.equal(client.circuitState().state, 'open')
  exporter.reset()
  await t.rejects(client.getJson('/quotes/X', Quote), { code: 'UPSTREAM_CIRCUIT_OPEN' })
  const [call] = callSpans()
  t.same(call!.events.map((e) => e.name), ['circuit_open'])
  t.equal(call!.events[0]!.attributes?.['keel.upstream.circuit_state'], 'open')
  t.equal(call!.attributes['error.type'], 'UPSTREAM_CIRCUIT_OPEN')
  t.same(attemptsOf(call!), [])
})

t.test('a retry the budget refuses is an event; the retries it allows are events with their reason and wait', async (t) => {
  const { client } = await setup(t, { retryBudget: { ratio: 0, minPerSecond: 0.1, windowMs: 10_000 }, maxRetries: 3 }, fault.unavailable('0'))
  await t.rejects(client.getJson('/quotes/X', Quote), { code: 'UPSTREAM_HTTP_ERROR' })
  const [call] = callSpans()
  t.same(call!.events.map((e) => e.name), ['retry', 'retry_budget_exhausted'])
  t.match(call!.events[0]!.attributes, { 'keel.upstream.retry_reason': 'http_503', 'keel.upstream.retry_after_ms': 0 })
  t.equal(call!.attributes['keel.upstream.attempts'], 2)
  t.equal(attemptsOf(call!).length, 2)
})

t.test('a call refused by a full bulkhead is an event', async (t) => {
  const { upstream, client } = await setup(t, { maxConcurrency: 1, maxQueue: 0 }, fault.slowHeaders(300))
  const first = client.getJson('/quotes/A', Quote)
  await upstream.waitForRequests(1)
  await t.rejects(client.getJson('/quotes/B', Quote), { code: 'UPSTREAM_BULKHEAD_FULL' })
  await first
  const refused = callSpans().find((s) => s.attributes['error.type'] === 'UPSTREAM_BULKHEAD_FULL')
  t.same(refused?.events.map((e) => e.name), ['bulkhead_full'])
})
