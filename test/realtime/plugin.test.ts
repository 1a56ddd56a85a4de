// The WebSocket transport's limits and lifecycle, with real `ws` clients over TLS: HTTP/2 and
// WebSocket on one port at once, heartbeat, token expiry (4001), message budget (4003), connections
// per user, slow consumers (1008 / drop, bounded memory), metrics, shutdown with 1001, and the API a
// resource declares its rooms and feeds with.

import t from 'tap'
import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { DomainEventName } from '../../core/domain-events.ts'
import { build, listen, listenOn, spawnServer, tempDir, waitListening } from '../helpers/app.ts'
import { h2request, h2session } from '../helpers/http.ts'
import { scrapeMetrics, scrapeMetricsListener } from '../helpers/metrics.ts'
import { nowSec, testToken } from '../helpers/tokens.ts'
import { openSocket, upgradeStatus, type TestSocket } from '../helpers/ws.ts'
import { until } from '../helpers/until.ts'

function rawSocketOf (socket: TestSocket): Socket {
  return (socket.ws as unknown as { _socket: Socket })._socket
}

async function metricValue (server: { app: { metrics: { getSingleMetric: (name: string) => unknown } } }, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = server.app.metrics.getSingleMetric(name) as { get: () => Promise<{ values: Array<{ value: number, labels: Record<string, string | number> }> }> } | undefined
  if (metric === undefined) return 0
  const { values } = await metric.get()
  return values.filter((v) => Object.entries(labels).every(([k, l]) => String(v.labels[k]) === l)).reduce((sum, v) => sum + v.value, 0)
}

t.test('an HTTP/2 client and a WebSocket client use the same server and port at the same time', async (t) => {
  const server = await listen(t)
  const session = await h2session(server.url, { ca: server.ca })
  t.teardown(() => session.close())
  t.equal((await h2request(session, '/health/live')).alpn, 'h2')

  // A client that offers only http/1.1 in ALPN, as the README tells HTTP/2-capable clients to do.
  const socket = await openSocket(t, server, { client: { ALPNProtocols: ['http/1.1'] } })
  t.equal((rawSocketOf(socket) as TLSSocket).alpnProtocol, 'http/1.1')
  const plain = await openSocket(t, server, { sub: 'no-alpn' })

  const [h2, ack, ack2] = await Promise.all([
    h2request(session, '/health/live'),
    socket.request('ping'),
    plain.request('ping')
  ])
  t.equal(h2.status, 200)
  t.equal(h2.alpn, 'h2', 'the HTTP/2 session keeps working while sockets are open')
  t.match(ack, { event: 'ack' })
  t.match(ack2, { event: 'ack' })
})

t.test('a peer that stops answering pings is terminated within interval + timeout and leaves presence', async (t) => {
  const interval = 300
  const timeout = 200
  const server = await listen(t, { WS_PING_INTERVAL_MS: String(interval), WS_PONG_TIMEOUT_MS: String(timeout) })
  const alive = await openSocket(t, server, { sub: 'alive' })
  const silent = await openSocket(t, server, { sub: 'silent', client: { autoPong: false } })
  await alive.request('room:join', { room: 'hb' })
  await silent.request('room:join', { room: 'hb' })
  await alive.next((m) => m.event === 'presence:join')
  const started = Date.now()

  const left = await alive.next((m) => m.event === 'presence:leave', interval + timeout + 2000)
  t.same(left.data, { user: 'silent', count: 1, room: 'hb' })
  t.ok(Date.now() - started <= interval + timeout + 2000, 'gone within one interval + timeout (plus scheduling slack)')
  t.equal((await silent.closed()).code, 1006, 'terminated, no closing handshake')
  t.same((await alive.request('presence:list', { room: 'hb' })).data, { room: 'hb', users: ['alive'], count: 1 })

  // A peer that answers keeps its connection across several heartbeats.
  await new Promise((resolve) => setTimeout(resolve, 2 * interval))
  t.equal(alive.ws.readyState, alive.ws.OPEN)
  t.equal(await metricValue(server, 'ws_closes_total', { code: '1006' }), 1)
})

