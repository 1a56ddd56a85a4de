// KeelClient's SSE fallback (client/sse-link.ts) and its stream parser (client/event-stream.ts), first
// against a scripted server — a fetch that answers the probe, hands out event streams the test writes
// into, and answers POST /events — with a fake clock; then against the real app behind a proxy that
// refuses WebSocket upgrades, with Node's own WebSocket and fetch.

import t from 'tap'
import { KeelClient, type KeelClientOptions } from '../../client/keel-client.ts'
import { EventStreamParser } from '../../client/event-stream.ts'
import { FakeClock, fakeSockets } from '../helpers/fake-websocket.ts'
import { until } from '../helpers/until.ts'
import { listen } from '../helpers/app.ts'
import { nextEvent, nodeFetch, nodeSocket, record, rejection, testClient, trustingAgent } from '../helpers/keel-client.ts'
import { startNoUpgradeProxy } from '../helpers/no-upgrade-proxy.ts'
import { testToken } from '../helpers/tokens.ts'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

const WAIT_MS = 3000

t.test('the event-stream parser reads events cut anywhere, with CRLF or LF, multi-line data, and skips comments', async (t) => {
  const text = '\uFEFF: ping\r\nretry: 2000\r\n\r\nid: 7\r\nevent: room:message\r\ndata: {"a":\r\ndata: 1}\r\n\r\n: ping\n\nevent: stream:ready\ndata: {}\n\ndata: plain\n\nevent: no-data\n\n'
  for (const size of [1, 2, 3, 7, text.length]) {
    const parser = new EventStreamParser()
    const events = []
    for (let i = 0; i < text.length; i += size) events.push(...parser.push(text.slice(i, i + size)))
    t.same(events, [
      { event: 'room:message', data: '{"a":\n1}', id: '7' },
      { event: 'stream:ready', data: '{}', id: undefined },
      { event: 'message', data: 'plain', id: undefined }
    ], `in chunks of ${size}`)
  }
})

/** One GET /sse the client made: its rooms and headers, and the stream the test writes into. */
interface FakeStream {
  rooms: string[]
  headers: Record<string, string>
  write: (text: string) => void
  event: (event: string, data: unknown, id?: string) => void
  end: () => void
  aborted: boolean
}

/**
 * A scripted Keel behind fetch: the probe of /ws answers `probeStatuses` in turn (426 once they run
 * out), event streams the test writes into, and POST /events answered by `answerPost`.
 */
function fakeServer (probeStatuses: number[] = []) {
  const streams: FakeStream[] = []
  const posts: Array<{ stream: string | null, body: any }> = []
  const probes: string[] = []
  let answerPost = (body: any): { status: number, body: unknown } => ({ status: 200, body: { event: 'ack', id: body.id, data: {} } })
  let refuseStream: { status: number, body: unknown } | undefined
  const fetch = async (input: string, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(input)
    const headers = Object.fromEntries(Object.entries(init.headers ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]))
    if (url.pathname === '/ws') {
      probes.push(url.searchParams.get('access_token') ?? '')
      return new Response(null, { status: probeStatuses.shift() ?? 426 })
    }
    if (url.pathname === '/events') {
      const body = JSON.parse(String(init.body))
      posts.push({ stream: url.searchParams.get('stream'), body })
      const answer = answerPost(body)
      return new Response(JSON.stringify(answer.body), { status: answer.status, headers: { 'content-type': answer.status === 200 ? 'application/json' : 'application/problem+json' } })
    }
    if (refuseStream !== undefined) {
      const refusal = refuseStream
      refuseStream = undefined
      return new Response(JSON.stringify(refusal.body), { status: refusal.status })
    }
    let controller!: ReadableStreamDefaultController<Uint8Array>
    const body = new ReadableStream<Uint8Array>({ start (c) { controller = c } })
    const encoder = new TextEncoder()
    const stream: FakeStream = {
      rooms: url.searchParams.getAll('room'),
      headers,
      aborted: false,
      write: (text) => { if (!stream.aborted) controller.enqueue(encoder.encode(text)) },
      event: (event, data, id) => { stream.write(`${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`) },
      end: () => { if (!stream.aborted) controller.close() }
    }
    init.signal?.addEventListener('abort', () => { stream.aborted = true })
    streams.push(stream)
    return new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } })
  }
  return {
    fetch,
    streams,
    posts,
    probes,
    last: () => streams.at(-1)!,
    answerPosts: (fn: typeof answerPost) => { answerPost = fn },
    refuseNextStream: (status: number, body: unknown) => { refuseStream = { status, body } },
    /** Waits for the client's `n`th stream (1-based). */
    stream: async (n: number) => { await until(() => streams.length >= n, WAIT_MS, `stream ${n}`); return streams[n - 1]! }
  }
}

