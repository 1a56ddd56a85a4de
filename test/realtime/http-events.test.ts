// POST /events?stream=<connectionId> against a real listening server: a client that has only an SSE
// stream sends the WebSocket protocol's events over HTTP, through the same event router, and reads the
// ack as the response (or the router's error as problem+json). Its publishes reach the room's other
// members, WebSocket or SSE, on any instance, never the stream that sent them.

import t from 'tap'
import { build, listen } from '../helpers/app.ts'
import { h1request } from '../helpers/http.ts'
import { isEvent, openSse, type SseClient } from '../helpers/sse.ts'
import { testToken } from '../helpers/tokens.ts'
import { openSocket, type WsTarget } from '../helpers/ws.ts'
import { redisSkipReason, startRedis } from '../helpers/redis.ts'
import { until } from '../helpers/until.ts'

interface Teardown { teardown: (fn: () => unknown) => void }

interface PostOptions {
  /** The SSE stream's connectionId, for `?stream=`. */
  stream?: string
  /** A valid token for this subject (default user-1), unless `token` is given; null sends none. */
  sub?: string
  token?: string | null
  /** The raw body instead of the envelope's JSON. */
  raw?: string
}

interface Answer { status: number, headers: Record<string, string | string[] | undefined>, body: any }

async function postEvent (server: WsTarget, envelope: unknown, options: PostOptions = {}): Promise<Answer> {
  const token = options.token === undefined ? testToken({ sub: options.sub ?? 'user-1' }) : options.token
  const query = options.stream === undefined ? '' : `?stream=${encodeURIComponent(options.stream)}`
  const res = await h1request(`${server.url}/events${query}`, {
    method: 'POST',
    ca: server.ca,
    headers: { 'content-type': 'application/json', ...(token === null ? {} : { authorization: `Bearer ${token}` }) },
    body: options.raw ?? JSON.stringify(envelope)
  })
  return { status: res.status, headers: res.headers, body: res.body === '' ? undefined : JSON.parse(res.body) }
}

/** An SSE stream of `sub` in `rooms`, once ready, with the connectionId it announced. */
async function openStream (t: Teardown, server: WsTarget, sub: string, rooms: string[]): Promise<{ sse: SseClient, id: string }> {
  const sse = await openSse(t, server, { path: `/sse?${rooms.map((room) => `room=${room}`).join('&')}`, token: testToken({ sub }) })
  const ready = JSON.parse((await sse.next(isEvent('stream:ready'))).data!) as { connectionId: string }
  return { sse, id: ready.connectionId }
}

const publish = (room: string, payload: unknown, id?: string) => ({ event: 'room:publish', data: { room, payload }, ...(id === undefined ? {} : { id }) })

