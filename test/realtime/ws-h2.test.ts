// WebSockets over HTTP/2 (RFC 8441) with Node's own http2 client: the extended CONNECT on /ws opens the
// same session as an HTTP/1.1 upgrade and is refused by the same handshake; other :protocol values
// and CONNECT elsewhere are refused; the transport is labelled in metrics and logs; and what HTTP/2
// adds — streams that share a connection, resets, SETTINGS limits, GOAWAY — keeps every promise.

import t from 'tap'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { constants, type ClientHttp2Session } from 'node:http2'
import type { Duplex } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { build, listen, listenOn, spawnServer, tempDir, waitListening, type Listening } from '../helpers/app.ts'
import { h2request } from '../helpers/http.ts'
import { testToken } from '../helpers/tokens.ts'
import { openSocket, upgradeStatus, type TestSocket } from '../helpers/ws.ts'
import { connectStatus, extendedConnect, h2WebSocketSession, openH2Socket } from '../helpers/ws-h2.ts'
import { until } from '../helpers/until.ts'
import { rapidReset } from '../../bench/soak/lib/h2-abuse.ts'

async function metricValue (app: FastifyInstance, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = app.metrics.getSingleMetric(name)
  if (metric === undefined) return 0
  const { values } = await metric.get()
  return values.filter((v) => Object.entries(labels).every(([k, l]) => String(v.labels[k]) === l)).reduce((sum, v) => sum + v.value, 0)
}

t.test('the HTTPS server advertises extended CONNECT in its HTTP/2 SETTINGS', async (t) => {
  const server = await listen(t)
  const session = await h2WebSocketSession(t, server)
  t.equal(session.remoteSettings.enableConnectProtocol, true)
})

t.test('CONNECT :protocol websocket on /ws with a valid token answers 200 and opens a Keel session: join, publish with ack, receive', async (t) => {
  const server = await listen(t)
  const session = await h2WebSocketSession(t, server)
  const alice = await openH2Socket(t, session, server, { token: testToken({ sub: 'alice', scope: 'items:read' }) })
  const bob = await openH2Socket(t, session, server, { sub: 'bob' })
  const carol = await openSocket(t, server, { sub: 'carol' })
  t.match(alice.ready, { event: 'connection:ready', data: { connectionId: String, user: { sub: 'alice', scopes: ['items:read'], exp: Number } } })

  t.match(await alice.request('room:join', { room: 'lobby' }), { event: 'ack', data: { room: 'lobby', joined: true } })
  await bob.request('room:join', { room: 'lobby' })
  await carol.request('room:join', { room: 'lobby' })
  t.same(await alice.next((m) => m.event === 'presence:join' && m.data.user === 'bob'), { event: 'presence:join', data: { user: 'bob', count: 2, room: 'lobby' } })

  t.match(await alice.request('room:publish', { room: 'lobby', payload: { text: 'hi' } }), { event: 'ack', data: { room: 'lobby', seq: 1 } })
  t.same(await bob.next((m) => m.event === 'room:message'), { event: 'room:message', data: { room: 'lobby', from: 'alice', payload: { text: 'hi' }, seq: 1 } },
    'a stream on the same connection receives it')
  t.match(await carol.next((m) => m.event === 'room:message'), { data: { from: 'alice', seq: 1 } }, 'and so does an HTTP/1.1 socket')
  t.match(await carol.request('room:publish', { room: 'lobby', payload: 'back' }), { event: 'ack', data: { seq: 2 } })
  t.match(await alice.next((m) => m.event === 'room:message'), { data: { from: 'carol', payload: 'back', seq: 2 } })
  t.match(await alice.request('no:such'), { event: 'error', data: { code: 'UNKNOWN_EVENT' } }, 'errors answer the id, as over HTTP/1.1')
  t.equal((await h2request(session, '/health/live')).status, 200, 'the connection still serves requests beside its WebSockets')
})