const TOKEN = testToken({ sub: 'sse-user', scope: 'a b' })

function sseClient (options: Partial<KeelClientOptions> = {}, probeStatuses: number[] = []) {
  const server = fakeServer(probeStatuses)
  const clock = new FakeClock()
  const sockets = fakeSockets()
  const client = new KeelClient({
    url: 'wss://keel.test/ws',
    token: TOKEN,
    createSocket: sockets.createSocket,
    fetch: server.fetch,
    clock,
    random: () => 0.5,
    reconnect: { baseMs: 100, capMs: 1000 },
    ackTimeoutMs: 1000,
    idPrefix: 'c',
    ...options
  })
  return { client, server, clock, sockets }
}

/** Refuses the client's WebSocket twice (what it takes to fall back), the server answering 426 to each probe. */
async function refuseUpgrades (fake: ReturnType<typeof sseClient>): Promise<void> {
  fake.sockets.last().drop(1006, '')
  await until(() => fake.sockets.sockets.length === 2, WAIT_MS, 'the second WebSocket attempt')
  fake.sockets.last().drop(1006, '')
}

/** A client that fell back and is connected over SSE, in no room yet (so with no stream). */
async function overSse (options: Partial<KeelClientOptions> = {}) {
  const fake = sseClient(options)
  const ready = fake.client.connect()
  if (options.transport !== 'sse') await refuseUpgrades(fake)
  await ready
  return fake
}

/** Joins `room`: the client opens stream `n` with it; the test answers it ready. */
async function joinOverSse (fake: Awaited<ReturnType<typeof overSse>>, room: string, n: number, recovered?: Record<string, boolean>) {
  const join = fake.client.join(room)
  const stream = await fake.server.stream(n)
  stream.event('stream:ready', { connectionId: `sse-${n}`, rooms: stream.rooms, ...(recovered === undefined ? {} : { recovered }) })
  return { ack: await join, stream }
}

t.test('a WebSocket that does not open while the server answers 426: the client falls back to SSE', async (t) => {
  const fake = sseClient()
  const fallbacks = record(fake.client, 'fallback')
  const reconnecting = record(fake.client, 'reconnecting')
  const ready = fake.client.connect()
  fake.sockets.last().drop(1006, '')
  await until(() => fake.sockets.sockets.length === 2, WAIT_MS, 'the second WebSocket attempt')
  t.same(fallbacks, [], 'one refused upgrade may be a race with a restart: the WebSocket is tried again at once')
  t.same(reconnecting, [], 'without a backoff')
  fake.sockets.last().drop(1006, '')
  const exp = (JSON.parse(atob(TOKEN.split('.')[1]!)) as { exp: number }).exp
  t.same(await ready, { connectionId: '', user: { sub: 'sse-user', scopes: ['a', 'b'], exp } }, 'in no room there is no stream yet; the user as the token names it')
  t.same(fake.server.probes, [TOKEN, TOKEN, TOKEN], 'a probe after each failed socket, then the handshake check of the SSE connection')
  t.equal(fake.client.transport, 'sse')
  t.same(fallbacks.map((f) => f.transport), ['sse'])
  t.equal(fake.sockets.sockets.length, 2, 'two WebSocket attempts')

  const { stream } = await joinOverSse(fake, 'lobby', 1)
  t.equal(stream.headers.authorization, `Bearer ${TOKEN}`, 'the stream sends the token as a header')
  t.equal(stream.headers['last-event-id'], undefined, 'nothing to resume')
  stream.write(': ping\n\nretry: 2000\n\n')
  t.equal(fake.client.ready?.connectionId, 'sse-1')
})

