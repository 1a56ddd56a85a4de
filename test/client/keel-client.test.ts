// KeelClient (client/keel-client.ts): first against a scripted socket and a fake clock (backoff, acks,
// timeouts, seq bookkeeping, resume), then against the real app over TLS (messages with acks, a server
// restart, a lost connection recovered from the room history, a lost ack re-sent without a duplicate).

import t from 'tap'
import type WebSocket from 'ws'
import { KeelClient, KeelClientError, type KeelClientOptions, type WebSocketLike } from '../../client/keel-client.ts'
import { FakeClock, fakeSockets, flushMicrotasks } from '../helpers/fake-websocket.ts'
import { build, listen, tempDir } from '../helpers/app.ts'
import { nextEvent, record, rejection, testClient, trustedSocket } from '../helpers/keel-client.ts'

const BASE = 100
const CAP = 1000

/** The probe after a failed open finds no server: the attempt counts as failed, to be retried. */
const offline = async (): Promise<Response> => { throw new TypeError('fetch failed') }

/** A client on a fake socket, clock and network; `random` answers `randoms` in turn (0.5 once they run out). */
function fakeClient (options: Partial<KeelClientOptions> = {}, randoms: number[] = []) {
  const clock = new FakeClock()
  const sockets = fakeSockets()
  const client = new KeelClient({
    url: 'wss://keel.test/ws',
    token: 'token-1',
    createSocket: sockets.createSocket,
    fetch: offline,
    clock,
    random: () => randoms.shift() ?? 0.5,
    ackTimeoutMs: 1000,
    connectTimeoutMs: 5000,
    reconnect: { baseMs: BASE, capMs: CAP },
    idPrefix: 'c',
    ...options
  })
  return { client, clock, sockets }
}

/** Connects a fake client: the first socket accepts at once. */
async function connected (options: Partial<KeelClientOptions> = {}, randoms: number[] = []) {
  const fake = fakeClient(options, randoms)
  const ready = fake.client.connect()
  fake.sockets.last().accept()
  await ready
  return fake
}

/** Joins `room` on the current socket; the server answers with `seq`. */
async function joined (fake: ReturnType<typeof fakeClient>, room: string, seq: number) {
  const join = fake.client.join(room)
  fake.sockets.last().answer('room:join', { room, joined: true, seq })
  return await join
}

t.test('connect() sends the token as ?access_token= and resolves on connection:ready', async (t) => {
  const { client, sockets } = fakeClient({ url: 'wss://keel.test/ws?v=1' })
  const opened = record(client, 'open')
  const ready = client.connect()
  t.equal(client.state, 'connecting')
  const url = new URL(sockets.last().url)
  t.equal(url.searchParams.get('access_token'), 'token-1')
  t.equal(url.searchParams.get('v'), '1', 'the URL\'s own query is kept')
  sockets.last().accept('conn-9', 'alice')
  t.same(await ready, { connectionId: 'conn-9', user: { sub: 'alice', scopes: [], exp: 0 } })
  t.equal(client.state, 'open')
  t.same(opened.map((o) => o.connectionId), ['conn-9'])
  t.equal((await client.connect()).connectionId, 'conn-9', 'connect() again while open is harmless')
  t.equal(sockets.sockets.length, 1)
})

t.test('requests: acks are promises, server errors reject with the server\'s code', async (t) => {
  const { client, sockets } = await connected()
  const socket = sockets.last()

  const ping = client.request('ping')
  t.same(socket.sent.at(-1), { event: 'ping', id: 'c:1' }, 'an id on every request, no data when there is none')
  socket.answer('ping', { time: 42 })
  t.same(await ping, { time: 42 })

  const join = client.join('user:bob')
  socket.answer('room:join', undefined, { code: 'FORBIDDEN', message: 'you may not join room "user:bob"' })
  const forbidden = await rejection(join)
  t.equal(forbidden.code, 'FORBIDDEN')
  t.equal(forbidden.message, 'you may not join room "user:bob"')
  t.same(client.rooms, [], 'a refused room is not remembered')

  const bad = client.request('room:join', { room: 'has space' })
  socket.receive({ event: 'error', id: socket.sent.at(-1)!.id, data: { code: 'VALIDATION', message: 'invalid', errors: [{ path: '/data/room', message: 'pattern' }] } })
  t.match(await rejection(bad), { code: 'VALIDATION', errors: [{ path: '/data/room' }] })
})