t.test('the handshake refuses an extended CONNECT exactly as it refuses an HTTP/1.1 upgrade', async (t) => {
  const server = await listen(t, { CORS_ORIGINS: 'https://app.example', WS_MAX_CONNECTIONS_PER_USER: '1' })
  const session = await h2WebSocketSession(t, server)

  t.test('no token → 401 with a Bearer challenge, as problem+json', async (t) => {
    const h2 = await connectStatus(session, server, { anonymous: true })
    const h1 = await upgradeStatus(server, { anonymous: true })
    t.equal(h2.status, 401)
    t.equal(h2.status, h1.status)
    t.equal(h2.headers['www-authenticate'], h1.headers['www-authenticate'])
    t.match(h2.headers['content-type'], /^application\/problem\+json/)
    t.match(JSON.parse(h2.body), { status: 401, code: 'UNAUTHORIZED', instance: '/ws' })
  })

  t.test('an invalid token → 401 invalid_token, never echoed', async (t) => {
    const h2 = await connectStatus(session, server, { token: 'not-a-jwt', queryToken: true })
    t.equal(h2.status, 401)
    t.match(h2.headers['www-authenticate'], /error="invalid_token"/)
    t.notMatch(h2.body, /not-a-jwt/)
  })

  t.test('an Origin outside CORS_ORIGINS → 403; a listed one and the server\'s own are accepted', async (t) => {
    const foreign = await connectStatus(session, server, { headers: { origin: 'https://evil.example' } })
    t.equal(foreign.status, 403)
    t.equal(foreign.status, (await upgradeStatus(server, { headers: { origin: 'https://evil.example' } })).status)
    t.match(JSON.parse(foreign.body), { code: 'FORBIDDEN' })
    t.equal((await connectStatus(session, server, { sub: 'o1', headers: { origin: 'https://app.example' } })).status, 200)
    t.equal((await connectStatus(session, server, { sub: 'o2', headers: { origin: `https://127.0.0.1:${server.port}` } })).status, 200)
  })

  t.test('over the per-user cap → 429 with Retry-After, the cap counting sessions of both transports', async (t) => {
    const first = await openH2Socket(t, session, server, { sub: 'capped' })
    const h2 = await connectStatus(session, server, { sub: 'capped' })
    const h1 = await upgradeStatus(server, { sub: 'capped' })
    t.equal(h2.status, 429)
    t.equal(h1.status, 429, 'an HTTP/2 session fills the slot an upgrade would take')
    t.equal(h2.headers['retry-after'], h1.headers['retry-after'])
    t.match(JSON.parse(h2.body), { code: 'RATE_LIMITED' })
    first.ws.close()
    await first.closed()
    await until(() => server.app.roomHub.connectionsOf('capped') === 0, 2000, 'the slot to free')
    t.equal((await connectStatus(session, server, { sub: 'capped' })).status, 200, 'a slot frees when the stream\'s session closes')
  })
})

t.test('other :protocol values, CONNECT elsewhere and a tunnel CONNECT are refused; the connection keeps serving', async (t) => {
  const server = await listen(t)
  const session = await h2WebSocketSession(t, server)
  const other = await connectStatus(session, server, { protocol: 'webtransport' })
  t.equal(other.status, 400)
  t.match(JSON.parse(other.body), { status: 400, code: 'BAD_REQUEST', instance: '/ws' })
  const badVersion = await connectStatus(session, server, { headers: { 'sec-websocket-version': '8' } })
  t.equal(badVersion.status, 400)
  t.equal(badVersion.headers['sec-websocket-version'], '13', 'the version the server speaks')
  const route = await connectStatus(session, server, { path: '/health/live' })
  t.equal(route.status, 405, 'a path that answers other methods')
  t.match(JSON.parse(route.body), { code: 'METHOD_NOT_ALLOWED', instance: '/health/live' })
  t.notMatch(route.headers.allow, /CONNECT/)
  const nowhere = await connectStatus(session, server, { path: '/nowhere' })
  t.equal(nowhere.status, 404)
  t.match(JSON.parse(nowhere.body), { code: 'NOT_FOUND' })

  const tunnel = session.request({ ':method': 'CONNECT', ':authority': 'example.com:443' }, { endStream: false })
  tunnel.on('error', () => {})
  const [head] = await once(tunnel, 'response') as [Record<string, string>]
  t.ok(Number(head[':status']) >= 400 && Number(head[':status']) < 500, `a tunnel request is refused (${head[':status']})`)
  tunnel.close()

  t.equal((await h2request(session, '/health/live')).status, 200)
  const socket = await openH2Socket(t, session, server)
  t.match(await socket.request('ping'), { event: 'ack' })
})

