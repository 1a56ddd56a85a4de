// Room history stays within its total bounds, in memory and in Redis alike (ROOM_HISTORY_MAX_ROOMS,
// ROOM_HISTORY_MAX_BYTES, ROOM_HISTORY_MAX_MESSAGE_BYTES): the least recently written rooms lose their
// history first, a message over the per-message limit is delivered but not kept, and both are
// counted. Against a real redis-server: one client rotating through new rooms with 60 KB messages
// cannot grow Redis past the byte bound, and the index behind the bound survives expired streams.

import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import type { FastifyInstance } from 'fastify'
import { listen, testConfig } from '../helpers/app.ts'
import { openSocket, type Message, type TestSocket } from '../helpers/ws.ts'
import { redisSkipReason, startRedis } from '../helpers/redis.ts'
import { createRedisClient } from '../../core/redis-client.ts'
import { createRedisBus, type RedisBusOptions } from '../../realtime/hub/redis-bus.ts'
import type { HubBus } from '../../realtime/hub/room-hub.ts'

const backends = [
  { name: 'in process', skip: false as string | false, env: async (_t: Test): Promise<Record<string, string>> => ({}) },
  { name: 'through Redis', skip: redisSkipReason(), env: async (t: Test) => ({ REDIS_URL: (await startRedis(t)).url }) }
]

async function metricValue (app: FastifyInstance, name: string): Promise<number> {
  const metric = await app.metrics.getSingleMetric(name)?.get()
  return (metric?.values ?? []).reduce((sum, v) => sum + v.value, 0)
}

/** Joins, publishes `payload` and leaves again; resolves with the message's seq. */
async function publishOnce (socket: TestSocket, room: string, payload: unknown): Promise<number> {
  await socket.request('room:join', { room })
  const ack = await socket.request('room:publish', { room, payload })
  if (ack.event !== 'ack') throw new Error(`publish refused: ${JSON.stringify(ack)}`)
  await socket.request('room:leave', { room })
  return ack.data.seq as number
}

t.test('the bounds default to 1000 rooms, 32 MiB in all and 16 KiB a message; a message limit over the total is refused', async (t) => {
  t.match(testConfig().ws, { historyMaxRooms: 1000, historyMaxBytes: 32 * 1024 * 1024, historyMaxMessageBytes: 16 * 1024 })
  t.throws(() => testConfig({ ROOM_HISTORY_MAX_BYTES: '4096', ROOM_HISTORY_MAX_MESSAGE_BYTES: '8192' }),
    { name: 'ConfigError', message: /ROOM_HISTORY_MAX_MESSAGE_BYTES .*over ROOM_HISTORY_MAX_BYTES/ })
})

for (const backend of backends) {
  t.test(`past ROOM_HISTORY_MAX_ROOMS the least recently written room loses its history first, counted (${backend.name})`, { skip: backend.skip }, async (t) => {
    const server = await listen(t, { ...await backend.env(t), ROOM_HISTORY_MAX_ROOMS: '2' })
    const writer = await openSocket(t, server, { sub: 'writer' })
    for (const room of ['first', 'second', 'third']) await publishOnce(writer, room, { room })
    const reader = await openSocket(t, server, { sub: 'reader' })
    t.match((await reader.request('room:join', { room: 'first', since: 0 })).data, { seq: 1, recovered: false }, 'the oldest room\'s history is gone')
    t.match((await reader.request('room:join', { room: 'second', since: 0 })).data, { seq: 1, recovered: true })
    t.match((await reader.request('room:join', { room: 'third', since: 0 })).data, { seq: 1, recovered: true })
    t.equal(await metricValue(server.app, 'room_history_evictions_total'), 1)
  })

  t.test(`a message over ROOM_HISTORY_MAX_MESSAGE_BYTES is delivered but not kept (${backend.name})`, { skip: backend.skip }, async (t) => {
    const server = await listen(t, { ...await backend.env(t), ROOM_HISTORY_MAX_MESSAGE_BYTES: '1024' })
    const writer = await openSocket(t, server, { sub: 'writer' })
    const member = await openSocket(t, server, { sub: 'member' })
    await writer.request('room:join', { room: 'big' })
    await member.request('room:join', { room: 'big' })
    const received: Message[] = []
    for (const text of ['small', 'x'.repeat(2000), 'small again']) {
      await writer.request('room:publish', { room: 'big', payload: { text } })
      received.push(await member.next((m) => m.event === 'room:message' && m.data.payload.text === text))
    }
    t.same(received.map((m) => m.data.seq), [1, 2, 3], 'every message is delivered live')
    const late = await openSocket(t, server, { sub: 'late' })
    t.match((await late.request('room:join', { room: 'big', since: 0 })).data, { seq: 3, recovered: false }, 'a resume from before it is not recovered')
    t.match((await late.request('room:join', { room: 'big', since: 2 })).data, { seq: 3, recovered: true }, 'one after it is')
    t.equal((await late.next((m) => m.event === 'room:message')).data.seq, 3)
    t.equal(await metricValue(server.app, 'room_history_oversized_total'), 1)
  })
}