t.test('a request without an answer rejects with ACK_TIMEOUT after ackTimeoutMs; a late ack is ignored', async (t) => {
  const { client, clock, sockets } = await connected()
  const ping = client.request('ping')
  clock.advance(999)
  clock.advance(1)
  t.equal((await rejection(ping)).code, 'ACK_TIMEOUT')
  sockets.last().answer('ping', { time: 1 })
  const errors = record(client, 'error')
  t.same(errors, [])
  t.equal(client.state, 'open', 'a timeout does not close the connection')
})

t.test('a request while not connected rejects with NOT_CONNECTED', async (t) => {
  const { client } = fakeClient()
  t.equal((await rejection(client.request('ping'))).code, 'NOT_CONNECTED')
  t.equal((await rejection(client.join('lobby'))).code, 'NOT_CONNECTED')
  t.same(client.rooms, [])
})

t.test('pending requests reject with CLOSED when the connection drops', async (t) => {
  const { client, sockets } = await connected()
  const presence = client.presence('lobby')
  sockets.last().drop(1001, 'server shutting down')
  t.match(await rejection(presence), { code: 'CLOSED', closeCode: 1001 })
})

t.test('an error frame that answers no request is emitted as an error event', async (t) => {
  const { client, sockets } = await connected()
  const errors = record(client, 'error')
  sockets.last().receive({ event: 'error', data: { code: 'RATE_LIMITED', message: 'slow down' } })
  t.equal(errors.length, 1)
  t.match(errors[0], { code: 'RATE_LIMITED', message: 'slow down' })
  t.ok(errors[0] instanceof KeelClientError)
})

t.test('reconnect delays grow exponentially, are jittered by the injected random, and are capped', async (t) => {
  const randoms = [0.5, 0.25, 0.99, 0.5, 0.75, 0.999, 0.1]
  const { client, clock, sockets } = await connected({}, [...randoms])
  const reconnecting = record(client, 'reconnecting')
  const closes = record(client, 'close')
  sockets.last().drop()
  t.same(closes, [{ code: 1006, reason: '', reconnect: true }])
  for (let attempt = 1; attempt <= randoms.length; attempt++) {
    const delay = reconnecting.at(-1)!.delayMs
    const before = sockets.sockets.length
    clock.advance(delay - 1)
    t.equal(sockets.sockets.length, before, `attempt ${attempt} waits its delay`)
    clock.advance(1)
    t.equal(sockets.sockets.length, before + 1, `attempt ${attempt} opens a socket after ${delay} ms`)
    sockets.last().drop() // refused before open: a failed attempt
    await flushMicrotasks() // the probe's answer: no server
  }
  const expected = randoms.map((r, i) => ({ attempt: i + 1, delayMs: Math.floor(r * Math.min(CAP, BASE * 2 ** i)) }))
  t.same(reconnecting.slice(0, randoms.length), expected)
  t.same(expected.map((e) => e.delayMs), [50, 50, 396, 400, 750, 999, 100], 'ceilings 100, 200, 400, 800, then the 1000 cap')
  t.equal(closes.length, 1, 'failed attempts are not connections that closed')
  t.equal(client.state, 'reconnecting')
})

t.test('the backoff starts over after a successful connection', async (t) => {
  const { client, clock, sockets } = await connected({}, [0.999, 0.999, 0.999, 0.999, 0.999])
  const reconnecting = record(client, 'reconnecting')
  sockets.last().drop()
  clock.advance(reconnecting.at(-1)!.delayMs)
  sockets.last().drop()
  await flushMicrotasks()
  clock.advance(reconnecting.at(-1)!.delayMs)
  sockets.last().drop()
  await flushMicrotasks()
  t.same(reconnecting.map((r) => r.attempt), [1, 2, 3])
  clock.advance(reconnecting.at(-1)!.delayMs)
  sockets.last().accept('conn-2')
  t.equal(client.state, 'open')
  sockets.last().drop()
  t.same(reconnecting.at(-1), { attempt: 1, delayMs: 99 }, 'back to the first ceiling')
})