t.test('an HTTP/1.1 CONNECT is still refused', async (t) => {
  const server = await listen(t)
  const { connect } = await import('node:tls')
  const socket = connect({ port: server.port, host: '127.0.0.1', servername: 'localhost', ca: server.ca, ALPNProtocols: ['http/1.1'] })
  t.teardown(() => socket.destroy())
  await once(socket, 'secureConnect')
  socket.end('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n')
  let answer = ''
  socket.setEncoding('utf8')
  for await (const chunk of socket) answer += chunk as string
  t.notMatch(answer, /^HTTP\/1\.1 2/, 'no tunnel')
})

t.test('metrics and logs label the transport: h2 for an extended CONNECT, h1 for an upgrade; a query token is never logged', async (t) => {
  const server = await listen(t)
  const session = await h2WebSocketSession(t, server)
  const token = testToken({ sub: 'user-1' })
  const overH2 = await openH2Socket(t, session, server, { token, queryToken: true })
  const overH1 = await openSocket(t, server, { sub: 'user-2' })
  t.equal(await metricValue(server.app, 'ws_connections_opened_total', { transport: 'h2' }), 1)
  t.equal(await metricValue(server.app, 'ws_connections_opened_total', { transport: 'h1' }), 1)
  const opened = server.logs.lines().filter((l) => l.msg === 'WebSocket session opened')
  t.same(opened.map((l) => [l.connectionId, l.transport]).sort(), [[overH2.ready.data.connectionId, 'h2'], [overH1.ready.data.connectionId, 'h1']].sort())
  overH2.ws.close(1000)
  await overH2.closed()
  await server.logs.waitFor(/"transport":"h2"[^\n]*"msg":"WebSocket session closed"|"msg":"WebSocket session closed"[^\n]*"transport":"h2"/)
  t.match(server.logs.text(), /"method":"CONNECT","url":"\/ws\?access_token=\[REDACTED\]"/, 'the CONNECT was logged, its token redacted')
  t.notMatch(server.logs.text(), token.split('.')[2]!)
})

t.test('a frame over WS_MAX_PAYLOAD_BYTES closes the stream\'s session with 1009', async (t) => {
  const server = await listen(t, { WS_MAX_PAYLOAD_BYTES: '1024' })
  const session = await h2WebSocketSession(t, server)
  const socket = await openH2Socket(t, session, server)
  socket.send({ event: 'ping', data: 'x'.repeat(2048) })
  t.equal((await socket.closed()).code, 1009)
  await until(async () => await metricValue(server.app, 'ws_closes_total', { code: '1009' }) === 1, 2000, 'the close to be counted')
})

t.test('a reset stream ends its session: it leaves its rooms and frees its slot; the connection\'s other streams go on', async (t) => {
  const server = await listen(t)
  const session = await h2WebSocketSession(t, server)
  const watcher = await openH2Socket(t, session, server, { sub: 'watcher' })
  const leaver = await openH2Socket(t, session, server, { sub: 'leaver' })
  await watcher.request('room:join', { room: 'r' })
  await leaver.request('room:join', { room: 'r' })
  await watcher.next((m) => m.event === 'presence:join')
  leaver.stream.close(constants.NGHTTP2_CANCEL)
  t.same(await watcher.next((m) => m.event === 'presence:leave'), { event: 'presence:leave', data: { user: 'leaver', count: 1, room: 'r' } })
  await until(() => server.app.roomHub.connectionsOf('leaver') === 0 && server.app.webSockets.size === 1, 2000, 'the reset session to be released')
  t.match(await watcher.request('ping'), { event: 'ack' })
})