t.test('one refused upgrade followed by a WebSocket that opens (a server restarting meanwhile) stays on WebSocket', async (t) => {
  const fake = sseClient()
  const fallbacks = record(fake.client, 'fallback')
  const ready = fake.client.connect()
  fake.sockets.last().drop(1006, '')
  await until(() => fake.sockets.sockets.length === 2, WAIT_MS, 'the second WebSocket attempt')
  fake.sockets.last().accept('ws-1')
  t.equal((await ready).connectionId, 'ws-1')
  t.equal(fake.client.transport, 'websocket')
  t.same(fallbacks, [])
  t.same(fake.server.streams, [])
})

t.test('transport: websocket never falls back; transport: sse never opens a WebSocket', async (t) => {
  const ws = sseClient({ transport: 'websocket', reconnect: { baseMs: 100, capMs: 1000, maxAttempts: 0 } })
  const ready = ws.client.connect()
  ws.sockets.last().drop(1006, '')
  t.match(await rejection(ready), { code: 'CLOSED' })
  t.same(ws.server.streams, [])
  t.same(ws.server.probes, [TOKEN], 'only the probe that found the upgrade refused')

  const sse = await overSse({ transport: 'sse' })
  t.equal(sse.sockets.sockets.length, 0)
  t.equal(sse.client.transport, 'sse')
})

t.test('over SSE, the handshake refusals stop the client like a WebSocket\'s: 401 UNAUTHORIZED, 403 ORIGIN_REFUSED; 503 is retried', async (t) => {
  for (const [status, code] of [[401, 'UNAUTHORIZED'], [403, 'ORIGIN_REFUSED']] as const) {
    const fake = sseClient({ transport: 'sse' }, [status])
    const reconnecting = record(fake.client, 'reconnecting')
    t.match(await rejection(fake.client.connect()), { code, status })
    t.same(reconnecting, [], `${status}: no retry`)
  }
  const fake = sseClient({ transport: 'sse' }, [503])
  const reconnecting = record(fake.client, 'reconnecting')
  const ready = fake.client.connect()
  await until(() => reconnecting.length > 0, WAIT_MS, 'a retry')
  fake.clock.advance(1000)
  t.equal((await ready).connectionId, '', 'connected on the next attempt')
})

t.test('over SSE, join() opens a stream with the new room set beside the old one, which closes once the new one is ready', async (t) => {
  const fake = await overSse()
  const { ack, stream } = await joinOverSse(fake, 'lobby', 1)
  t.same(stream.rooms, ['lobby'])
  t.same(ack, { room: 'lobby', joined: true, seq: 0 })
  t.same(fake.client.rooms, ['lobby'])
  t.equal(fake.client.ready?.connectionId, 'sse-1', 'requests now name the stream')

  const messages = record(fake.client, 'room:message')
  const gaps = record(fake.client, 'gap')
  stream.event('room:message', { room: 'lobby', from: 'bob', payload: 'a', seq: 4 }, '4')
  stream.event('room:message', { room: 'lobby', from: 'bob', payload: 'a', seq: 4 }, '4')
  stream.event('room:message', { room: 'lobby', from: 'bob', payload: 'b', seq: 5 }, '5')
  await until(() => messages.length >= 2, WAIT_MS, 'messages')
  t.same(messages.map((m) => m.seq), [4, 5], 'the first message sets the baseline; a repeated seq is dropped')
  t.same(gaps, [])

  t.same(await fake.client.join('lobby'), { room: 'lobby', joined: false, seq: 5 }, 'joining again reopens nothing')
  const second = await joinOverSse(fake, 'news', 2, { lobby: true })
  t.same(second.stream.rooms, ['lobby', 'news'])
  t.same(JSON.parse(second.stream.headers['last-event-id']!), { lobby: 5 }, 'the joined rooms resume from their cursor')
  t.ok(stream.aborted, 'the old stream was closed')

  const leave = fake.client.leave('lobby')
  const third = await fake.server.stream(3)
  t.same(third.rooms, ['news'])
  third.event('stream:ready', { connectionId: 'sse-3', rooms: ['news'] })
  t.same(await leave, { room: 'lobby', left: true })
  t.same(fake.client.rooms, ['news'])
  t.ok(second.stream.aborted)
})