t.test('after maxAttempts failed attempts the client gives up: close {reconnect: false}, connect() rejects', async (t) => {
  const { client, clock, sockets } = fakeClient({ reconnect: { baseMs: BASE, capMs: CAP, maxAttempts: 2 } })
  const closes = record(client, 'close')
  const ready = client.connect()
  sockets.last().drop()
  await flushMicrotasks()
  clock.advance(CAP)
  sockets.last().drop()
  await flushMicrotasks()
  clock.advance(CAP)
  sockets.last().drop(1006, 'refused')
  await flushMicrotasks()
  t.match(await rejection(ready), { code: 'CLOSED', closeCode: 1006 })
  t.equal(sockets.sockets.length, 3, 'the first attempt and two retries')
  t.same(closes, [{ code: 1006, reason: 'refused', reconnect: false }])
  t.equal(client.state, 'closed')
  t.equal(clock.pending, 0, 'no timer left behind')
})

t.test('close() is final: no reconnect, pending requests reject with CLOSED, rooms forgotten', async (t) => {
  const { client, clock, sockets } = await connected()
  await joined({ client, clock, sockets }, 'lobby', 0)
  const closes = record(client, 'close')
  const ping = client.request('ping')
  const socket = sockets.last()
  client.close()
  t.same(socket.closedByClient, { code: 1000, reason: 'client closed' })
  t.equal((await rejection(ping)).code, 'CLOSED')
  t.same(closes, [{ code: 1000, reason: 'client closed', reconnect: false }])
  socket.drop(1000) // the close event arriving later changes nothing
  clock.advance(60_000)
  t.equal(sockets.sockets.length, 1)
  t.same(client.rooms, [])
  t.equal(clock.pending, 0)
})

t.test('close() during a reconnect wait cancels it', async (t) => {
  const { client, clock, sockets } = await connected()
  sockets.last().drop()
  t.equal(client.state, 'reconnecting')
  client.close()
  clock.advance(60_000)
  t.equal(sockets.sockets.length, 1)
})

t.test('token expiry (4001): a static token stops the client with UNAUTHORIZED; a token function is asked for a new one', async (t) => {
  t.test('static token', async (t) => {
    const { client, clock, sockets } = await connected()
    const closes = record(client, 'close')
    const pending = client.request('ping')
    sockets.last().drop(4001, 'access token expired')
    t.match(closes, [{ code: 4001, reason: 'access token expired', reconnect: false, error: { code: 'UNAUTHORIZED', closeCode: 4001 } }])
    t.match(await rejection(pending), { code: 'UNAUTHORIZED' }, 'what was pending fails with the same typed error')
    clock.advance(60_000)
    t.equal(sockets.sockets.length, 1)
    t.equal(client.state, 'closed')
  })

  t.test('token function', async (t) => {
    let issued = 0
    const { client, clock, sockets } = fakeClient({ token: async () => `fresh-${++issued}` })
    const ready = client.connect()
    await flushMicrotasks()
    sockets.last().accept()
    await ready
    sockets.last().drop(4001, 'access token expired')
    t.equal(client.state, 'reconnecting')
    clock.advance(BASE)
    await flushMicrotasks()
    t.equal(new URL(sockets.last().url).searchParams.get('access_token'), 'fresh-2', 'each attempt fetches a token')
  })

  t.test('a token function that fails counts as a failed attempt', async (t) => {
    const { client, clock, sockets } = fakeClient({ token: () => { throw new Error('refresh failed') } })
    const reconnecting = record(client, 'reconnecting')
    const ready = client.connect()
    t.equal(sockets.sockets.length, 0)
    t.same(reconnecting.map((r) => r.attempt), [1])
    client.close()
    t.equal((await rejection(ready)).code, 'CLOSED')
    clock.advance(60_000)
    t.equal(sockets.sockets.length, 0)
  })
})

