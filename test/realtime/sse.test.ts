// GET /sse against a real listening server, over HTTP/2 and HTTP/1.1: auth like /ws, room policies,
// the stream's framing and headers, Last-Event-ID replay, heartbeats and shutdown.

import t from 'tap'
import { listen } from '../helpers/app.ts'
import { isEvent, openSse } from '../helpers/sse.ts'
import { nowSec, testToken, tokenFixture } from '../helpers/tokens.ts'
import { openSocket, upgradeStatus } from '../helpers/ws.ts'
import { until } from '../helpers/until.ts'

t.test('streams room messages as text/event-stream with id = the room seq, over HTTP/2 and HTTP/1.1', async (t) => {
  const server = await listen(t)
  for (const h1 of [false, true]) {
    const sse = await openSse(t, server, { path: `/sse?room=chat-${String(h1)}`, h1 })
    t.equal(sse.status, 200)
    t.match(sse.headers['content-type'], /^text\/event-stream/)
    t.equal(sse.headers['cache-control'], 'no-cache')
    t.equal(sse.headers['x-accel-buffering'], 'no')
    await sse.next(isEvent('stream:ready'))
    // Published by a WebSocket member of the room.
    const ws = await openSocket(t, server, { sub: 'bob' })
    t.match(await ws.request('room:join', { room: `chat-${String(h1)}` }), { event: 'ack' })
    t.match(await ws.request('room:publish', { room: `chat-${String(h1)}`, payload: { text: 'hi' } }), { event: 'ack' })
    const e = await sse.next(isEvent('room:message'))
    const data = JSON.parse(e.data!)
    t.match(data, { from: 'bob', payload: { text: 'hi' }, room: `chat-${String(h1)}`, seq: 1 }, h1 ? 'HTTP/1.1' : 'HTTP/2')
    t.equal(e.id, String(data.seq))
  }
})

t.test('reconnecting with Last-Event-ID replays the gap in order, without duplicates, then live messages', async (t) => {
  const server = await listen(t, { ROOM_HISTORY_SIZE: '100' })
  const hub = server.app.roomHub
  const first = await openSse(t, server, { path: '/sse?room=replay' })
  await first.next(isEvent('stream:ready'))
  await hub.publish('replay', 'room:message', { n: 1 })
  const seen = await first.next(isEvent('room:message'))
  first.close()
  for (let n = 2; n <= 11; n++) await hub.publish('replay', 'room:message', { n })
  const again = await openSse(t, server, { path: '/sse?room=replay', headers: { 'last-event-id': seen.id! } })
  t.match(JSON.parse((await again.next(isEvent('stream:ready'))).data!), { rooms: ['replay'], recovered: { replay: true } })
  await hub.publish('replay', 'room:message', { n: 12 })
  const ids: string[] = []
  for (let n = 2; n <= 12; n++) {
    const e = await again.next(isEvent('room:message'))
    t.equal(JSON.parse(e.data!).n, n)
    ids.push(e.id!)
  }
  t.same(ids, Array.from({ length: 11 }, (_, i) => String(i + 2)))
  t.equal(await again.next(isEvent('room:message'), 200).catch(() => null), null, 'nothing twice')
})

t.test('several rooms: the id carries every room\'s seq, and Last-Event-ID resumes each', async (t) => {
  const server = await listen(t, { ROOM_HISTORY_SIZE: '100' })
  const hub = server.app.roomHub
  const first = await openSse(t, server, { path: '/sse?room=ra&room=rb' })
  await first.next(isEvent('stream:ready'))
  await hub.publish('ra', 'room:message', { n: 'a1' })
  await hub.publish('rb', 'room:message', { n: 'b1' })
  await first.next(isEvent('room:message'))
  const last = await first.next(isEvent('room:message'))
  t.same(JSON.parse(last.id!), { ra: 1, rb: 1 })
  first.close()
  await hub.publish('ra', 'room:message', { n: 'a2' })
  await hub.publish('rb', 'room:message', { n: 'b2' })
  const again = await openSse(t, server, { path: '/sse?room=ra&room=rb', headers: { 'last-event-id': last.id! } })
  const got = [await again.next(isEvent('room:message')), await again.next(isEvent('room:message'))].map((e) => JSON.parse(e.data!).n)
  t.same(got.sort(), ['a2', 'b2'])
})