t.test('over SSE, a refused join rejects with FORBIDDEN and the current stream goes on', async (t) => {
  const fake = await overSse()
  const { stream } = await joinOverSse(fake, 'lobby', 1)
  fake.server.refuseNextStream(403, { code: 'FORBIDDEN', detail: 'you may not join room "user:bob"' })
  t.match(await rejection(fake.client.join('user:bob')), { code: 'FORBIDDEN', message: 'you may not join room "user:bob"' })
  t.notOk(stream.aborted)
  t.same(fake.client.rooms, ['lobby'])
  t.equal(fake.client.state, 'open')
})

t.test('over SSE, requests go as POST /events?stream=<connectionId> and resolve with the ack; a problem+json refusal rejects with its code', async (t) => {
  const fake = await overSse()
  fake.server.answerPosts((body) => ({ status: 200, body: { event: 'ack', id: body.id, data: { time: 1 } } }))
  t.same(await fake.client.request('ping'), { time: 1 })
  t.same(fake.server.posts.at(-1), { stream: null, body: { event: 'ping', id: 'c:1' } }, 'in no room: no stream named')

  await joinOverSse(fake, 'lobby', 1)
  fake.server.answerPosts((body) => ({ status: 200, body: { event: 'ack', id: body.id, data: { room: 'lobby', seq: 7 } } }))
  t.same(await fake.client.publish('lobby', { text: 'hi' }), { room: 'lobby', seq: 7 })
  t.same(fake.server.posts.at(-1), { stream: 'sse-1', body: { event: 'room:publish', data: { room: 'lobby', payload: { text: 'hi' } }, id: 'c:2' } })
  t.equal(fake.client.lastSeq('lobby'), 7, 'our own publish counts as seen')

  fake.server.answerPosts(() => ({ status: 429, body: { code: 'RATE_LIMITED', detail: 'slow down' } }))
  t.match(await rejection(fake.client.publish('lobby', 'again')), { code: 'RATE_LIMITED', message: 'slow down' })
  fake.server.answerPosts(() => ({ status: 400, body: { code: 'VALIDATION', detail: 'invalid', errors: [{ path: '/data/room', message: 'pattern' }] } }))
  t.match(await rejection(fake.client.request('presence:list', { room: '' })), { code: 'VALIDATION', errors: [{ path: '/data/room' }] })

  const errors = record(fake.client, 'error')
  fake.server.answerPosts(() => ({ status: 403, body: { code: 'FORBIDDEN', detail: 'no' } }))
  fake.client.send('room:typing', { room: 'lobby', typing: true })
  await until(() => errors.length > 0, WAIT_MS, 'the error event')
  t.match(errors, [{ code: 'FORBIDDEN' }], 'a fire-and-forget refusal is an error event')
})

t.test('over SSE, a lost stream reconnects with Last-Event-ID and reports resumed per room', async (t) => {
  const fake = await overSse()
  const { stream } = await joinOverSse(fake, 'lobby', 1)
  await joinOverSse(fake, 'news', 2)
  const current = fake.server.last()
  current.event('room:message', { room: 'lobby', from: 'bob', payload: 'a', seq: 3 }, '{"lobby":3}')
  current.event('room:message', { room: 'news', from: 'bob', payload: 'b', seq: 9 }, '{"lobby":3,"news":9}')
  const messages = record(fake.client, 'room:message')
  await until(() => messages.length >= 2, WAIT_MS, 'messages')
  t.ok(stream.aborted)

  const resumed = record(fake.client, 'resumed')
  const closes = record(fake.client, 'close')
  current.end()
  await until(() => closes.length > 0, WAIT_MS, 'the close event')
  t.match(closes, [{ code: 1006, reconnect: true }])
  fake.clock.advance(1000)
  const next = await fake.server.stream(3)
  t.same(next.rooms, ['lobby', 'news'])
  t.same(JSON.parse(next.headers['last-event-id']!), { lobby: 3, news: 9 })
  next.event('stream:ready', { connectionId: 'sse-3', rooms: ['lobby', 'news'], recovered: { lobby: true, news: false } })
  await until(() => resumed.length >= 2, WAIT_MS, 'resumed events')
  t.same(resumed, [{ room: 'lobby', recovered: true, seq: 3 }, { room: 'news', recovered: false, seq: 9 }])
  next.event('room:message', { room: 'lobby', from: 'bob', payload: 'replayed', seq: 3 }, '{"lobby":3}')
  next.event('room:message', { room: 'lobby', from: 'bob', payload: 'missed', seq: 4 }, '{"lobby":4}')
  next.event('room:message', { room: 'news', from: 'bob', payload: 'restarted', seq: 1 }, '{"lobby":4,"news":1}')
  await until(() => messages.length >= 4, WAIT_MS, 'messages after the reconnect')
  t.same(messages.slice(2).map((m) => `${m.room}:${m.seq}`), ['lobby:4', 'news:1'], 'a replayed seq is dropped; after recovered: false the room counts afresh')
})

