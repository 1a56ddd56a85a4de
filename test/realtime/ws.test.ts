// GET /ws as a client sees it (README "WebSocket"), with real `ws` clients over TLS: the handshake checks
// before the upgrade, connection:ready, rooms, publish, presence, acks and errors. Limits and
// lifecycle are in test/realtime/plugin.test.ts.

import t from 'tap'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import WebSocket from 'ws'
import { ROOT, listen } from '../helpers/app.ts'
import { h1request, h2request, h2session } from '../helpers/http.ts'
import { testToken, tokenFixture } from '../helpers/tokens.ts'
import { openSocket, upgradeStatus } from '../helpers/ws.ts'
import { redisSkipReason, startRedis } from '../helpers/redis.ts'

t.test('the handshake refuses before the upgrade: never a 101', async (t) => {
  const server = await listen(t, { CORS_ORIGINS: 'https://app.example' })

  t.test('no token → 401 with a Bearer challenge', async (t) => {
    const res = await upgradeStatus(server, { anonymous: true })
    t.equal(res.status, 401)
    t.match(res.headers['www-authenticate'], /^Bearer realm="keel"/)
    t.match(JSON.parse(res.body), { status: 401, code: 'UNAUTHORIZED', instance: '/ws' })
  })

  t.test('an invalid token → 401 invalid_token', async (t) => {
    const res = await upgradeStatus(server, { token: 'not-a-jwt' })
    t.equal(res.status, 401)
    t.match(res.headers['www-authenticate'], /error="invalid_token"/)
  })

  t.test('a token in ?access_token= (browsers) opens the socket, and the token is not echoed', async (t) => {
    const socket = await openSocket(t, server, { sub: 'browser-user', queryToken: true })
    t.equal(socket.ready.data.user.sub, 'browser-user')
    const bad = await upgradeStatus(server, { token: 'not-a-jwt', queryToken: true })
    t.equal(bad.status, 401)
    t.notMatch(bad.body, /not-a-jwt/)
  })

  t.test('an Origin outside CORS_ORIGINS → 403 (cross-site WebSocket hijacking)', async (t) => {
    const res = await upgradeStatus(server, { headers: { origin: 'https://evil.example' } })
    t.equal(res.status, 403)
    t.match(JSON.parse(res.body), { code: 'FORBIDDEN' })
    // A look-alike of the server's own origin with another scheme or port is foreign too.
    t.equal((await upgradeStatus(server, { headers: { origin: `http://127.0.0.1:${server.port}` } })).status, 403)
    t.equal((await upgradeStatus(server, { headers: { origin: `https://127.0.0.1:${server.port + 1}` } })).status, 403)
  })

  t.test('a listed Origin, the server\'s own origin, and no Origin (non-browser clients) are accepted', async (t) => {
    t.equal((await upgradeStatus(server, { headers: { origin: 'https://app.example' } })).status, 101)
    t.equal((await upgradeStatus(server, { headers: { origin: `https://127.0.0.1:${server.port}` } })).status, 101)
    t.equal((await upgradeStatus(server)).status, 101)
  })

  t.test('a page on a host name that merely resolves to the server (DNS rebinding) is foreign: its Host is not one of the server\'s names', async (t) => {
    const rebound = `rebound.example:${server.port}`
    t.equal((await upgradeStatus(server, { headers: { origin: `https://${rebound}`, host: rebound } })).status, 403)
    const named = `localhost:${server.port}`
    t.equal((await upgradeStatus(server, { headers: { origin: `https://${named}`, host: named } })).status, 101, 'a name in the server\'s certificate is its own')
  })

  t.test('the Origin check runs before auth: a foreign page learns nothing about tokens', async (t) => {
    const res = await upgradeStatus(server, { anonymous: true, headers: { origin: 'https://evil.example' } })
    t.equal(res.status, 403)
  })

  t.test('a plain GET /ws over HTTP/2 answers 426 (upgrade required), not a socket', async (t) => {
    const session = await h2session(server.url, { ca: server.ca })
    t.teardown(() => session.close())
    const res = await h2request(session, '/ws', { authorization: `Bearer ${testToken()}`, 'x-request-id': 'plain-get-1' })
    t.equal(res.status, 426)
    t.match(res.headers['content-type'], /^application\/problem\+json/)
    t.match(JSON.parse(res.body), { status: 426, code: 'UPGRADE_REQUIRED', instance: '/ws', requestId: 'plain-get-1' })
  })

  t.test('a plain GET /ws over HTTP/1.1 answers 426 with Upgrade: websocket', async (t) => {
    const res = await h1request(`${server.url}/ws`, { ca: server.ca, headers: { authorization: `Bearer ${testToken()}` } })
    t.equal(res.status, 426)
    t.equal(res.headers.upgrade, 'websocket')
    t.match(JSON.parse(res.body), { status: 426, code: 'UPGRADE_REQUIRED', requestId: String })
  })
})