t.test('a Last-Event-ID beyond the history says recovered: false; a malformed one is a 400', async (t) => {
  const server = await listen(t, { ROOM_HISTORY_SIZE: '2' })
  for (let n = 1; n <= 5; n++) await server.app.roomHub.publish('short', 'room:message', { n })
  const sse = await openSse(t, server, { path: '/sse?room=short', headers: { 'last-event-id': '1' } })
  t.match(JSON.parse((await sse.next(isEvent('stream:ready'))).data!), { recovered: { short: false } })
  const bad = await openSse(t, server, { path: '/sse?room=short', headers: { 'last-event-id': 'nope' } })
  t.equal(bad.status, 400)
  t.match(JSON.parse(await bad.body()), { code: 'BAD_REQUEST', detail: /Last-Event-ID/ })
})

t.test('a Last-Event-ID beyond the room\'s seq (the server restarted without Redis) says recovered: false, and live messages still arrive', async (t) => {
  const server = await listen(t)
  const hub = server.app.roomHub
  for (let n = 1; n <= 2; n++) await hub.publish('ahead', 'room:message', { n })
  const sse = await openSse(t, server, { path: '/sse?room=ahead', headers: { 'last-event-id': '50' } })
  t.match(JSON.parse((await sse.next(isEvent('stream:ready'))).data!), { recovered: { ahead: false } })
  await hub.publish('ahead', 'room:message', { n: 3 })
  const live = await sse.next(isEvent('room:message'))
  t.equal(JSON.parse(live.data!).n, 3)
  t.equal(live.id, '3', 'the id follows the room again')

  const several = await openSse(t, server, { path: '/sse?room=ahead&room=behind', headers: { 'last-event-id': '{"ahead":50,"behind":0}' } })
  t.match(JSON.parse((await several.next(isEvent('stream:ready'))).data!), { recovered: { ahead: false, behind: true } })
  await hub.publish('ahead', 'room:message', { n: 4 })
  const next = await several.next(isEvent('room:message'))
  t.equal(JSON.parse(next.data!).n, 4)
  t.same(JSON.parse(next.id!), { ahead: 4, behind: 0 })
})

t.test('never compressed, even when the client accepts br', async (t) => {
  const server = await listen(t)
  for (const h1 of [false, true]) {
    const sse = await openSse(t, server, { path: '/sse?room=big', h1, headers: { 'accept-encoding': 'br, gzip' } })
    t.equal(sse.headers['content-encoding'], undefined)
    await sse.next(isEvent('stream:ready'))
    await server.app.roomHub.publish('big', 'room:message', { text: 'x'.repeat(4096) })
    t.match(JSON.parse((await sse.next(isEvent('room:message'))).data!).text, /^x{4096}$/, 'readable as plain text')
  }
})

t.test('auth like /ws: 401 without a token, ?access_token= works, rooms follow their policies', async (t) => {
  const server = await listen(t, { CORS_ORIGINS: 'https://app.example' })
  const anonymous = await openSse(t, server, { token: null })
  t.equal(anonymous.status, 401)
  t.match(anonymous.headers['www-authenticate'], /^Bearer/)
  const token = testToken({ sub: 'eve' })
  const query = await openSse(t, server, { token: null, path: `/sse?room=lobby&access_token=${encodeURIComponent(token)}` })
  t.equal(query.status, 200)
  await query.next(isEvent('stream:ready'))
  const bad = await openSse(t, server, { token: null, path: '/sse?room=lobby&access_token=not-a-jwt' })
  t.equal(bad.status, 401)
  t.notMatch(await bad.body(), /not-a-jwt/)

  const other = await openSse(t, server, { path: '/sse?room=user:someone-else' })
  t.equal(other.status, 403)
  t.match(other.headers['content-type'], /application\/problem\+json/)
  const own = await openSse(t, server, { path: '/sse?room=user:user-1' })
  t.equal(own.status, 200)
  for (const path of ['/sse', '/sse?room=', '/sse?room=has%20space']) {
    const res = await openSse(t, server, { path })
    t.equal(res.status, 400, path)
    t.match(JSON.parse(await res.body()), { code: 'VALIDATION' })
  }
  const foreign = await openSse(t, server, { headers: { origin: 'https://evil.example' } })
  t.equal(foreign.status, 403, 'a foreign Origin is refused')
})