t.test('an upgrade that never reaches connection:ready is abandoned after connectTimeoutMs and retried', async (t) => {
  const { client, clock, sockets } = fakeClient()
  const ready = client.connect()
  const first = sockets.last()
  clock.advance(4999)
  t.equal(first.closedByClient, undefined)
  clock.advance(1)
  t.same(first.closedByClient, { code: 1000, reason: 'no connection:ready in time' })
  await flushMicrotasks()
  t.equal(client.state, 'reconnecting')
  clock.advance(BASE)
  sockets.last().accept()
  t.equal((await ready).connectionId, 'conn-1')
})

t.test('a probe that gets no answer is abandoned after probeTimeoutMs and the attempt retried', async (t) => {
  const hanging = async (_url: string, init?: RequestInit): Promise<Response> => await new Promise((_resolve, reject) => {
    init?.signal?.addEventListener('abort', () => { reject(new Error('aborted')) })
  })
  const { client, clock, sockets } = fakeClient({ fetch: hanging, probeTimeoutMs: 2000 })
  const reconnecting = record(client, 'reconnecting')
  client.connect().catch(() => {})
  sockets.last().drop()
  clock.advance(1999)
  await flushMicrotasks()
  t.same(reconnecting, [], 'still asking')
  clock.advance(1)
  await flushMicrotasks()
  t.same(reconnecting.map((r) => r.attempt), [1], 'retried')
  client.close()
})

t.test('sequenced messages: duplicates dropped, gaps reported, own publishes neither', async (t) => {
  const fake = await connected()
  const { client, sockets } = fake
  t.same(await joined(fake, 'lobby', 3), { room: 'lobby', joined: true, seq: 3 })
  const socket = sockets.last()
  const messages = record(client, 'room:message')
  const gaps = record(client, 'gap')
  const message = (seq: number) => socket.receive({ event: 'room:message', data: { room: 'lobby', from: 'bob', payload: seq, seq } })

  message(3) // already covered by the join's seq
  message(4)
  message(4)
  message(2)
  t.same(messages.map((m) => m.seq), [4], 'seq ≤ last seen is dropped')

  const publish = client.publish('lobby', 'mine')
  socket.answer('room:publish', { room: 'lobby', seq: 5 })
  t.same(await publish, { room: 'lobby', seq: 5 })
  message(6)
  t.same(gaps, [], 'our own message (5) is not a gap: the server never echoes it')

  message(9)
  t.same(gaps, [{ room: 'lobby', after: 6, seq: 9 }])
  t.same(messages.map((m) => m.seq), [4, 6, 9])
  t.equal(client.lastSeq('lobby'), 9)

  socket.receive({ event: 'room:typing', data: { room: 'lobby', user: 'bob', typing: true } })
  socket.receive({ event: 'room:message', data: { room: 'elsewhere', from: 'bob', payload: 1, seq: 1 } })
  t.equal(messages.length, 4, 'rooms the client does not track are passed through')
})