t.test('over SSE, an expired token (error event, then the end) stops a client with a static token: UNAUTHORIZED', async (t) => {
  const fake = await overSse()
  const { stream } = await joinOverSse(fake, 'lobby', 1)
  const closes = record(fake.client, 'close')
  stream.event('error', { code: 'UNAUTHORIZED', message: 'access token expired' })
  stream.end()
  await until(() => closes.length > 0, WAIT_MS, 'the close event')
  t.match(closes, [{ code: 4001, reconnect: false, error: { code: 'UNAUTHORIZED', closeCode: 4001 } }])
  t.equal(fake.client.state, 'closed')
  t.same(fake.client.rooms, ['lobby'], 'rooms are kept for a later connect()')
})

t.test('over SSE, a reconnect the server refuses with a 400 stops the client with REFUSED', async (t) => {
  const fake = await overSse()
  const { stream } = await joinOverSse(fake, 'lobby', 1)
  const closes = record(fake.client, 'close')
  fake.server.refuseNextStream(400, { code: 'BAD_REQUEST', detail: 'Last-Event-ID is not an id this stream sent' })
  stream.end()
  await until(() => closes.length > 0, WAIT_MS, 'the close event')
  fake.clock.advance(1000)
  await until(() => closes.length > 1, WAIT_MS, 'the final close event')
  t.match(closes[1], { reconnect: false, error: { code: 'REFUSED', status: 400, message: /Last-Event-ID/ } })
})

// ---- Against the real app, behind a proxy that refuses WebSocket upgrades ----

t.test('behind a proxy refusing WebSocket upgrades, Node\'s client falls back to SSE: joins, receives, publishes over POST /events', async (t) => {
  const server = await listen(t)
  const key = readFileSync(join(server.config.certsDir, 'dev-key.pem'))
  const proxy = await startNoUpgradeProxy(t, server.url, { cert: server.ca!, key, ca: server.ca! })
  const agent = trustingAgent(t, server)
  const client = new KeelClient({
    url: proxy.url.replace(/^https/, 'wss') + '/ws',
    token: testToken({ sub: 'alice' }),
    createSocket: nodeSocket(agent),
    fetch: nodeFetch(agent),
    reconnect: { baseMs: 20, capMs: 200, maxAttempts: 3 }
  })
  t.teardown(() => client.close())
  const { client: bob } = testClient(t, server, { sub: 'bob' })
  await bob.connect()
  await bob.join('lobby')

  t.equal((await client.connect()).user.sub, 'alice')
  t.equal(client.transport, 'sse')
  t.ok(proxy.refusedUpgrades() >= 1, 'the upgrade was tried first')
  t.match(await client.join('lobby'), { room: 'lobby', joined: true })
  const toAlice = nextEvent(client, 'room:message')
  await bob.publish('lobby', 'to alice')
  t.match(await toAlice, { from: 'bob', payload: 'to alice', seq: 1 })
  const toBob = nextEvent(bob, 'room:message')
  t.same(await client.publish('lobby', 'to bob'), { room: 'lobby', seq: 2 })
  t.match(await toBob, { from: 'alice', payload: 'to bob', seq: 2 })
})