t.test('the connection closes with 4001 when the token expires', async (t) => {
  const server = await listen(t)
  const socket = await openSocket(t, server, { token: testToken({ sub: 'short', exp: nowSec() + 2 }) })
  const closed = await socket.closed(5000)
  t.equal(closed.code, 4001)
  t.equal(closed.reason, 'access token expired')
})

t.test('over the message rate: RATE_LIMITED errors (id answered), then 4003 when the flood goes on', async (t) => {
  const server = await listen(t, { WS_MESSAGE_RATE: '2', WS_MESSAGE_BURST: '5', WS_RATE_CLOSE_AFTER: '10' })

  t.test('a short burst over the budget is refused without closing, and forgiven once the budget refills', async (t) => {
    const socket = await openSocket(t, server, { sub: 'bursty' })
    const replies = await Promise.all(Array.from({ length: 8 }, async () => await socket.request('ping')))
    t.same(replies.map((r) => r.event), ['ack', 'ack', 'ack', 'ack', 'ack', 'error', 'error', 'error'])
    t.match(replies[5], { data: { code: 'RATE_LIMITED', message: /budget/ } })
    t.equal(socket.ws.readyState, socket.ws.OPEN)
  })

  t.test('a sustained flood is closed with 4003', async (t) => {
    const socket = await openSocket(t, server, { sub: 'flooder' })
    for (let i = 0; i < 40; i++) socket.send({ event: 'ping', id: `f${i}` })
    t.match(await socket.next((m) => m.id === 'f5'), { event: 'error', data: { code: 'RATE_LIMITED' } })
    const closed = await socket.closed()
    t.equal(closed.code, 4003)
    t.ok(await metricValue(server, 'ws_errors_total', { code: 'RATE_LIMITED' }) >= 10)
  })
})

t.test('WS_MAX_CONNECTIONS_PER_USER: one more upgrade for that user answers 429', async (t) => {
  const server = await listen(t, { WS_MAX_CONNECTIONS_PER_USER: '2' })
  const first = await openSocket(t, server, { sub: 'tabs' })
  await openSocket(t, server, { sub: 'tabs' })
  const third = await upgradeStatus(server, { sub: 'tabs' })
  t.equal(third.status, 429)
  t.ok(Number(third.headers['retry-after']) > 0, 'Retry-After: when a dead connection would have been reaped')
  t.equal((await upgradeStatus(server, { sub: 'someone-else' })).status, 101, 'other users are not affected')
  first.ws.close()
  await first.closed()
  await until(() => server.app.roomHub.connectionsOf('tabs') === 1, 2000, 'the closed connection to be released')
  t.equal((await upgradeStatus(server, { sub: 'tabs' })).status, 101, 'a slot frees when a connection closes')
})