t.test('after a reconnect every room is re-joined with since = last seen seq and reports resumed', async (t) => {
  const fake = await connected()
  const { client, clock, sockets } = fake
  await joined(fake, 'lobby', 0)
  await joined(fake, 'news', 10)
  await joined(fake, 'quiet', 0)
  sockets.last().receive({ event: 'room:message', data: { room: 'lobby', from: 'bob', payload: 'a', seq: 1 } })
  const resumed = record(client, 'resumed')
  const messages = record(client, 'room:message')
  sockets.last().drop()
  clock.advance(BASE)
  const socket = sockets.last()
  socket.accept('conn-2')
  t.same(socket.sent.map((f) => f.data), [{ room: 'lobby', since: 1 }, { room: 'news', since: 10 }, { room: 'quiet', since: 0 }])

  // lobby: the server replays 2 and 3 before the ack.
  socket.receive({ event: 'room:message', data: { room: 'lobby', from: 'bob', payload: 'b', seq: 2 } })
  socket.receive({ event: 'room:message', data: { room: 'lobby', from: 'bob', payload: 'c', seq: 3 } })
  socket.receive({ event: 'ack', id: socket.sent[0]!.id, data: { room: 'lobby', joined: true, seq: 3, recovered: true } })
  // news: the history no longer reaches back; the room counts from a new baseline.
  socket.receive({ event: 'ack', id: socket.sent[1]!.id, data: { room: 'news', joined: true, seq: 2, recovered: false } })
  socket.receive({ event: 'error', id: socket.sent[2]!.id, data: { code: 'FORBIDDEN', message: 'no longer allowed' } })

  t.same(resumed, [{ room: 'lobby', recovered: true, seq: 3 }, { room: 'news', recovered: false, seq: 2 }])
  t.same(client.rooms, ['lobby', 'news'], 'a refused re-join loses the room')
  socket.receive({ event: 'room:message', data: { room: 'news', from: 'bob', payload: 'restart', seq: 3 } })
  t.same(messages.map((m) => `${m.room}:${m.seq}`), ['lobby:2', 'lobby:3', 'news:3'], 'after recovered: false, lower seqs are new again')
})

t.test('a re-join refused or unanswered emits room:lost', async (t) => {
  const fake = await connected()
  await joined(fake, 'lobby', 0)
  const lost = record(fake.client, 'room:lost')
  fake.sockets.last().drop()
  fake.clock.advance(BASE)
  fake.sockets.last().accept('conn-2')
  fake.clock.advance(1000)
  t.equal(lost.length, 1)
  t.equal(lost[0]!.room, 'lobby')
  t.equal(lost[0]!.error.code, 'ACK_TIMEOUT')
})

t.test('leave() forgets the room at once: it is not re-joined after a reconnect', async (t) => {
  const fake = await connected()
  await joined(fake, 'lobby', 0)
  await joined(fake, 'news', 0)
  const leaving = fake.client.leave('news')
  fake.sockets.last().drop()
  t.equal((await rejection(leaving)).code, 'CLOSED')
  fake.clock.advance(BASE)
  fake.sockets.last().accept('conn-2')
  t.same(fake.sockets.last().sent.map((f) => f.data.room), ['lobby'])
})

t.test('an unacknowledged publish is re-sent with the same id after its room is re-joined', async (t) => {
  const fake = await connected()
  const { client, clock, sockets } = fake
  await joined(fake, 'lobby', 0)
  const publish = client.publish('lobby', { text: 'hi' })
  const original = sockets.last().sent.at(-1)!
  sockets.last().drop()
  clock.advance(BASE)
  const socket = sockets.last()
  socket.accept('conn-2')
  t.same(socket.sent.map((f) => f.event), ['room:join'], 'nothing before the re-join is acknowledged')
  socket.answer('room:join', { room: 'lobby', joined: true, seq: 0, recovered: true })
  t.same(socket.sent.at(-1), original, 'the same frame, the same id: the server acknowledges it once')
  socket.answer('room:publish', { room: 'lobby', seq: 1 })
  t.same(await publish, { room: 'lobby', seq: 1 })
})

t.test('an unacknowledged publish fails with CLOSED once publishRetryMs has passed without a connection', async (t) => {
  const fake = await connected({ publishRetryMs: 3000 })
  await joined(fake, 'lobby', 0)
  const publish = fake.client.publish('lobby', 'late')
  fake.clock.advance(500)
  fake.sockets.last().drop()
  for (let i = 0; i < 10; i++) {
    fake.clock.advance(CAP)
    fake.sockets.last().drop()
    await flushMicrotasks()
  }
  t.match(await rejection(publish), { code: 'CLOSED', message: /3000 ms/ })
})

