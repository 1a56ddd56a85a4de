// Rooms across instances (REDIS_URL, README "Running several instances"): two Keel servers sharing one real redis-server —
// messages both ways with one seq per room, presence of both (and a killed instance's members
// expiring), replay from the Redis Streams history when a client moves to the other instance,
// publish dedup, and a Redis outage that local delivery survives and cross-instance delivery recovers from.

import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { listen, spawnServer, tempDir, waitListening, type Listening } from '../helpers/app.ts'
import { h1request } from '../helpers/http.ts'
import { scrapeMetrics } from '../helpers/metrics.ts'
import { startRedis, redisSkipReason, type TestRedis } from '../helpers/redis.ts'
import { openSocket, type Message, type TestSocket, type WsTarget } from '../helpers/ws.ts'

const skip = redisSkipReason({ control: true })
const isMessage = (room: string, n?: number) => (m: Message) =>
  m.event === 'room:message' && m.data.room === room && (n === undefined || m.data.payload?.n === n)

/** An in-process instance on the shared Redis (its logs readable by the test). */
async function instance (t: Parameters<typeof listen>[0], redis: TestRedis, env: Record<string, string> = {}): Promise<Listening> {
  // The message budget is not under test: writers here publish 50 messages back to back.
  return await listen(t, { REDIS_URL: redis.url, LOG_LEVEL: 'info', WS_MESSAGE_RATE: '10000', WS_MESSAGE_BURST: '10000', ...env })
}

async function ready (server: WsTarget): Promise<{ status: number, body: any }> {
  const res = await h1request(`${server.url}/health/ready`, { ca: server.ca })
  return { status: res.status, body: JSON.parse(res.body) }
}

/** Publishes `n` and resolves with the ack's seq. */
async function publish (socket: TestSocket, room: string, n: number): Promise<number> {
  const ack = await socket.request('room:publish', { room, payload: { n } })
  if (ack.event !== 'ack') throw new Error(`publish refused: ${JSON.stringify(ack)}`)
  return ack.data.seq as number
}

t.test('two instances on one Redis: messages both ways with one seq, presence of both', { skip }, async (t) => {
  const redis = await startRedis(t)
  const a = await instance(t, redis)
  const b = await instance(t, redis)
  const alice = await openSocket(t, a, { sub: 'alice' })
  const bob = await openSocket(t, b, { sub: 'bob' })
  t.match((await alice.request('room:join', { room: 'span' })).data, { room: 'span', joined: true, seq: 0 })
  t.match((await bob.request('room:join', { room: 'span' })).data, { room: 'span', joined: true, seq: 0 })
  await alice.next((m) => m.event === 'presence:join' && m.data.user === 'bob')

  t.equal(await publish(alice, 'span', 1), 1)
  t.same((await bob.next(isMessage('span', 1))).data, { from: 'alice', payload: { n: 1 }, room: 'span', seq: 1 }, 'A → B')
  t.equal(await publish(bob, 'span', 2), 2, 'the seq continues on the other instance')
  t.equal((await alice.next(isMessage('span', 2))).data.seq, 2, 'B → A')
  t.equal(await alice.maybeNext(isMessage('span', 1), 200), null, 'the sender does not get its own message back')

  t.same((await alice.request('presence:list', { room: 'span' })).data, { room: 'span', users: ['alice', 'bob'], count: 2 })
  t.same((await bob.request('presence:list', { room: 'span' })).data, { room: 'span', users: ['alice', 'bob'], count: 2 })
  const bob2 = await openSocket(t, a, { sub: 'bob' })
  await bob2.request('room:join', { room: 'span' })
  t.equal(await alice.maybeNext((m) => m.event === 'presence:join', 300), null, 'a user already present on another instance is not announced twice')
  bob2.ws.close()
  t.equal(await alice.maybeNext((m) => m.event === 'presence:leave', 300), null, 'nor leaves while connected elsewhere')

  // Server code on A reaches a user's connections on B.
  await a.app.roomHub.sendToUser('bob', 'notice', { text: 'hello' })
  t.same((await bob.next((m) => m.event === 'notice')).data, { text: 'hello' }, 'user-targeted sends cross instances')
  t.match(await ready(a), { status: 200, body: { checks: { redis: { status: 'ok' } } } })
})