t.test('a consumer that never reads is closed with 1008 once past its bound; server RSS stays bounded', async (t) => {
  // A separate server process, so its RSS (process_resident_memory_bytes) is the server's alone.
  const cwd = tempDir()
  const spawned = await waitListening(spawnServer(t, {
    WS_MAX_BUFFERED_BYTES: String(256 * 1024),
    WS_CLOSE_GRACE_MS: '30000',
    WS_MESSAGE_RATE: '100000',
    WS_MESSAGE_BURST: '1000000',
    // Retained history would survive into V8's old generation with the burst's other strings, whose
    // garbage is collected later; what this measures is the send buffer's bound alone.
    ROOM_HISTORY_SIZE: '0'
  }, cwd))
  const server = { url: spawned.url, ca: readFileSync(join(cwd, 'certs', 'dev-cert.pem')) }
  const metric = async (pattern: RegExp): Promise<number> => {
    return Number(pattern.exec(await scrapeMetricsListener(spawned.metricsUrl!))?.[1] ?? 0)
  }
  const rss = async () => await metric(/^process_resident_memory_bytes (\d+)/m)
  const slowCloses = async () => await metric(/^ws_slow_consumer_actions_total\{action="close"\} (\d+)/m)

  const publisher = await openSocket(t, server, { sub: 'publisher' })
  const stuck = await openSocket(t, server, { sub: 'stuck' })
  await publisher.request('room:join', { room: 'firehose' })
  await stuck.request('room:join', { room: 'firehose' })

  const payload = 'x'.repeat(16 * 1024)
  const messages = 4000 // 64 MiB per burst: far beyond the bound plus what the kernel's socket buffers absorb
  async function burst (): Promise<void> {
    for (let i = 0; i < messages; i++) {
      publisher.send({ event: 'room:publish', data: { room: 'firehose', payload } })
      // Paced by a round trip every 128 KiB, so a reading consumer never falls a bound behind.
      if (i % 8 === 0) await publisher.request('ping', undefined, 30_000)
    }
    // Frames are handled in order: the ack of this last one means the whole burst went through.
    await publisher.request('room:publish', { room: 'firehose', payload: 'last' }, 60_000)
  }
  // A first burst while the consumer reads grows the server's heap to its working size, so the second
  // burst measures only what a consumer that stopped reading costs.
  await burst()
  await stuck.next((m) => m.event === 'room:message' && m.data.payload === 'last', 30_000)
  rawSocketOf(stuck).pause()
  const rssBefore = await rss()
  await burst()
  const grown = (await rss()) - rssBefore
  t.equal(await slowCloses(), 1, 'the stuck consumer was closed once it passed the bound')
  // Buffering for the stuck client without a bound would hold most of the 64 MiB burst.
  t.ok(grown < 24 * 1024 * 1024, `server RSS grew by ${Math.round(grown / 1048576)} MiB during a 64 MiB burst`)

  rawSocketOf(stuck).resume()
  const closed = await stuck.closed(30_000)
  t.equal(closed.code, 1008)
  t.match(closed.reason, /slow consumer/)
})

/** A room kind and a feed, as a resource declares them (here under the `feed:` prefix). */
async function feedResource (fastify: FastifyInstance): Promise<void> {
  fastify.realtime.addRoomPolicy({ match: /^feed:/, canJoin: () => true, clientPublish: false, presence: false, slowConsumer: 'drop' })
  // An event no resource of the app declares: the names are the resources' own, checked where they declare them.
  fastify.realtime.feed('test:happened' as DomainEventName, Type.Object({ to: Type.String(), what: Type.String() }) as never, (data: unknown) => `feed:${(data as { to: string }).to}`)
}

t.test('a resource\'s room policy and feed: its rooms follow its policy, and its domain events reach them', async (t) => {
  const built = await build(t)
  await built.app.register(feedResource)
  const server = await listenOn(built)
  const watcher = await openSocket(t, server, { sub: 'watcher' })
  t.match(await watcher.request('room:join', { room: 'feed:news' }), { event: 'ack', data: { joined: true } }, 'a prefix the built-in rooms refuse')
  t.match(await watcher.request('room:publish', { room: 'feed:news', payload: 1 }), { data: { code: 'FORBIDDEN' } }, 'its policy: no client writes')
  t.match(await watcher.request('presence:list', { room: 'feed:news' }), { data: { code: 'FORBIDDEN' } }, 'its policy: no presence')
  server.app.domainEvents.emit('test:happened' as never, { to: 'news', what: 'x' } as never)
  t.same(await watcher.next((m) => m.event === 'test:happened'), { event: 'test:happened', data: { to: 'news', what: 'x', room: 'feed:news', seq: 1 } })
  t.throws(() => server.app.realtime.addRoomPolicy({ match: 'late', canJoin: () => true, clientPublish: true, presence: true }), /before it starts/,
    'policies are declared while the app registers its plugins')
})