t.test('refusals are readable by the refused page (a diagnostic fetch after a failed open): Access-Control-Allow-Origin names its Origin, without credentials', async (t) => {
  const server = await listen(t)
  const evil = 'https://evil.example'
  const own = `https://127.0.0.1:${server.port}`
  const foreign = await upgradeStatus(server, { headers: { origin: evil } })
  t.equal(foreign.status, 403)
  t.equal(foreign.headers['access-control-allow-origin'], evil)
  t.match(foreign.headers.vary, /\bOrigin\b/i)
  t.equal(foreign.headers['access-control-allow-credentials'], undefined)

  const bad = await upgradeStatus(server, { token: 'not-a-jwt', queryToken: true, headers: { origin: own } })
  t.equal(bad.status, 401)
  t.equal(bad.headers['access-control-allow-origin'], own)

  // What a page's fetch('/ws?access_token=…') sees: a plain GET, no upgrade.
  const probe = await h1request(`${server.url}/ws?access_token=${encodeURIComponent(testToken())}`, { ca: server.ca, headers: { origin: own } })
  t.equal(probe.status, 426)
  t.equal(probe.headers['access-control-allow-origin'], own)
  const session = await h2session(server.url, { ca: server.ca })
  t.teardown(() => session.close())
  const refused = await h2request(session, '/ws?access_token=not-a-jwt', { origin: evil })
  t.equal(refused.status, 403, 'over HTTP/2')
  t.equal(refused.headers['access-control-allow-origin'], evil)

  const upgraded = new WebSocket(`${server.url.replace(/^http/, 'ws')}/ws`, { ca: server.ca, servername: 'localhost', headers: { origin: own, authorization: `Bearer ${testToken()}` } } as ConstructorParameters<typeof WebSocket>[2])
  t.teardown(() => upgraded.terminate())
  const [response] = await once(upgraded, 'upgrade') as [{ headers: Record<string, unknown> }]
  t.equal(response.headers['access-control-allow-origin'], undefined, 'a 101 is unchanged')
})

t.test('with TLS=off the server\'s own origin is its listening address (or localhost on loopback); a rebound host name is foreign', async (t) => {
  const server = await listen(t, { TLS: 'off' })
  const own = `127.0.0.1:${server.port}`
  t.equal((await upgradeStatus(server, { headers: { origin: `http://${own}` } })).status, 101)
  const local = `localhost:${server.port}`
  t.equal((await upgradeStatus(server, { headers: { origin: `http://${local}`, host: local } })).status, 101)
  const rebound = `rebound.example:${server.port}`
  t.equal((await upgradeStatus(server, { headers: { origin: `http://${rebound}`, host: rebound } })).status, 403)
  t.equal((await upgradeStatus(server, { headers: { origin: `https://${own}` } })).status, 403, 'another scheme is another origin')
})

t.test('every token the HTTP API rejects is refused at the upgrade with 401, and every accepted one opens', async (t) => {
  const fixture = await tokenFixture(t)
  const server = await listen(t, { ...fixture.jwksEnv, AUTH_FAILURE_LIMIT: '1000' })
  for (const c of fixture.cases) {
    const res = await upgradeStatus(server, { token: c.token })
    t.equal(res.status, c.accepted ? 101 : 401, c.name)
  }
})

t.test('on open the server sends connection:ready with the connection id and the user', async (t) => {
  const server = await listen(t)
  const a = await openSocket(t, server, { token: testToken({ sub: 'alice', scope: 'items:read' }) })
  const b = await openSocket(t, server, { sub: 'alice' })
  t.match(a.ready, { event: 'connection:ready', data: { connectionId: String, user: { sub: 'alice', scopes: ['items:read'], exp: Number } } })
  t.not(a.ready.data.connectionId, b.ready.data.connectionId, 'each connection has its own id')
})