t.test('the heartbeat pings over the stream, and a peer that answers stays connected', async (t) => {
  const server = await listen(t, { WS_PING_INTERVAL_MS: '200', WS_PONG_TIMEOUT_MS: '100' })
  const session = await h2WebSocketSession(t, server)
  const socket = await openH2Socket(t, session, server)
  let pings = 0
  socket.ws.on('ping', () => { pings++ })
  await until(() => pings >= 3, 5000, 'three pings')
  t.match(await socket.request('ping'), { event: 'ack' }, 'still connected after several ping rounds')
})

t.test('an idle WebSocket keeps its HTTP/2 connection past HTTP2_SESSION_TIMEOUT_MS: the heartbeat is activity', async (t) => {
  const server = await listen(t, { HTTP2_SESSION_TIMEOUT_MS: '1000', WS_PING_INTERVAL_MS: '300', WS_PONG_TIMEOUT_MS: '200' })
  const session = await h2WebSocketSession(t, server)
  let goaway = false
  session.on('goaway', () => { goaway = true })
  const socket = await openH2Socket(t, session, server)
  let pings = 0
  socket.ws.on('ping', () => { pings++ })
  await until(() => pings >= 8, 10_000, 'eight pings (2.4 s, over twice the session timeout)')
  t.notOk(goaway, 'no GOAWAY')
  t.equal((await h2request(session, '/health/live')).status, 200, 'the connection still takes new streams')
  t.match(await socket.request('ping'), { event: 'ack' })
})

t.test('the rate limit counts an extended CONNECT as it counts an upgrade (one budget per user)', async (t) => {
  const server = await listen(t, { RATE_LIMIT_MAX: '2' })
  const session = await h2WebSocketSession(t, server)
  t.equal((await connectStatus(session, server, { sub: 'limited' })).status, 200)
  t.equal((await upgradeStatus(server, { sub: 'limited' })).status, 101)
  const h2 = await connectStatus(session, server, { sub: 'limited' })
  t.equal(h2.status, 429)
  t.match(JSON.parse(h2.body), { code: 'RATE_LIMITED' })
  t.ok(Number(h2.headers['retry-after']) > 0)
  t.equal((await upgradeStatus(server, { sub: 'limited' })).status, 429)
})

/** A room kind whose slow consumers are dropped, not closed (as a resource would declare it). */
async function dropRooms (fastify: FastifyInstance): Promise<void> {
  fastify.realtime.addRoomPolicy({ match: /^feed:/, canJoin: () => true, clientPublish: false, presence: false, slowConsumer: 'drop' })
}

/**
 * Two WebSockets on one connection whose stream window is small (its connection window large), both
 * in `room`; the first stream is no longer read, so the server's sends to it stop at the window.
 */
async function oneStreamStalled (t: Parameters<typeof h2WebSocketSession>[0], server: Listening, room: string): Promise<{ session: ClientHttp2Session, stuck: TestSocket & { stream: Duplex }, lively: TestSocket }> {
  const session = await h2WebSocketSession(t, server, { settings: { initialWindowSize: 4096 } })
  session.setLocalWindowSize(8 * 1024 * 1024)
  const stuck = await openH2Socket(t, session, server, { sub: 'stuck' })
  const lively = await openH2Socket(t, session, server, { sub: 'lively' })
  await stuck.request('room:join', { room })
  await lively.request('room:join', { room })
  stuck.stream.pause()
  return { session, stuck, lively }
}

/**
 * Publishes 8 KiB messages to `room` one at a time, each once `lively` has received the one before,
 * while `going` holds (at most 20: Node's client takes ~64 KiB into a paused stream before its window
 * closes, then the server's buffer fills). Resolves with the numbers `lively` received.
 */
async function publishBesideStalled (app: FastifyInstance, lively: TestSocket, room: string, going: () => boolean): Promise<number[]> {
  const big = 'y'.repeat(8 * 1024)
  const received: number[] = []
  for (let i = 1; i <= 20 && going(); i++) {
    await app.roomHub.publish(room, 'changed', { i, big })
    received.push((await lively.next((m) => m.event === 'changed')).data.i)
  }
  return received
}