t.test('over HTTP/2 (no Host, only :authority) a page of the server\'s own origin may open a stream; a rebound host name may not', async (t) => {
  const server = await listen(t)
  const own = await openSse(t, server, { headers: { origin: `https://127.0.0.1:${server.port}`, ':authority': `127.0.0.1:${server.port}` } })
  t.equal(own.status, 200)
  await own.next(isEvent('stream:ready'))
  const rebound = `rebound.example:${server.port}`
  const foreign = await openSse(t, server, { headers: { origin: `https://${rebound}`, ':authority': rebound } })
  t.equal(foreign.status, 403, 'DNS rebinding: the authority is not one of the server\'s names')
  for (const h1 of [false, true]) {
    const named = await openSse(t, server, { h1, headers: { origin: `https://localhost:${server.port}`, ...(h1 ? { host: `localhost:${server.port}` } : { ':authority': `localhost:${server.port}` }) } })
    t.equal(named.status, 200, `a name in the server's certificate (${h1 ? 'HTTP/1.1' : 'HTTP/2'})`)
  }
})

t.test('every token the HTTP API rejects is refused with 401, and every accepted one streams', async (t) => {
  const fixture = await tokenFixture(t)
  const server = await listen(t, { ...fixture.jwksEnv, AUTH_FAILURE_LIMIT: '1000' })
  for (const c of fixture.cases) {
    const res = await openSse(t, server, { token: c.token })
    t.equal(res.status, c.accepted ? 200 : 401, c.name)
    res.close()
  }
})

t.test('a stream ends at its token\'s exp with an error event saying why, as a WebSocket closes with 4001', async (t) => {
  const server = await listen(t)
  const token = testToken({ sub: 'short', exp: nowSec() + 2 })
  const streams = await Promise.all([false, true].map(async (h1) => await openSse(t, server, { token, h1 })))
  for (const sse of streams) {
    await sse.next(isEvent('stream:ready'))
    t.same(JSON.parse((await sse.next(isEvent('error'), 5000)).data!), { code: 'UNAUTHORIZED', message: 'access token expired' })
    await sse.ended()
  }
  await until(() => server.app.roomHub.connectionsOf('short') === 0, 2000, 'the streams to leave the hub')
})

t.test('SSE streams and WebSockets share the per-user limit (429 with Retry-After), and a closed stream frees its slot', async (t) => {
  const server = await listen(t, { WS_MAX_CONNECTIONS_PER_USER: '1' })
  const first = await openSse(t, server, { token: testToken({ sub: 'tabs' }) })
  await first.next(isEvent('stream:ready'))
  const second = await openSse(t, server, { token: testToken({ sub: 'tabs' }) })
  t.equal(second.status, 429)
  t.ok(Number(second.headers['retry-after']) > 0)
  t.equal((await upgradeStatus(server, { sub: 'tabs' })).status, 429, 'a WebSocket of the same user too')
  first.close()
  await until(() => server.app.roomHub.connectionsOf('tabs') === 0, 2000, 'the stream to be released')
  t.equal((await openSse(t, server, { token: testToken({ sub: 'tabs' }) })).status, 200)
})

t.test('a comment heartbeat arrives on the configured interval', async (t) => {
  const server = await listen(t, { SSE_HEARTBEAT_MS: '100' })
  const sse = await openSse(t, server)
  t.match(await sse.next((e) => e.comment === 'ping'), { comment: 'ping' })
})