// The same promises with the hub in process and with its state in Redis (REDIS_URL, one instance here;
// across instances: test/realtime/ws-redis.test.ts).
const backends = [
  { name: 'in process', skip: false as string | false, env: async (_t: unknown): Promise<Record<string, string>> => ({}) },
  { name: 'through Redis', skip: redisSkipReason(), env: async (t: Parameters<typeof startRedis>[0]) => ({ REDIS_URL: (await startRedis(t)).url }) }
]

for (const backend of backends) {
  t.test(`rooms: join, publish and leave, with acks (${backend.name})`, { skip: backend.skip }, async (t) => {
    const server = await listen(t, await backend.env(t))
    const alice = await openSocket(t, server, { sub: 'alice' })
    const bob = await openSocket(t, server, { sub: 'bob' })
    const carol = await openSocket(t, server, { sub: 'carol' })

    t.same(await alice.request('room:join', { room: 'lobby' }), { event: 'ack', id: 'r1', data: { room: 'lobby', joined: true, seq: 0 } })
    t.match(await bob.request('room:join', { room: 'lobby' }), { event: 'ack', data: { room: 'lobby', joined: true } })
    t.match(await bob.request('room:join', { room: 'lobby' }), { event: 'ack', data: { joined: false } }, 'joining twice is harmless')

    t.test('members except the sender receive room:message {room, from, payload, seq}', async (t) => {
      const ack = await alice.request('room:publish', { room: 'lobby', payload: { text: 'hi', n: [1, 2] } })
      t.match(ack, { event: 'ack', data: { room: 'lobby', seq: 1 } })
      const message = await bob.next((m) => m.event === 'room:message')
      t.same(message, { event: 'room:message', data: { from: 'alice', payload: { text: 'hi', n: [1, 2] }, room: 'lobby', seq: 1 } })
      t.equal(await alice.maybeNext((m) => m.event === 'room:message', 300), null, 'the sender does not get its own message')
      t.equal(await carol.maybeNext((m) => m.event === 'room:message', 100), null, 'a non-member gets nothing')
    })

    t.test('seq grows by exactly one per room, each room counting on its own', async (t) => {
      await alice.request('room:join', { room: 'other' })
      await bob.request('room:join', { room: 'other' })
      const seqs: number[] = []
      for (let i = 0; i < 5; i++) {
        await alice.request('room:publish', { room: 'lobby', payload: i })
        if (i === 2) await bob.request('room:publish', { room: 'other', payload: 'x' })
      }
      for (let i = 0; i < 5; i++) seqs.push((await bob.next((m) => m.event === 'room:message' && m.data.room === 'lobby')).data.seq)
      t.same(seqs, [2, 3, 4, 5, 6])
      t.equal((await alice.next((m) => m.event === 'room:message' && m.data.room === 'other')).data.seq, 1)
    })

    t.test('a message without an id gets no ack but is still delivered', async (t) => {
      alice.send({ event: 'room:publish', data: { room: 'lobby', payload: 'no-id' } })
      t.match(await bob.next((m) => m.event === 'room:message' && m.data.payload === 'no-id'), { data: { seq: 7 } })
      t.equal(await alice.maybeNext((m) => m.event === 'ack', 300), null)
    })

    t.test('after room:leave the connection receives nothing from the room', async (t) => {
      t.match(await bob.request('room:leave', { room: 'lobby' }), { event: 'ack', data: { room: 'lobby', left: true } })
      t.match(await bob.request('room:leave', { room: 'lobby' }), { event: 'ack', data: { left: false } })
      await alice.request('room:publish', { room: 'lobby', payload: 'after-leave' })
      t.equal(await bob.maybeNext((m) => m.event === 'room:message' && m.data.room === 'lobby', 300), null)
    })
  })

  t.test(`room:join with a since beyond the room's seq (a restart without Redis) says recovered: false, and live messages still arrive (${backend.name})`, { skip: backend.skip }, async (t) => {
    const server = await listen(t, await backend.env(t))
    const alice = await openSocket(t, server, { sub: 'alice' })
    const bob = await openSocket(t, server, { sub: 'bob' })
    await alice.request('room:join', { room: 'ahead' })
    for (let n = 1; n <= 2; n++) await alice.request('room:publish', { room: 'ahead', payload: n })
    t.same((await bob.request('room:join', { room: 'ahead', since: 50 })).data, { room: 'ahead', joined: true, seq: 2, recovered: false })
    await alice.request('room:publish', { room: 'ahead', payload: 3 })
    t.match(await bob.next((m) => m.event === 'room:message'), { data: { payload: 3, seq: 3 } })
  })

  t.test(`presence: join and leave pushes, and presence:list with user ids and counts (${backend.name})`, { skip: backend.skip }, async (t) => {
    const server = await listen(t, await backend.env(t))
    const alice = await openSocket(t, server, { sub: 'alice' })
    const bob = await openSocket(t, server, { sub: 'bob' })
    const bobTab2 = await openSocket(t, server, { sub: 'bob' })
    await alice.request('room:join', { room: 'team' })

    await bob.request('room:join', { room: 'team' })
    t.same(await alice.next((m) => m.event === 'presence:join'), { event: 'presence:join', data: { user: 'bob', count: 2, room: 'team' } })
    t.equal(await bob.maybeNext((m) => m.event === 'presence:join', 200), null, 'the joiner is not told about itself')

    await bobTab2.request('room:join', { room: 'team' })
    t.equal(await alice.maybeNext((m) => m.event === 'presence:join', 300), null, 'a second connection of a present user is not a new presence')
    const list = await alice.request('presence:list', { room: 'team' })
    t.match(list, { event: 'ack', data: { room: 'team', count: 2 } })
    t.same([...list.data.users].sort(), ['alice', 'bob'])

    await bob.request('room:leave', { room: 'team' })
    t.equal(await alice.maybeNext((m) => m.event === 'presence:leave', 300), null, 'bob is still there through another connection')
    bobTab2.ws.close()
    t.same(await alice.next((m) => m.event === 'presence:leave'), { event: 'presence:leave', data: { user: 'bob', count: 1, room: 'team' } },
      'closing the last connection leaves every room')
    t.same((await alice.request('presence:list', { room: 'team' })).data, { room: 'team', users: ['alice'], count: 1 })
  })
}

