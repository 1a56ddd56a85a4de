// Tracing as an operator meets it: the real entry point (with its telemetry start-up) pointed at a
// real OTLP/HTTP receiver on loopback exports the spans of a request that calls a failing upstream
// and the database, in the caller's trace, with the trace id in its log lines; a room message
// published on one instance and delivered on another is one trace across Redis.

import t from 'tap'
import { spawnServer, waitListening, type Spawned } from '../helpers/app.ts'
import { h1request } from '../helpers/http.ts'
import { fault, startFaultUpstream } from '../helpers/fault-upstream.ts'
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.ts'
import { startRedis, redisSkipReason } from '../helpers/redis.ts'
import { openSocket } from '../helpers/ws.ts'
import { itemsSkipReason } from '../helpers/examples.ts'

const SERVER = 2
const CLIENT = 3
const PRODUCER = 4
const CONSUMER = 5

/** Keel exporting to `receiver` every 100 ms, over HTTP/1.1 without TLS and without load shedding (neither is under test). */
async function tracedKeel (t: Parameters<typeof spawnServer>[0], receiver: OtlpReceiver, env: Record<string, string> = {}): Promise<Spawned> {
  return await waitListening(spawnServer(t, {
    TLS: 'off',
    SHED_MAX_EVENT_LOOP_DELAY_MS: '0',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_BSP_SCHEDULE_DELAY: '100',
    OTEL_SERVICE_NAME: 'keel-under-test',
    ...env
    // Starting takes seconds on a loaded machine, the SDK's modules included.
  }), 60_000)
}

const childOf = (parent: ReceivedSpan) => (s: ReceivedSpan) => s.traceId === parent.traceId && s.parentSpanId === parent.spanId