t.test('killing an instance: its members leave the others\' presence within the TTL', { skip }, async (t) => {
  const redis = await startRedis(t)
  const ttl = 1500
  const a = await instance(t, redis, { PRESENCE_TTL_MS: String(ttl) })
  const cwd = tempDir()
  const spawned = await waitListening(spawnServer(t, { REDIS_URL: redis.url, PRESENCE_TTL_MS: String(ttl) }, cwd))
  const b = { url: spawned.url, ca: readFileSync(join(cwd, 'certs', 'dev-cert.pem')) }
  const alice = await openSocket(t, a, { sub: 'alice' })
  const carol = await openSocket(t, b, { sub: 'carol' })
  await alice.request('room:join', { room: 'crash' })
  await carol.request('room:join', { room: 'crash' })
  t.same((await alice.request('presence:list', { room: 'crash' })).data.users, ['alice', 'carol'])

  const killedAt = Date.now()
  spawned.proc.kill('SIGKILL')
  await spawned.exited
  const leave = await alice.next((m) => m.event === 'presence:leave' && m.data.user === 'carol', ttl * 3)
  const took = Date.now() - killedAt
  t.same(leave.data, { user: 'carol', count: 1, room: 'crash' }, 'A announces that the dead instance\'s member left')
  t.ok(took <= ttl + ttl / 3 + 1000, `announced ${took} ms after the kill (TTL ${ttl} ms, renewals every ${ttl / 3} ms)`)
  t.same((await alice.request('presence:list', { room: 'crash' })).data.users, ['alice'])
})

t.test('replay across instances: disconnect from A, 50 messages, reconnect to B with since', { skip }, async (t) => {
  const redis = await startRedis(t)
  const a = await instance(t, redis)
  const b = await instance(t, redis)
  const writer = await openSocket(t, a, { sub: 'writer' })
  await writer.request('room:join', { room: 'resume' })
  const reader = await openSocket(t, a, { sub: 'reader' })
  await reader.request('room:join', { room: 'resume' })
  await publish(writer, 'resume', 0)
  const seen = (await reader.next(isMessage('resume', 0))).data.seq as number
  reader.ws.close()
  await reader.closed()

  for (let n = 1; n <= 50; n++) await publish(writer, 'resume', n)
  const back = await openSocket(t, b, { sub: 'reader' })
  const replayed: number[] = []
  back.ws.on('message', (raw) => {
    const m = JSON.parse(raw.toString()) as Message
    if (m.event === 'room:message') replayed.push(m.data.payload.n as number)
  })
  const ack = await back.request('room:join', { room: 'resume', since: seen })
  t.same(ack.data, { room: 'resume', joined: true, seq: seen + 50, recovered: true })
  t.same(replayed, Array.from({ length: 50 }, (_, i) => i + 1), 'all 50, in order, before the ack')
  await publish(writer, 'resume', 51)
  await back.next(isMessage('resume', 51))
  t.same(replayed, Array.from({ length: 51 }, (_, i) => i + 1), 'then live, with no duplicate at the seam')

  // A history of 10 cannot cover a gap of 50: the client learns it must refetch.
  const c = await instance(t, redis, { ROOM_HISTORY_SIZE: '10' })
  const writer2 = await openSocket(t, c, { sub: 'writer2' })
  await writer2.request('room:join', { room: 'short' })
  for (let n = 1; n <= 50; n++) await publish(writer2, 'short', n)
  const late = await openSocket(t, b, { sub: 'late' })
  t.same((await late.request('room:join', { room: 'short', since: 0 })).data, { room: 'short', joined: true, seq: 50, recovered: false })
  t.same((await late.request('room:join', { room: 'short', since: 45 })).data, { room: 'short', joined: false, seq: 50, recovered: true })
  t.equal((await late.next(isMessage('short', 46))).data.seq, 46, 'a gap the history covers is replayed')
})