t.test('a publish over HTTP reaches WebSocket members and other SSE streams, never the stream that sent it, and is answered with the ack', async (t) => {
  const server = await listen(t)
  const alice = await openStream(t, server, 'alice', ['chat'])
  const carol = await openStream(t, server, 'carol', ['chat'])
  const bob = await openSocket(t, server, { sub: 'bob' })
  t.match(await bob.request('room:join', { room: 'chat' }), { event: 'ack' })

  const res = await postEvent(server, publish('chat', { text: 'hi' }, 'p1'), { sub: 'alice', stream: alice.id })
  t.equal(res.status, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  t.same(res.body, { event: 'ack', id: 'p1', data: { room: 'chat', seq: 1 } })

  t.same((await bob.next((m) => m.event === 'room:message')).data, { from: 'alice', payload: { text: 'hi' }, room: 'chat', seq: 1 }, 'a WebSocket member')
  const atCarol = await carol.sse.next(isEvent('room:message'))
  t.same(JSON.parse(atCarol.data!), { from: 'alice', payload: { text: 'hi' }, room: 'chat', seq: 1 }, 'another SSE stream')
  t.equal(atCarol.id, '1')

  // The stream delivers in order: if its next message is seq 2, it never got its own seq 1.
  t.match(await bob.request('room:publish', { room: 'chat', payload: { text: 'back' } }), { event: 'ack', data: { seq: 2 } })
  t.match(JSON.parse((await alice.sse.next(isEvent('room:message'))).data!), { from: 'bob', seq: 2 }, 'not the sending stream')
})

t.test('an envelope without an id is answered with the handler\'s result all the same', async (t) => {
  const server = await listen(t)
  const alice = await openStream(t, server, 'alice', ['lobby'])
  const res = await postEvent(server, { event: 'presence:list', data: { room: 'lobby' } }, { sub: 'alice', stream: alice.id })
  t.equal(res.status, 200)
  t.same(res.body, { event: 'ack', data: { room: 'lobby', users: ['alice'], count: 1 } })
  const sent = await postEvent(server, publish('lobby', 'no id'), { sub: 'alice', stream: alice.id })
  t.same(sent.body, { event: 'ack', data: { room: 'lobby', seq: 1 } })
})

t.test('retrying a publish with the same id (its ack was lost) gets the same ack, and the room sees the message once', async (t) => {
  const server = await listen(t)
  const alice = await openStream(t, server, 'alice', ['retry'])
  const bob = await openSocket(t, server, { sub: 'bob' })
  await bob.request('room:join', { room: 'retry' })
  const first = await postEvent(server, publish('retry', { n: 1 }, 'same-id'), { sub: 'alice', stream: alice.id })
  const again = await postEvent(server, publish('retry', { n: 1 }, 'same-id'), { sub: 'alice', stream: alice.id })
  t.same(first.body, { event: 'ack', id: 'same-id', data: { room: 'retry', seq: 1 } })
  t.same(again.body, first.body, 'the same ack')
  t.same((await postEvent(server, publish('retry', { n: 2 }, 'next-id'), { sub: 'alice', stream: alice.id })).body.data, { room: 'retry', seq: 2 })
  t.equal((await bob.next((m) => m.event === 'room:message')).data.seq, 1)
  t.equal((await bob.next((m) => m.event === 'room:message')).data.seq, 2, 'nothing in between: the retry was not sent again')
})

t.test('a stream acts only in its own rooms and only for its own user; an unknown stream is a 404', async (t) => {
  const server = await listen(t)
  const alice = await openStream(t, server, 'alice', ['mine'])

  const outside = await postEvent(server, publish('theirs', 'x'), { sub: 'alice', stream: alice.id })
  t.equal(outside.status, 403, 'a room the stream is not in')
  t.match(outside.headers['content-type'], /^application\/problem\+json/)
  t.match(outside.body, { status: 403, code: 'FORBIDDEN', instance: '/events' })

  const stolen = await postEvent(server, publish('mine', 'x'), { sub: 'mallory', stream: alice.id })
  t.equal(stolen.status, 403, 'another user\'s stream')
  t.match(stolen.body, { code: 'FORBIDDEN', detail: /another user/ })

  const unknown = await postEvent(server, publish('mine', 'x'), { sub: 'alice', stream: '3f1c2b9e-0000-4000-8000-000000000000' })
  t.equal(unknown.status, 404)
  t.match(unknown.body, { code: 'NOT_FOUND', detail: /stream/ })

  alice.sse.close()
  await until(() => server.app.roomHub.connectionsOf('alice') === 0, 3000, 'the stream to end')
  t.equal((await postEvent(server, publish('mine', 'x'), { sub: 'alice', stream: alice.id })).status, 404, 'a stream that ended')
})

t.test('room:join and room:leave over HTTP → 400: an SSE stream\'s rooms are chosen by its room parameters', async (t) => {
  const server = await listen(t)
  const alice = await openStream(t, server, 'alice', ['here'])
  for (const event of ['room:join', 'room:leave']) {
    const res = await postEvent(server, { event, data: { room: 'elsewhere' }, id: 'j' }, { sub: 'alice', stream: alice.id })
    t.equal(res.status, 400, event)
    t.match(res.body, { code: 'BAD_REQUEST', detail: /room parameters.*Last-Event-ID/ }, event)
  }
  const none = await postEvent(server, { event: 'room:join', data: { room: 'elsewhere' } })
  t.equal(none.status, 400, 'without a stream too')
})

t.test('the router\'s refusals are problem+json with its code: UNKNOWN_EVENT and VALIDATION are 400s, as is a body that is not an envelope', async (t) => {
  const server = await listen(t)
  const alice = await openStream(t, server, 'alice', ['room1'])
  const unknown = await postEvent(server, { event: 'no:such-event', id: 'u' }, { sub: 'alice', stream: alice.id })
  t.equal(unknown.status, 400)
  t.match(unknown.body, { status: 400, code: 'UNKNOWN_EVENT', detail: /no:such-event/ })

  const invalid = await postEvent(server, { event: 'room:publish', data: { room: 'has space', payload: 1 } }, { sub: 'alice', stream: alice.id })
  t.equal(invalid.status, 400)
  t.match(invalid.body, { code: 'VALIDATION', errors: [{ path: '/data/room' }] })

  const noEvent = await postEvent(server, { data: {} }, { sub: 'alice', stream: alice.id })
  t.equal(noEvent.status, 400)
  t.match(noEvent.body, { code: 'VALIDATION' })
  const notJson = await postEvent(server, null, { sub: 'alice', stream: alice.id, raw: '{"event":' })
  t.equal(notJson.status, 400)
  t.match(notJson.body, { code: 'MALFORMED_JSON' })
})

t.test('needs a bearer token: 401 with a challenge without one', async (t) => {
  const server = await listen(t)
  const res = await postEvent(server, { event: 'ping' }, { token: null })
  t.equal(res.status, 401)
  t.match(res.headers['www-authenticate'], /^Bearer/)
  t.equal((await postEvent(server, { event: 'ping' }, { token: 'not-a-jwt' })).status, 401)
})

t.test('without ?stream= events that need no connection work, and a publish is refused 403 (the request is in no room)', async (t) => {
  const server = await listen(t)
  await openStream(t, server, 'alice', ['lobby'])
  const list = await postEvent(server, { event: 'presence:list', data: { room: 'lobby' }, id: 'l' }, { sub: 'bob' })
  t.equal(list.status, 200)
  t.same(list.body, { event: 'ack', id: 'l', data: { room: 'lobby', users: ['alice'], count: 1 } })
  t.match((await postEvent(server, { event: 'ping' })).body, { event: 'ack', data: { time: Number } })
  const forbidden = await postEvent(server, { event: 'presence:list', data: { room: 'user:someone-else' } })
  t.equal(forbidden.status, 403, 'presence of a room the user may not join')
  const refused = await postEvent(server, publish('lobby', 'x'), { sub: 'bob' })
  t.equal(refused.status, 403)
  t.match(refused.body, { code: 'FORBIDDEN', detail: /stream/ })
})

t.test('a stream\'s events spend the connection message budget (WS_MESSAGE_RATE, WS_MESSAGE_BURST): over it → 429 with Retry-After', async (t) => {
  const server = await listen(t, { WS_MESSAGE_RATE: '1', WS_MESSAGE_BURST: '2' })
  const alice = await openStream(t, server, 'alice', ['busy'])
  let answers = 0
  let refused: Answer | undefined
  // Bounded: at 1 message a second, 20 requests refill at most a few tokens however slow the machine.
  for (; answers < 20 && refused === undefined; answers++) {
    const res = await postEvent(server, { event: 'ping', id: `p${answers}` }, { sub: 'alice', stream: alice.id })
    if (res.status === 429) refused = res
    else t.equal(res.status, 200)
  }
  t.ok(refused, 'refused once over the budget')
  t.ok(answers > 2, 'the burst passed first')
  t.match(refused?.body, { status: 429, code: 'RATE_LIMITED' })
  t.ok(Number(refused?.headers['retry-after']) >= 1)
})

t.test('the body is bounded by the WebSocket frame limit (WS_MAX_PAYLOAD_BYTES): larger → 413', async (t) => {
  const server = await listen(t, { WS_MAX_PAYLOAD_BYTES: '1024' })
  const alice = await openStream(t, server, 'alice', ['big'])
  const res = await postEvent(server, publish('big', 'x'.repeat(2000)), { sub: 'alice', stream: alice.id })
  t.equal(res.status, 413)
  t.match(res.body, { code: 'PAYLOAD_TOO_LARGE' })
  t.equal((await postEvent(server, publish('big', 'x'.repeat(500)), { sub: 'alice', stream: alice.id })).status, 200)
})

t.test('POST /events is in the OpenAPI document, its body the event envelope', async (t) => {
  const { app } = await build(t)
  const doc = (await app.inject('/docs/json')).json() as { paths: Record<string, any> }
  const operation = doc.paths['/events']?.post
  t.ok(operation, 'documented')
  const body = operation.requestBody.content['application/json'].schema
  t.same(Object.keys(body.properties).sort(), ['data', 'event', 'id'])
  t.same(body.required, ['event'])
  t.ok(operation.parameters.some((p: { name: string, in: string }) => p.name === 'stream' && p.in === 'query'))
})

t.test('with Redis, a publish over HTTP on one instance reaches members on another', { skip: redisSkipReason() }, async (t) => {
  const redis = await startRedis(t)
  const a = await listen(t, { REDIS_URL: redis.url })
  const b = await listen(t, { REDIS_URL: redis.url })
  const alice = await openStream(t, a, 'alice', ['span'])
  const bob = await openSocket(t, b, { sub: 'bob' })
  await bob.request('room:join', { room: 'span' })
  const carol = await openStream(t, b, 'carol', ['span'])
  const res = await postEvent(a, publish('span', { n: 1 }, 'x1'), { sub: 'alice', stream: alice.id })
  t.same(res.body, { event: 'ack', id: 'x1', data: { room: 'span', seq: 1 } })
  t.match((await bob.next((m) => m.event === 'room:message')).data, { from: 'alice', payload: { n: 1 }, seq: 1 }, 'a WebSocket on the other instance')
  t.match(JSON.parse((await carol.sse.next(isEvent('room:message'))).data!), { from: 'alice', seq: 1 }, 'an SSE stream on the other instance')
  t.equal((await postEvent(b, publish('span', { n: 2 }), { sub: 'alice', stream: alice.id })).status, 404, 'a stream is addressed on the instance that serves it')
})