t.test('errors answer the id once and never close the connection', async (t) => {
  const server = await listen(t)
  const socket = await openSocket(t, server, { sub: 'alice' })

  t.test('a frame that is not JSON → INVALID_MESSAGE', async (t) => {
    socket.ws.send('not json')
    t.match(await socket.next((m) => m.event === 'error'), { data: { code: 'INVALID_MESSAGE', message: String } })
  })

  t.test('JSON that is not an envelope → INVALID_MESSAGE, with the id when it is readable', async (t) => {
    socket.send([1, 2])
    t.match(await socket.next((m) => m.event === 'error'), { data: { code: 'INVALID_MESSAGE' } })
    socket.send({ id: 'e1', data: {} })
    t.match(await socket.next((m) => m.id === 'e1'), { event: 'error', data: { code: 'INVALID_MESSAGE', message: /event/ } })
    socket.send({ event: 'ping', id: 42 })
    t.match(await socket.next((m) => m.event === 'error'), { data: { code: 'INVALID_MESSAGE', message: /id/ } })
  })

  t.test('a binary frame → INVALID_MESSAGE', async (t) => {
    socket.ws.send(Buffer.from('{"event":"ping"}'))
    t.match(await socket.next((m) => m.event === 'error'), { data: { code: 'INVALID_MESSAGE', message: /binary/ } })
  })

  t.test('an unknown event → UNKNOWN_EVENT', async (t) => {
    t.match(await socket.request('no:such', {}), { event: 'error', data: { code: 'UNKNOWN_EVENT', message: /no:such/ } })
  })

  t.test('data that does not match the event\'s schema → VALIDATION naming the field', async (t) => {
    const res = await socket.request('room:join', { room: 42 })
    t.match(res, { event: 'error', data: { code: 'VALIDATION', errors: [{ path: '/data/room' }] } })
    t.match(await socket.request('room:join'), { data: { code: 'VALIDATION' } }, 'missing data')
    t.match(await socket.request('room:join', { room: 'has space' }), { data: { code: 'VALIDATION' } }, 'a name outside the room-name pattern')
  })

  t.test('rooms the user may not enter → FORBIDDEN', async (t) => {
    t.match(await socket.request('room:join', { room: 'user:bob' }), { event: 'error', data: { code: 'FORBIDDEN' } }, 'another user\'s channel')
    t.match(await socket.request('room:join', { room: 'admin:ops' }), { data: { code: 'FORBIDDEN' } }, 'an undeclared namespace')
    t.match(await socket.request('presence:list', { room: 'user:bob' }), { data: { code: 'FORBIDDEN' } })
    t.match(await socket.request('room:publish', { room: 'lobby', payload: 1 }), { data: { code: 'FORBIDDEN' } }, 'publishing without joining')
    t.match(await socket.request('room:join', { room: 'user:alice' }), { event: 'ack', data: { room: 'user:alice' } }, 'one\'s own channel')
    t.match(await socket.request('room:publish', { room: 'user:alice', payload: 1 }), { data: { code: 'FORBIDDEN' } }, 'a server-written room')
    t.match(await socket.request('presence:list', { room: 'user:alice' }), { data: { code: 'FORBIDDEN' } }, 'a room without presence')
  })

  t.test('the connection is still open and serving after every error', async (t) => {
    t.equal(socket.ws.readyState, socket.ws.OPEN)
    t.match(await socket.request('ping'), { event: 'ack', data: { time: Number } })
  })
})