t.test('a publish retried with the same id (lost ack) is delivered once and acknowledged twice', { skip }, async (t) => {
  const redis = await startRedis(t)
  const a = await instance(t, redis)
  const b = await instance(t, redis)
  const sender = await openSocket(t, a, { sub: 'sender' })
  const other = await openSocket(t, b, { sub: 'other' })
  await sender.request('room:join', { room: 'dedup' })
  await other.request('room:join', { room: 'dedup' })
  const first = sender.next((m) => m.id === 'msg-1')
  sender.send({ event: 'room:publish', id: 'msg-1', data: { room: 'dedup', payload: { n: 1 } } })
  const ack1 = await first
  // The client never saw ack1 (say): it reconnects, to the other instance, and sends the same id again.
  sender.ws.close()
  const again = await openSocket(t, b, { sub: 'sender' })
  await again.request('room:join', { room: 'dedup' })
  const second = again.next((m) => m.id === 'msg-1')
  again.send({ event: 'room:publish', id: 'msg-1', data: { room: 'dedup', payload: { n: 1 } } })
  const ack2 = await second
  t.same(ack1.data, { room: 'dedup', seq: 1 })
  t.same(ack2, ack1, 'the same ack, twice')
  await publish(again, 'dedup', 2)
  await other.next(isMessage('dedup', 2))
  t.same([(await other.next(isMessage('dedup', 1))).data.seq, await other.maybeNext(isMessage('dedup', 1), 100)], [1, null], 'delivered once')
})

t.test('Redis stopped mid-test: local delivery goes on, then cross-instance delivery resumes, no crash', { skip }, async (t) => {
  const redis = await startRedis(t)
  const a = await instance(t, redis)
  const b = await instance(t, redis)
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown) => { unhandled.push(reason) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })

  const [a1, a2] = [await openSocket(t, a, { sub: 'a1' }), await openSocket(t, a, { sub: 'a2' })]
  const b1 = await openSocket(t, b, { sub: 'b1' })
  for (const s of [a1, a2, b1]) await s.request('room:join', { room: 'outage' })
  const before = await publish(a1, 'outage', 1)
  await b1.next(isMessage('outage', 1))
  await a2.next(isMessage('outage', 1))

  await redis.stop()
  await a.logs.waitFor(/Redis unreachable|room hub: .* failed/, 5000)
  const during = await publish(a1, 'outage', 2)
  t.equal(during, before + 1, 'numbered after the last seq this instance saw')
  t.equal((await a2.next(isMessage('outage', 2))).data.seq, during, 'a member on the same instance still gets it')
  t.equal(await b1.maybeNext(isMessage('outage', 2), 300), null, 'the other instance cannot (Redis is down)')
  t.match(await ready(a), { status: 503, body: { checks: { redis: { status: 'fail' } } } }, 'readiness reports it')
  const metrics = await scrapeMetrics(a.app)
  t.match(metrics, /room_hub_redis_failures_total\{operation="publishing to Redis"\} [1-9]/, 'the failure is counted')

  await redis.restart()
  // Both instances reconnect by themselves (bounded waits on what they log), then report ready.
  for (const instance of [a, b]) {
    await instance.logs.waitFor(/Redis reachable again/, 10_000)
  }
  t.equal((await ready(a)).status, 200, 'A ready again')
  t.equal((await ready(b)).status, 200, 'B ready again')
  const after = await publish(b1, 'outage', 3)
  t.ok(after > during, `the room's seq continues past the outage's (${after} > ${during})`)
  t.equal((await a1.next(isMessage('outage', 3))).data.seq, after, 'B → A again')
  t.equal((await a2.next(isMessage('outage', 3))).data.seq, after)
  await publish(a2, 'outage', 4)
  t.equal((await b1.next(isMessage('outage', 4))).data.payload.n, 4, 'A → B again')
  t.same(unhandled, [], 'no unhandled rejection')
})