t.test('a slow reader on one h2 WebSocket stream does not stall a REST request on the same connection', async (t) => {
  const built = await build(t, { WS_MAX_BUFFERED_BYTES: String(16 * 1024) })
  await built.app.register(dropRooms)
  const server = await listenOn(built)
  const { session, stuck, lively } = await oneStreamStalled(t, server, 'feed:busy')
  const delivered = await publishBesideStalled(server.app, lively, 'feed:busy', () => true)
  t.same(delivered, Array.from({ length: 20 }, (_, i) => i + 1), 'another stream of the connection receives every message, in order')
  t.ok(await metricValue(server.app, 'ws_slow_consumer_actions_total', { action: 'drop' }) > 0, 'the stalled stream is treated as a slow consumer')

  const started = Date.now()
  const rest = await h2request(session, '/health/live')
  t.equal(rest.status, 200, 'a REST request on the same connection is answered')
  t.ok(Date.now() - started < 2000, 'promptly')

  stuck.stream.resume()
  // The ack is written behind what the server still held for the stream: once it arrives, that has drained.
  t.match(await stuck.request('ping'), { event: 'ack' })
  await server.app.roomHub.publish('feed:busy', 'changed', { i: 'after' })
  t.match(await stuck.next((m) => m.event === 'changed' && m.data.i === 'after'), { data: { seq: 21 } }, 'the stream flows again once read')
  t.equal(stuck.ws.readyState, stuck.ws.OPEN)
})

t.test('a stream that is not read is closed as a slow consumer (1008, or reset after the grace), the connection\'s other streams untouched', async (t) => {
  const server = await listen(t, { WS_MAX_BUFFERED_BYTES: String(16 * 1024), WS_CLOSE_GRACE_MS: '300' })
  const { session, lively } = await oneStreamStalled(t, server, 'busy')
  await publishBesideStalled(server.app, lively, 'busy', () => server.app.webSockets.size === 2)
  t.equal(await metricValue(server.app, 'ws_slow_consumer_actions_total', { action: 'close' }), 1)
  await until(() => server.app.webSockets.size === 1 && server.app.roomHub.connectionsOf('stuck') === 0, 3000, 'the slow stream\'s session to end')
  t.match(await lively.request('ping'), { event: 'ack' }, 'the other stream still serves')
  t.equal((await h2request(session, '/health/live')).status, 200)
})

t.test('HTTP2_MAX_CONCURRENT_STREAMS counts WebSocket streams, and a closed one frees its slot', async (t) => {
  const server = await listen(t, { HTTP2_MAX_CONCURRENT_STREAMS: '2' })
  const session = await h2WebSocketSession(t, server)
  t.equal(session.remoteSettings.maxConcurrentStreams, 2)
  // Opened and closed one after another, more times than the limit: each closed stream gives its slot back.
  for (let i = 0; i < 4; i++) {
    const socket = await openH2Socket(t, session, server, { sub: `serial-${i}` })
    socket.ws.close()
    await socket.closed()
    await until(() => server.app.webSockets.size === 0, 2000, 'the server to release the stream')
  }
  await openH2Socket(t, session, server, { sub: 'a' })
  await openH2Socket(t, session, server, { sub: 'b' })
  const third = extendedConnect(session, server, { sub: 'c' })
  third.catch(() => {})
  const early = await Promise.race([third.then(() => 'opened', () => 'refused'), new Promise((resolve) => setTimeout(resolve, 500, 'waiting'))])
  t.equal(early, 'waiting', 'a third stream waits while two WebSocket streams are open')
})