t.test('in a room whose policy is drop, a slow consumer misses messages but stays connected', async (t) => {
  const built = await build(t, { WS_MAX_BUFFERED_BYTES: String(16 * 1024) })
  await built.app.register(feedResource)
  const server = await listenOn(built)
  const stuck = await openSocket(t, server, { sub: 'stuck' })
  await stuck.request('room:join', { room: 'feed:busy' })
  rawSocketOf(stuck).pause()
  const big = 'y'.repeat(64 * 1024)
  for (let i = 0; i < 400; i++) await server.app.roomHub.publish('feed:busy', 'changed', { id: String(i), big })
  t.ok(await metricValue(server, 'ws_slow_consumer_actions_total', { action: 'drop' }) > 0, 'messages were dropped for it')
  t.equal(await metricValue(server, 'ws_slow_consumer_actions_total', { action: 'close' }), 0)
  rawSocketOf(stuck).resume()
  t.match(await stuck.next((m) => m.event === 'changed'), { data: { seq: 1 } }, 'what fit in the buffer arrives')
  await server.app.roomHub.publish('feed:busy', 'changed', { id: 'after' })
  const next = await stuck.next((m) => m.event === 'changed' && m.data.id === 'after')
  t.equal(next.data.seq, 401, 'the next message after draining arrives; the seq gap tells the client what it missed')
  t.equal(stuck.ws.readyState, stuck.ws.OPEN, 'still connected')
  t.match(await stuck.request('ping'), { event: 'ack' })
})

t.test('metrics: open connections, messages in and out by event, errors by code, closes by code', async (t) => {
  const server = await listen(t)
  const a = await openSocket(t, server, { sub: 'a' })
  const b = await openSocket(t, server, { sub: 'b' })
  await a.request('room:join', { room: 'm' })
  await b.request('room:join', { room: 'm' })
  await a.request('room:publish', { room: 'm', payload: 1 })
  await b.next((m) => m.event === 'room:message')
  await a.request('no:such')
  b.ws.close(1000)
  await b.closed()
  await until(async () => await metricValue(server, 'ws_connections') === 1, 2000, 'the gauge to drop')
  const text = await scrapeMetrics(server.app)
  t.match(text, /^ws_connections 1$/m)
  t.match(text, /^ws_messages_received_total\{event="room:publish"\} 1$/m)
  t.match(text, /^ws_messages_received_total\{event="\(unknown\)"\} 1$/m)
  t.match(text, /^ws_messages_sent_total\{event="room:message"\} 1$/m)
  t.match(text, /^ws_messages_sent_total\{event="connection:ready"\} 2$/m)
  t.match(text, /^ws_errors_total\{code="UNKNOWN_EVENT"\} 1$/m)
  t.match(text, /^ws_closes_total\{code="1000"\} 1$/m)
})

t.test('shutdown: open sockets are closed with 1001 and a reason, and app.close() does not stall', async (t) => {
  const server = await listen(t)
  const socket = await openSocket(t, server)
  const started = Date.now()
  const [, closed] = await Promise.all([server.app.close(), socket.closed()])
  t.equal(closed.code, 1001)
  t.equal(closed.reason, 'server shutting down')
  t.ok(Date.now() - started < 5000, 'closed promptly when the peer answers the close')
})

t.test('shutdown: upgrades during the grace are refused, and a peer that ignores the close is cut at the grace', async (t) => {
  const server = await listen(t, { WS_CLOSE_GRACE_MS: '1000' })
  const deaf = await openSocket(t, server, { sub: 'deaf' })
  rawSocketOf(deaf).pause()
  const closing = server.app.close()
  await until(() => server.app.health.shuttingDown, 1000, 'shutdown to start')
  const late = await upgradeStatus(server, { sub: 'late' })
  t.equal(late.status, 503, 'no new upgrades while shutting down')
  await closing
  t.equal(server.app.webSockets.size, 0)
  rawSocketOf(deaf).resume()
  await deaf.closed()
  t.pass('app.close() resolved after terminating the peer that never answered')
})