t.test('a client that stops reading is cut off once its unsent data passes the bound, never buffered without limit', async (t) => {
  const server = await listen(t, { WS_MAX_BUFFERED_BYTES: String(64 * 1024) })
  const sse = await openSse(t, server, { path: '/sse?room=firehose', h1: true })
  await sse.next(isEvent('stream:ready'))
  const metric = async (name: string) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(await server.app.metrics.metrics())?.[1])
  t.equal(await metric('sse_streams'), 1)
  sse.pause()
  const payload = 'x'.repeat(16 * 1024)
  // Bounded: 64 MiB at most, far beyond the bound plus what loopback socket buffers absorb.
  for (let n = 0; n < 4096 && await metric('sse_slow_consumer_closes_total') === 0; n++) {
    await server.app.roomHub.publish('firehose', 'room:message', { payload })
    if (n % 64 === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(await metric('sse_slow_consumer_closes_total'), 1, 'the stream was ended by the server')
  sse.resume()
  await sse.ended(10_000)
})

t.test('app.close() ends open streams instead of waiting for them', async (t) => {
  for (const h1 of [false, true]) {
    const server = await listen(t)
    const sse = await openSse(t, server, { h1 })
    await sse.next(isEvent('stream:ready'))
    const closing = server.app.close()
    await sse.ended()
    await closing
    t.pass(h1 ? 'HTTP/1.1' : 'HTTP/2')
  }
})

t.test('stream:ready carries the stream\'s connectionId: unguessable, one per stream', async (t) => {
  const server = await listen(t)
  const ids = []
  for (const h1 of [false, true]) {
    const sse = await openSse(t, server, { h1 })
    const ready = JSON.parse((await sse.next(isEvent('stream:ready'))).data!)
    t.match(ready, { rooms: ['lobby'], connectionId: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/ })
    ids.push(ready.connectionId)
  }
  t.not(ids[0], ids[1])
})

t.test('refusals are readable by the refused page: Access-Control-Allow-Origin names its Origin (no credentials); a stream that opens is unchanged', async (t) => {
  const server = await listen(t)
  const evil = 'https://evil.example'
  const foreign = await openSse(t, server, { headers: { origin: evil } })
  t.equal(foreign.status, 403)
  t.equal(foreign.headers['access-control-allow-origin'], evil)
  t.match(foreign.headers.vary, /\bOrigin\b/i)
  t.equal(foreign.headers['access-control-allow-credentials'], undefined)
  t.match(JSON.parse(await foreign.body()), { code: 'FORBIDDEN' })

  const own = `https://127.0.0.1:${server.port}`
  // The page is the server's own: over HTTP/2 the authority it was addressed to must say so.
  const fromOwn = { origin: own, ':authority': `127.0.0.1:${server.port}` }
  for (const h1 of [false, true]) {
    const bad = await openSse(t, server, { h1, token: null, path: '/sse?room=lobby&access_token=not-a-jwt', headers: h1 ? { origin: own } : fromOwn })
    t.equal(bad.status, 401)
    t.equal(bad.headers['access-control-allow-origin'], own, h1 ? 'HTTP/1.1' : 'HTTP/2')
    t.match(bad.headers.vary, /\bOrigin\b/i)
  }
  const opened = await openSse(t, server, { headers: fromOwn })
  t.equal(opened.status, 200)
  t.equal(opened.headers['access-control-allow-origin'], undefined, 'no CORS header on the stream itself')
  await opened.next(isEvent('stream:ready'))
})

t.test('with CORS_ORIGINS, a listed origin\'s refusals keep the CORS answer it always gets', async (t) => {
  const server = await listen(t, { CORS_ORIGINS: 'https://app.example' })
  const bad = await openSse(t, server, { token: 'not-a-jwt', headers: { origin: 'https://app.example' } })
  t.equal(bad.status, 401)
  t.equal(bad.headers['access-control-allow-origin'], 'https://app.example')
  t.equal(bad.headers['access-control-allow-credentials'], 'true')
  const foreign = await openSse(t, server, { headers: { origin: 'https://evil.example' } })
  t.equal(foreign.headers['access-control-allow-origin'], 'https://evil.example')
  t.equal(foreign.headers['access-control-allow-credentials'], undefined)
})