t.test('rapid reset with CONNECT streams: the abusive connection is cut, nothing leaks, the same user is served', async (t) => {
  // Load shedding off: the abuse may delay the event loop, and a 503 from it is not what this test is about.
  const server = await listen(t, { RATE_LIMIT_MAX: '100000', SHED_MAX_EVENT_LOOP_DELAY_MS: '0' })
  const authorization = `Bearer ${testToken({ sub: 'abuser' })}`
  // Raw frames: node:http2's own client paces streams and holds a cancel until its stream went out.
  const resets = await rapidReset(server, { path: '/ws', webSocket: true, headers: { authorization }, streams: 2000, perConnection: 2000, maxMs: 20_000 })
  t.equal(resets.connections[0]!.cut, 'goaway', `the server ended the connection after ${resets.connections[0]!.lastStreamId ?? '?'} as its last stream`)

  await until(() => server.app.webSockets.size === 0 && server.app.roomHub.connectionsOf('abuser') === 0, 5000, 'no session of the abuser left')
  const session = await h2WebSocketSession(t, server)
  const socket = await openH2Socket(t, session, server, { sub: 'abuser' })
  t.match(await socket.request('ping'), { event: 'ack' }, 'the same user opens a session at once: no slot was leaked')
})

/** Opens `count` WebSockets over `sessions` HTTP/2 connections to a spawned server. */
async function openMany (t: Parameters<typeof openSocket>[0], server: Pick<Listening, 'url' | 'ca'>, sessions: number, count: number): Promise<Array<{ session: ClientHttp2Session, socket: TestSocket }>> {
  const connections = await Promise.all(Array.from({ length: sessions }, async () => await h2WebSocketSession(t, server)))
  return await Promise.all(Array.from({ length: count }, async (_, i) => {
    const session = connections[i % sessions]!
    return { session, socket: await openH2Socket(t, session, server, { sub: `user-${i}` }) }
  }))
}

t.test('shutdown under load: every h2 WebSocket receives 1001 before its connection\'s GOAWAY; the process exits 0', async (t) => {
  const dir = tempDir()
  const spawned = await waitListening(spawnServer(t, { WS_MESSAGE_RATE: '100000', WS_MESSAGE_BURST: '1000000', RATE_LIMIT_MAX: '100000' }, dir))
  const server = { url: spawned.url, ca: readFileSync(join(dir, 'certs', 'dev-cert.pem')) }
  const open = await openMany(t, server, 3, 30)
  await Promise.all(open.map(async ({ socket }) => await socket.request('room:join', { room: 'load' })))

  const events: string[] = []
  for (const session of new Set(open.map((o) => o.session))) session.on('goaway', () => events.push('goaway'))
  // A socket's 'close' event waits for its stream to end, which the client may report after the GOAWAY that
  // followed it on the wire; the close frame's arrival is what the order is about. ws's receiver reports it
  // ('conclude') as it parses the frame, before the client's reply that the server waits for before GOAWAY.
  for (const { socket } of open) {
    const receiver = (socket.ws as unknown as { _receiver: { once: (e: 'conclude', fn: (code: number) => void) => void } })._receiver
    receiver.once('conclude', (code) => events.push(`close:${code}`))
  }
  const closes = open.map(async ({ socket }) => await socket.closed(15_000))
  // Load: every socket publishes to the room (everyone receives) until it is closed, or at most 100,000 times.
  const load = open.map(async ({ socket }) => {
    for (let n = 0; n < 100_000 && socket.ws.readyState === socket.ws.OPEN; n++) {
      socket.send({ event: 'room:publish', data: { room: 'load', payload: 'x'.repeat(200) } })
      await new Promise((resolve) => setImmediate(resolve))
    }
  })
  await Promise.all(open.map(async ({ socket }) => await socket.next((m) => m.event === 'room:message', 10_000)))

  spawned.proc.kill('SIGTERM')
  const results = await Promise.all(closes)
  await Promise.all(load)
  t.same(new Set(results.map((r) => r.code)), new Set([1001]), 'every WebSocket stream closed with 1001')
  t.equal(await spawned.exited, 0, 'exit 0')
  const firstGoaway = events.indexOf('goaway')
  const lastClose = events.findLastIndex((e) => e.startsWith('close:'))
  t.ok(firstGoaway > lastClose, `the connections' GOAWAY came after the last 1001 (${events.filter((e) => e === 'goaway').length} GOAWAY seen)`)
})