t.test('one trace: the inbound span under the caller\'s parent, the upstream call with one span per attempt, the database, and the log lines', { skip: itemsSkipReason }, async (t) => {
  const receiver = await startOtlpReceiver(t)
  const upstream = await startFaultUpstream(t)
  upstream.script(fault.unavailable('1'), fault.ok())
  const keel = await tracedKeel(t, receiver, { UPSTREAM_QUOTES_URL: upstream.url })
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'

  // The quote route calls the upstream, the items route the database: two requests of the caller's one trace.
  const quote = await h1request(`${keel.url}/api/v1/quotes/ACME`, { headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01`, tracestate: 'congo=t61rcWkgMzE' } })
  t.equal(quote.status, 200, quote.body)
  const items = await h1request(`${keel.url}/api/v1/items`, { headers: { traceparent: `00-${traceId}-1111111111111111-01` } })
  t.equal(items.status, 200, items.body)

  const inbound = await receiver.waitForSpan((s) => s.traceId === traceId && s.parentSpanId === '00f067aa0ba902b7')
  t.equal(inbound.name, 'GET /api/v1/quotes/:symbol', 'the route template names the span')
  t.equal(inbound.kind, SERVER)
  t.match(inbound.attributes, { 'http.route': '/api/v1/quotes/:symbol', 'http.response.status_code': 200, 'keel.request.id': quote.headers['x-request-id'] })
  t.equal(inbound.resource['service.name'], 'keel-under-test')

  const call = await receiver.waitForSpan((s) => s.traceId === traceId && s.attributes['keel.upstream.name'] === 'quotes')
  t.equal(call.name, 'GET quotes')
  t.match(call.attributes, { 'keel.upstream.attempts': 2, 'keel.upstream.circuit_state': 'closed' })
  const retry = call.events.find((e) => e.name === 'retry')
  t.match(retry?.attributes, { 'keel.upstream.retry_reason': 'http_503', 'keel.upstream.retry_after_ms': 1000 })
  t.ok(Number(retry?.attributes['keel.upstream.retry_delay_ms']) >= 1000, 'the wait honoured Retry-After')

  const first = await receiver.waitForSpan((s) => childOf(call)(s) && s.attributes['keel.upstream.attempt'] === 1)
  const second = await receiver.waitForSpan((s) => childOf(call)(s) && s.attributes['keel.upstream.attempt'] === 2)
  for (const attempt of [first, second]) {
    t.equal(attempt.kind, CLIENT)
    t.match(attempt.attributes, { 'http.request.method': 'GET', 'server.address': '127.0.0.1', 'url.full': `${upstream.url}/quotes/ACME`, 'keel.upstream.circuit_state': 'closed' })
  }
  t.match(first.attributes, { 'http.response.status_code': 503, 'error.type': 'UPSTREAM_HTTP_ERROR', 'keel.upstream.retry_after_ms': 1000 })
  t.equal(first.status, 2, 'the failed attempt is an error')
  t.match(second.attributes, { 'http.response.status_code': 200, 'http.request.resend_count': 1, 'keel.upstream.retry_reason': 'http_503' })
  t.same(upstream.requests.map((r) => r.headers.traceparent), [first, second].map((a) => `00-${traceId}-${a.spanId}-01`),
    'each attempt names its own span to the upstream')
  t.same(upstream.requests.map((r) => r.headers.tracestate), ['congo=t61rcWkgMzE', 'congo=t61rcWkgMzE'], 'the caller\'s tracestate travels on')

  const itemsSpan = await receiver.waitForSpan((s) => s.traceId === traceId && s.parentSpanId === '1111111111111111')
  t.equal(itemsSpan.name, 'GET /api/v1/items')
  const query = await receiver.waitForSpan((s) => s.traceId === traceId && s.attributes['db.system.name'] === 'sqlite')
  t.equal(query.kind, CLIENT)
  t.equal(query.name, 'SELECT items')
  t.match(query.attributes, { 'db.operation.name': 'SELECT', 'db.collection.name': 'items', 'db.query.text': /^SELECT .* FROM items/ })

  const lines = keel.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)
  const requestLines = lines.filter((l) => l.reqId === quote.headers['x-request-id'])
  t.ok(requestLines.length >= 2, `${requestLines.length} lines of the request`)
  for (const line of requestLines) t.equal(line.trace_id, traceId, String(line.msg))
  t.ok(requestLines.some((l) => l.span_id === inbound.spanId), 'lines inside the request name its span')
})

t.test('a room message published on one instance and delivered on another is one trace', { skip: redisSkipReason() }, async (t) => {
  const redis = await startRedis(t)
  const receiver = await startOtlpReceiver(t)
  const env = { REDIS_URL: redis.url }
  const [a, b] = await Promise.all([tracedKeel(t, receiver, env), tracedKeel(t, receiver, env)])
  const alice = await openSocket(t, a, { sub: 'alice' })
  const bob = await openSocket(t, b, { sub: 'bob' })
  // A browser's token rides in the upgrade's query string: it must not reach a span.
  const carol = await openSocket(t, b, { sub: 'carol', queryToken: true })
  await alice.request('room:join', { room: 'traced' })
  await bob.request('room:join', { room: 'traced' })
  const ack = await alice.request('room:publish', { room: 'traced', payload: { n: 1 } })
  t.equal(ack.event, 'ack')
  await bob.next((m) => m.event === 'room:message' && m.data.room === 'traced')

  const event = await receiver.waitForSpan((s) => s.name === 'ws room:publish' && s.attributes['keel.room'] === 'traced')
  t.equal(event.kind, SERVER)
  t.match(event.attributes, { 'keel.event': 'room:publish', 'keel.outcome': 'ok' })
  const publish = await receiver.waitForSpan((s) => childOf(event)(s) && s.kind === PRODUCER)
  t.equal(publish.name, 'publish room:message')
  // Every instance delivers what Redis hands it, the publisher's included: a consumer span on each.
  const deliveries = await receiver.waitForSpans((s) => childOf(publish)(s) && s.kind === CONSUMER, 2)
  const instances = new Set(deliveries.map((s) => s.resource['service.instance.id']))
  t.equal(instances.size, 2, 'delivered on both instances')
  t.ok(instances.has(publish.resource['service.instance.id']), 'one of them the publisher')
  for (const delivery of deliveries) {
    t.equal(delivery.name, 'deliver room:message')
    t.same(delivery.links, [{ traceId: publish.traceId, spanId: publish.spanId }], 'linked to the publishing span')
    t.match(delivery.attributes, { 'keel.room': 'traced', 'messaging.operation.type': 'process' })
  }
  // The Redis commands of the publish, by the ioredis instrumentation (hooked although Keel imports ioredis as ESM).
  const command = await receiver.waitForSpan((s) => childOf(publish)(s) && s.scope.includes('ioredis'))
  t.equal(command.kind, CLIENT)
  t.match(command.attributes, { 'db.system.name': 'redis' })
  const outcomes = receiver.spans.filter((s) => s.name === 'ws room:join').map((s) => s.attributes['keel.outcome'])
  t.same(outcomes, ['ok', 'ok'], 'each join is a span with its outcome')

  // An upgrade's span lasts as long as its connection.
  for (const socket of [alice, bob, carol]) socket.ws.close()
  const upgrades = await receiver.waitForSpans((s) => s.name === 'GET /ws', 3)
  for (const upgrade of upgrades) t.equal(upgrade.attributes['url.path'], '/ws')
  t.notMatch(JSON.stringify(receiver.spans), /access_token|eyJ/, 'no token in any span')
})