t.test('a frame over WS_MAX_PAYLOAD_BYTES closes the connection with 1009', async (t) => {
  const server = await listen(t, { WS_MAX_PAYLOAD_BYTES: '4096' })
  const socket = await openSocket(t, server)
  await socket.request('room:join', { room: 'big' })
  t.match(await socket.request('room:publish', { room: 'big', payload: 'x'.repeat(3000) }), { event: 'ack' }, 'under the limit is fine')
  socket.send({ event: 'room:publish', data: { room: 'big', payload: 'x'.repeat(5000) } })
  t.equal((await socket.closed()).code, 1009)
  // Once closed (close waits for every connection), the server counted the code the client saw.
  await server.app.close()
  t.match(await server.app.metrics.metrics(), /^ws_closes_total\{code="1009"\} 1$/m)
})

t.test('the default frame limit is 64 KiB', async (t) => {
  const server = await listen(t)
  const socket = await openSocket(t, server)
  await socket.request('room:join', { room: 'big' })
  t.match(await socket.request('room:publish', { room: 'big', payload: 'x'.repeat(60 * 1024) }), { event: 'ack' })
  socket.send({ event: 'room:publish', data: { room: 'big', payload: 'x'.repeat(200 * 1024) } })
  t.equal((await socket.closed()).code, 1009)
})

t.test('README example: room:typing is one file in realtime/protocol/events, and works', async (t) => {
  const server = await listen(t)
  const alice = await openSocket(t, server, { sub: 'alice' })
  const bob = await openSocket(t, server, { sub: 'bob' })
  t.match(await alice.request('room:typing', { room: 'chat', typing: true }), { data: { code: 'FORBIDDEN' } }, 'members only')
  await alice.request('room:join', { room: 'chat' })
  await bob.request('room:join', { room: 'chat' })
  t.same(await alice.request('room:typing', { room: 'chat', typing: true }), { event: 'ack', id: 'r3', data: { room: 'chat' } })
  t.same(await bob.next((m) => m.event === 'room:typing'), { event: 'room:typing', data: { user: 'alice', typing: true, room: 'chat' } },
    'transient: no seq')
  t.match(await alice.request('room:typing', { room: 'chat', typing: 'yes' }), { data: { code: 'VALIDATION' } })
  t.ok(server.app.webSockets.events.includes('room:typing'), 'discovered from its file, no registration elsewhere')
  const definition = (file: string) => /^export default defineEvent\(\{$[\s\S]*?^\}\)$/m.exec(file)?.[0].replace(/ +\/\/ .*$/gm, '')
  const file = definition(readFileSync(join(ROOT, 'realtime/protocol/events/room-typing.ts'), 'utf8'))
  t.match(file, /event: 'room:typing'/)
  t.equal(definition(readFileSync(join(ROOT, 'README.md'), 'utf8')), file, 'the README shows this very file')
})