/** What the Redis history holds: text bytes of every stream entry, the rooms, and the index's total. */
async function storedHistory (redis: Redis): Promise<{ rooms: string[], bytes: number, indexTotal: number }> {
  const keys = await redis.keys('keel:hub:history:*')
  let bytes = 0
  for (const key of keys) {
    for (const [, fields] of await redis.xrange(key, '-', '+')) bytes += Buffer.byteLength(fields[fields.indexOf('p') + 1]!)
  }
  const rooms = keys.map((key) => key.slice('keel:hub:history:'.length)).sort()
  return { rooms, bytes, indexTotal: Number(await redis.get('keel:hub:history-bytes') ?? 0) }
}

t.test('one client rotating through new rooms with 60 KB messages cannot grow Redis past ROOM_HISTORY_MAX_BYTES', { skip: redisSkipReason() }, async (t) => {
  const redis = await startRedis(t)
  const maxBytes = 256 * 1024
  const server = await listen(t, {
    REDIS_URL: redis.url,
    ROOM_HISTORY_MAX_BYTES: String(maxBytes),
    ROOM_HISTORY_MAX_MESSAGE_BYTES: String(64 * 1024),
    WS_MESSAGE_RATE: '10000',
    WS_MESSAGE_BURST: '10000'
  })
  const inspector = new Redis(redis.url)
  t.teardown(() => inspector.disconnect())
  const attacker = await openSocket(t, server, { sub: 'attacker' })
  const blob = 'y'.repeat(60_000)
  for (let i = 0; i < 30; i++) await publishOnce(attacker, `flood-${i}`, { blob })
  const stored = await storedHistory(inspector)
  t.ok(stored.bytes <= maxBytes, `${stored.bytes} bytes of history kept (bound ${maxBytes})`)
  t.ok(stored.bytes >= maxBytes - 2 * 61_000, 'the bound is used, not thrown away')
  t.equal(stored.indexTotal, stored.bytes, 'the index accounts for exactly what is stored')
  t.ok(stored.rooms.includes('flood-29'), 'the newest room keeps its history')
  t.notOk(stored.rooms.includes('flood-0'), 'the oldest rooms lost theirs')
  t.ok(await metricValue(server.app, 'room_history_evictions_total') >= 25, 'the evictions are counted')
})

t.test('the Redis history bound: oldest rooms go first, then a room\'s own oldest entries; lost or expired streams leave the index', { skip: redisSkipReason() }, async (t) => {
  const redis = await startRedis(t)
  let clock = 1_000_000
  const dropped: Array<[string, number]> = []
  const { bus, inspector } = await redisBus(t, redis.url, {
    historySize: 10,
    historyMaxAgeMs: 60_000,
    historyBounds: { maxRooms: 100, maxBytes: 1000, maxMessageBytes: 1000 },
    onHistoryDropped: (what, count) => { dropped.push([what, count]) },
    now: () => clock
  })
  const text = (n: number) => JSON.stringify({ event: 'e', data: { pad: 'z'.repeat(n), room: 'r' } })
  const publish = async (room: string, size: number) => await bus.publish({ target: 'room', to: room, event: 'e', text: text(size), sequenced: true })

  for (const room of ['a', 'b', 'c']) await publish(room, 250)
  t.same((await storedHistory(inspector)).rooms, ['a', 'b', 'c'])
  await publish('d', 250)
  let stored = await storedHistory(inspector)
  t.same(stored.rooms, ['b', 'c', 'd'], 'over the bytes: the least recently written room went')
  t.ok(stored.bytes <= 1000)
  t.same(dropped, [['room', 1]])
  for (let i = 0; i < 4; i++) await publish('d', 250)
  stored = await storedHistory(inspector)
  t.same(stored.rooms, ['d'], 'then every other room')
  t.equal(await inspector.xlen('keel:hub:history:d'), 3, 'then the room\'s own oldest entries')
  t.equal(stored.indexTotal, stored.bytes)

  // A stream lost behind the index's back (evicted by Redis, deleted by hand) is noticed on its next write.
  await inspector.del('keel:hub:history:d')
  await publish('d', 100)
  stored = await storedHistory(inspector)
  t.equal(stored.indexTotal, stored.bytes, 'the index forgot the lost entries')

  // Rooms unwritten for the history's max age (their streams expired) leave the index.
  await publish('e', 100)
  clock += 60_001
  await publish('f', 100)
  stored = await storedHistory(inspector)
  t.same(await inspector.zrange('keel:hub:history-rooms', 0, -1), ['f'], 'expired rooms are no longer counted')
  t.equal(stored.indexTotal, stored.bytes)
})

/** A Redis bus on its own connections (closed with the test), and a connection to look into Redis. */
async function redisBus (t: Test, url: string, options: Partial<RedisBusOptions>): Promise<{ bus: HubBus, inspector: Redis }> {
  const redis = createRedisClient(url)
  const subscriber = createRedisClient(url, { subscriber: true })
  const inspector = new Redis(url)
  t.teardown(() => { redis.disconnect(); subscriber.disconnect(); inspector.disconnect() })
  await Promise.all([redis.connect(), subscriber.connect()])
  const bus = createRedisBus({ redis, subscriber, instanceId: 'test', historySize: 100, historyMaxAgeMs: 60_000, dedupWindowMs: 1000, onError: (err) => { throw err }, ...options })
  return { bus, inspector }
}