t.test('a replayed copy of our own message is dropped; a hole before it is still a gap', async (t) => {
  const fake = await connected()
  await joined(fake, 'lobby', 1)
  const socket = fake.sockets.last()
  const messages = record(fake.client, 'room:message')
  const gaps = record(fake.client, 'gap')
  const publish = fake.client.publish('lobby', 'mine')
  socket.answer('room:publish', { room: 'lobby', seq: 3 }) // 2 is someone else's, still on its way
  await publish
  t.equal(fake.client.lastSeq('lobby'), 1)
  socket.receive({ event: 'room:message', data: { room: 'lobby', from: 'me', payload: 'mine', seq: 3 } })
  t.same(messages, [], 'our own message is never delivered back to us')
  t.same(gaps, [{ room: 'lobby', after: 1, seq: 3 }], '2 never came')
  t.equal(fake.client.lastSeq('lobby'), 3)

  const next = fake.client.publish('lobby', 'again')
  socket.answer('room:publish', { room: 'lobby', seq: 5 })
  await next
  socket.receive({ event: 'room:message', data: { room: 'lobby', from: 'bob', payload: 'x', seq: 4 } })
  t.equal(fake.client.lastSeq('lobby'), 5, 'our 5 counts as seen once 4 arrives')
  t.same(gaps.length, 1)
})

t.test('frames that are not JSON envelopes are ignored, and the connection goes on', async (t) => {
  const { client, sockets } = await connected()
  const socket = sockets.last()
  const errors = record(client, 'error')
  for (const data of ['not json', '[1,2]', '{"data":{}}', 42]) socket.onmessage!({ data })
  socket.receive({ event: 'ack', id: 'c:999', data: {} })
  t.same(errors, [])
  const ping = client.request('ping')
  socket.answer('ping', { time: 1 })
  t.same(await ping, { time: 1 })
})

t.test('a socket that refuses a frame fails that request with NOT_CONNECTED', async (t) => {
  const { client, sockets } = await connected()
  const socket = sockets.last()
  socket.send = () => { throw new Error('InvalidStateError') }
  t.equal((await rejection(client.request('ping'))).code, 'NOT_CONNECTED')
  socket.readyState = 2 // closing: its close event has not arrived yet
  t.equal((await rejection(client.request('ping'))).code, 'NOT_CONNECTED')
})

t.test('send() fires an envelope without an id: nothing waits for an answer, a refusal is an error event', async (t) => {
  const { client, clock, sockets } = await connected()
  const socket = sockets.last()
  const errors = record(client, 'error')
  const timers = clock.pending
  client.send('room:publish', { room: 'lobby', payload: { text: 'hi' } })
  client.send('ping')
  t.same(socket.sent.slice(-2), [{ event: 'room:publish', data: { room: 'lobby', payload: { text: 'hi' } } }, { event: 'ping' }], 'no id, no data when there is none')
  t.equal(clock.pending, timers, 'no ack timer armed')
  socket.receive({ event: 'error', data: { code: 'FORBIDDEN', message: 'join the room first' } })
  t.match(errors, [{ code: 'FORBIDDEN' }])

  socket.send = () => { throw new Error('InvalidStateError') }
  t.throws(() => client.send('ping'), { code: 'NOT_CONNECTED' }, 'a socket that refuses the frame')
  client.close()
  t.throws(() => client.send('ping'), { code: 'NOT_CONNECTED' }, 'a closed client')
})

t.test('a listener that throws is reported to onListenerError and the other listeners still run', async (t) => {
  const failures: Array<{ err: unknown, event: string }> = []
  const { client, sockets } = await connected({ onListenerError: (err, event) => failures.push({ err, event }) })
  const seen: string[] = []
  client.on('room:typing', () => { throw new Error('app bug') })
  client.on('room:typing', (d) => seen.push(d.user))
  sockets.last().receive({ event: 'room:typing', data: { room: 'x', user: 'bob', typing: true } })
  t.same(seen, ['bob'])
  t.match(failures, [{ err: { message: 'app bug' }, event: 'room:typing' }])
})

t.test('a listener can unsubscribe with the function on() returns, or with off()', async (t) => {
  const { client, sockets } = await connected()
  const seen: string[] = []
  const off = client.on('room:typing', (d) => seen.push(`a:${d.user}`))
  const listener = (d: { user: string }): void => { seen.push(`b:${d.user}`) }
  client.on('room:typing', listener)
  sockets.last().receive({ event: 'room:typing', data: { room: 'x', user: 'bob', typing: true } })
  off()
  client.off('room:typing', listener)
  sockets.last().receive({ event: 'room:typing', data: { room: 'x', user: 'eve', typing: true } })
  t.same(seen, ['a:bob', 'b:bob'])
})

// ---- Against the real app ----

/** Connects each client and joins it to `room`, one after the other (so presence order is known). */
async function allIn (room: string, ...clients: KeelClient[]): Promise<void> {
  for (const client of clients) {
    await client.connect()
    await client.join(room)
  }
}

t.test('two clients in a room exchange messages, with acks as promises', async (t) => {
  const server = await listen(t)
  const { client: alice } = testClient(t, server, { sub: 'alice' })
  const { client: bob } = testClient(t, server, { sub: 'bob' })
  t.equal((await alice.connect()).user.sub, 'alice')
  await bob.connect()
  t.match(await alice.join('lobby'), { room: 'lobby', joined: true, seq: 0 })
  const bobJoined = nextEvent(alice, 'presence:join')
  t.match(await bob.join('lobby'), { room: 'lobby', joined: true })
  t.same(await bobJoined, { room: 'lobby', user: 'bob', count: 2 })

  const toBob = nextEvent(bob, 'room:message')
  t.same(await alice.publish('lobby', { text: 'hi bob' }), { room: 'lobby', seq: 1 })
  t.same(await toBob, { room: 'lobby', from: 'alice', payload: { text: 'hi bob' }, seq: 1 })
  const toAlice = nextEvent(alice, 'room:message')
  t.same(await bob.publish('lobby', 'hi alice'), { room: 'lobby', seq: 2 })
  t.match(await toAlice, { from: 'bob', payload: 'hi alice', seq: 2 })

  t.same((await alice.presence('lobby')).users.sort(), ['alice', 'bob'])
  t.match(await alice.request('ping'), { time: Number })
  t.match(await rejection(alice.publish('not-joined', 1)), { code: 'FORBIDDEN' }, 'the server\'s refusal is a typed error')
  t.same(await bob.leave('lobby'), { room: 'lobby', left: true })
  t.same(bob.rooms, [])
})

t.test('after the server restarts, the client reconnects by itself, re-joins its rooms and reports recovered: false', async (t) => {
  const cwd = tempDir() // the same dev certificate for both servers
  const first = await listen(t, {}, cwd)
  const { client: alice } = testClient(t, first, { sub: 'alice' })
  const { client: bob } = testClient(t, first, { sub: 'bob' })
  await allIn('lobby', alice, bob)
  const seen = nextEvent(alice, 'room:message')
  await bob.publish('lobby', 'before')
  t.equal((await seen).seq, 1)

  const closed = nextEvent(alice, 'close')
  const resumed = Promise.all([nextEvent(alice, 'resumed'), nextEvent(bob, 'resumed')])
  await first.app.close()
  t.match(await closed, { code: 1001, reconnect: true }, 'the server said it was going away')

  const second = await build(t, {}, cwd)
  await second.app.listen({ host: '127.0.0.1', port: first.port })
  const [aliceResumed, bobResumed] = await resumed
  t.same(aliceResumed, { room: 'lobby', recovered: false, seq: 0 }, 'the in-memory history died with the old server: refetch')
  t.match(bobResumed, { room: 'lobby', recovered: false })
  t.equal(alice.state, 'open')

  const after = nextEvent(alice, 'room:message')
  t.same(await bob.publish('lobby', 'after'), { room: 'lobby', seq: 1 })
  t.match(await after, { payload: 'after', seq: 1 }, 'the restarted room counts from 1 again and nothing is taken for a duplicate')
})

t.test('a client that lost its connection gets what it missed, in order and once, then live messages (recovered: true)', async (t) => {
  const server = await listen(t, { ROOM_HISTORY_SIZE: '100', WS_MESSAGE_RATE: '1000', WS_MESSAGE_BURST: '1000' })
  let offline = false
  const aliceSockets: WebSocket[] = []
  const { client: offlineAlice } = testClient(t, server, {
    sub: 'alice',
    createSocket: (url) => {
      if (offline) throw new Error('offline')
      const socket = trustedSocket(server, url)
      aliceSockets.push(socket)
      return socket
    }
  })
  const { client: bob } = testClient(t, server, { sub: 'bob' })
  await allIn('lobby', offlineAlice, bob)
  const first = nextEvent(offlineAlice, 'room:message')
  await bob.publish('lobby', 0)
  t.equal((await first).seq, 1)

  const timeline: string[] = []
  offlineAlice.on('room:message', (m) => timeline.push(`message ${m.seq}`))
  offlineAlice.on('resumed', (r) => timeline.push(`resumed ${r.room} recovered=${r.recovered} seq=${r.seq}`))
  const closed = nextEvent(offlineAlice, 'close')
  offline = true
  aliceSockets.at(-1)!.terminate()
  t.match(await closed, { code: 1006, reconnect: true })

  for (let i = 1; i <= 50; i++) await bob.publish('lobby', i)
  const resumed = nextEvent(offlineAlice, 'resumed')
  offline = false
  t.same(await resumed, { room: 'lobby', recovered: true, seq: 51 })
  const live = nextEvent(offlineAlice, 'room:message', (m) => m.payload === 'live')
  await bob.publish('lobby', 'live')
  await live
  const expected = Array.from({ length: 50 }, (_, i) => `message ${i + 2}`)
  t.same(timeline, [...expected, 'resumed lobby recovered=true seq=51', 'message 52'])
})

/** A `ws` socket that swallows the ack of the first room:publish and then cuts the connection: a lost ack. */
class AckLosingSocket implements WebSocketLike {
  readonly #ws: WebSocket
  #publishId: string | undefined
  #lost = false
  onopen: WebSocketLike['onopen'] = null
  onerror: WebSocketLike['onerror'] = null

  constructor (ws: WebSocket) {
    this.#ws = ws
    ws.onerror = (e) => this.onerror?.(e)
  }

  get readyState (): number { return this.#ws.readyState }
  get onmessage (): WebSocketLike['onmessage'] { return null }
  set onmessage (fn: WebSocketLike['onmessage']) {
    this.#ws.onmessage = (event) => {
      const message = JSON.parse(String(event.data)) as { event: string, id?: string }
      if (!this.#lost && message.event === 'ack' && message.id === this.#publishId) {
        this.#lost = true
        this.#ws.terminate()
        return
      }
      fn?.(event)
    }
  }

  get onclose (): WebSocketLike['onclose'] { return null }
  set onclose (fn: WebSocketLike['onclose']) { this.#ws.onclose = (event) => fn?.(event) }

  send (data: string): void {
    const message = JSON.parse(data) as { event: string, id?: string }
    if (message.event === 'room:publish') this.#publishId ??= message.id
    this.#ws.send(data)
  }

  close (code?: number, reason?: string): void { this.#ws.close(code, reason) }
}

t.test('a publish whose ack was lost is re-sent with the same id: the room sees it once, both acks agree', async (t) => {
  const server = await listen(t)
  let lossy = true
  const { client: alice } = testClient(t, server, {
    sub: 'alice',
    createSocket: (url) => {
      const ws = trustedSocket(server, url)
      if (!lossy) return ws
      lossy = false
      return new AckLosingSocket(ws)
    }
  })
  const { client: bob } = testClient(t, server, { sub: 'bob' })
  await allIn('lobby', alice, bob)
  const received = record(bob, 'room:message')
  const reconnected = nextEvent(alice, 'resumed')
  const ack = await alice.publish('lobby', 'once')
  await reconnected
  t.same(ack, { room: 'lobby', seq: 1 }, 'acknowledged with the seq the first send got')
  const marker = nextEvent(bob, 'room:message', (m) => m.payload === 'marker')
  await alice.publish('lobby', 'marker')
  await marker
  t.same(received.map((m) => `${m.payload}:${m.seq}`), ['once:1', 'marker:2'], 'no second copy reached the room')
})
