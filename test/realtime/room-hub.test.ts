// RoomHub without a network: membership, per-room seq, sender exclusion, presence, join policies,
// fan-out targets, slow-consumer policy per room, and the in-process bus, presence and history.

import t from 'tap'
import type { AuthUser } from '../../auth/access-token.ts'
import { AppError } from '../../core/errors.ts'
import {
  DedupWindow, RoomHub, createLocalBus, createLocalPresence, createMemoryHistory, withSeq,
  type HubBus, type HubConnection, type HubPacket, type PacketDraft, type RoomHubOptions, type RoomPolicy, type SlowConsumerPolicy
} from '../../realtime/hub/room-hub.ts'
import { builtInRoomPolicies } from '../../realtime/protocol/rooms.ts'

// A server-written feed room (as a resource would add), ahead of the built-in policies.
const roomPolicies: RoomPolicy[] = [
  { match: 'items', canJoin: () => true, clientPublish: false, presence: false, slowConsumer: 'drop' },
  ...builtInRoomPolicies
]

interface FakeConnection extends HubConnection {
  received: Array<{ event: string, data: Record<string, unknown> }>
  policies: SlowConsumerPolicy[]
  open: boolean
}

let ids = 0
function connection (sub: string): FakeConnection {
  const user: AuthUser = { sub, scopes: [], exp: 0 }
  const conn: FakeConnection = {
    id: `c${++ids}`,
    user,
    rooms: new Set(),
    received: [],
    policies: [],
    open: true,
    deliver (packet: HubPacket, policy: SlowConsumerPolicy) {
      if (!conn.open) return false
      conn.received.push(JSON.parse(packet.text) as { event: string, data: Record<string, unknown> })
      conn.policies.push(policy)
      return true
    }
  }
  return conn
}

/** A hub over the app's room policies with one connection per subject given, all added. */
function hubWith<const S extends readonly string[]> (subs: S, options: Partial<RoomHubOptions> = {}): { hub: RoomHub, conns: { [K in keyof S]: FakeConnection } } {
  const hub = new RoomHub({ policies: roomPolicies, ...options })
  const conns = subs.map((sub) => connection(sub))
  for (const c of conns) hub.add(c)
  return { hub, conns: conns as { [K in keyof S]: FakeConnection } }
}

const events = (conn: FakeConnection, event: string) => conn.received.filter((m) => m.event === event).map((m) => m.data)

t.test('publish: members except the sender get {event, data: {...data, room, seq}}, seq +1 per room', async (t) => {
  const { hub, conns: [a, b, outsider] } = hubWith(['a', 'b', 'c'])
  await hub.join(a, 'lobby')
  await hub.join(b, 'lobby')
  await hub.join(a, 'other')

  t.equal(await hub.publish('lobby', 'room:message', { payload: 1 }, { except: a.id }), 1)
  t.equal(await hub.publish('lobby', 'room:message', { payload: 2 }), 2)
  t.equal(await hub.publish('other', 'room:message', { payload: 3 }), 1, 'each room counts on its own')
  t.same(events(b, 'room:message'), [{ payload: 1, room: 'lobby', seq: 1 }, { payload: 2, room: 'lobby', seq: 2 }])
  t.same(events(a, 'room:message'), [{ payload: 2, room: 'lobby', seq: 2 }, { payload: 3, room: 'other', seq: 1 }])
  t.same(outsider.received, [])
  t.equal(await hub.publish('lobby', 'typing', { user: 'a' }, { transient: true }), undefined, 'transient: no seq')
  t.same(events(b, 'typing'), [{ user: 'a', room: 'lobby' }])
})

t.test('each message is serialized once and its frame slot shared by every recipient', async (t) => {
  const packets = new Set<HubPacket>()
  const hub = new RoomHub({ policies: roomPolicies })
  const members = Array.from({ length: 5 }, (_, i) => {
    const c = connection(`u${i}`)
    const deliver = c.deliver
    c.deliver = (packet, policy) => { if (packet.event === 'room:message') packets.add(packet); return deliver(packet, policy) }
    return c
  })
  for (const c of members) { hub.add(c); await hub.join(c, 'fan') }
  await hub.publish('fan', 'room:message', { payload: 'x' })
  t.equal(packets.size, 1, 'one packet object for all five recipients')
})

t.test('join policies (realtime/protocol/rooms.ts, and a feed room added before them)', async (t) => {
  const hub = new RoomHub({ policies: roomPolicies })
  const alice = connection('alice')
  hub.add(alice)
  t.match(await hub.join(alice, 'items'), { room: 'items', joined: true }, 'items: any authenticated user')
  t.match(await hub.join(alice, 'user:alice'), { joined: true }, 'user:<sub>: that subject')
  t.match(await hub.join(alice, 'lobby-1.a_b'), { joined: true }, 'plain names: open rooms')
  t.match(await hub.join(alice, 'lobby-1.a_b'), { joined: false }, 'joining again reports joined: false')
  await t.rejects(hub.join(alice, 'user:bob'), { code: 'FORBIDDEN', message: 'you may not join room "user:bob"' })
  await t.rejects(hub.join(alice, 'team:red'), { code: 'FORBIDDEN' }, 'an undeclared prefix is closed')
  await t.rejects(hub.join(alice, 'has space'), { code: 'FORBIDDEN', message: /\(invalid name\)/ }, 'invalid names are never echoed')
  await t.rejects(hub.join(alice, 'x'.repeat(65)), AppError, 'open room names stop at 64 characters')
  t.notOk(hub.canClientPublish(alice, 'items'), 'clients do not write to items')
  t.notOk(hub.canClientPublish(alice, 'user:alice'))
  t.ok(hub.canClientPublish(alice, 'lobby-1.a_b'))
  t.notOk(hub.canClientPublish(alice, 'elsewhere'), 'members only')
})

t.test('a connection may be in at most maxRoomsPerConnection rooms', async (t) => {
  const hub = new RoomHub({ policies: roomPolicies, maxRoomsPerConnection: 2 })
  const c = connection('c')
  hub.add(c)
  await hub.join(c, 'r1')
  await hub.join(c, 'r2')
  await t.rejects(hub.join(c, 'r3'), { code: 'FORBIDDEN', message: /at most 2 rooms/ })
  await hub.leave(c, 'r1')
  t.match(await hub.join(c, 'r3'), { joined: true })
})

t.test('presence: one entry per user however many connections, pushes on first join and last leave', async (t) => {
  const { hub, conns: [alice, bob1, bob2] } = hubWith(['alice', 'bob', 'bob'])
  await hub.join(alice, 'team')
  await hub.join(bob1, 'team')
  await hub.join(bob2, 'team')
  t.same(events(alice, 'presence:join'), [{ user: 'bob', count: 2, room: 'team' }])
  t.same(events(bob1, 'presence:join'), [], 'the joining connection is not told')
  t.same(events(bob2, 'presence:join'), [], 'nor is a second connection of a present user')
  t.same(await hub.presence(alice.user, 'team'), { room: 'team', users: ['alice', 'bob'], count: 2 })

  await hub.remove(bob1)
  t.same(events(alice, 'presence:leave'), [], 'bob is still there through bob2')
  await hub.remove(bob2)
  t.same(events(alice, 'presence:leave'), [{ user: 'bob', count: 1, room: 'team' }])
  t.equal(hub.connectionsOf('bob'), 0)
  t.equal(hub.size, 1)
  await hub.remove(bob2)
  t.equal(hub.size, 1, 'removing twice is harmless')

  await t.rejects(hub.presence(alice.user, 'items'), { code: 'FORBIDDEN', message: /does not track presence/ })
  await t.rejects(hub.presence(alice.user, 'user:bob'), { code: 'FORBIDDEN' })
  await hub.join(alice, 'items')
  t.same(events(alice, 'presence:join').length, 1, 'rooms without presence push none')
})

t.test('sendToUser reaches every connection of that user; broadcast reaches everyone', async (t) => {
  const delivered: Array<[string, number]> = []
  const { hub, conns: [a1, a2, b] } = hubWith(['a', 'a', 'b'], { onDelivered: (packet, count) => delivered.push([packet.event, count]) })
  hub.add(a1)
  t.equal(hub.connectionsOf('a'), 2, 'adding twice counts once')
  await hub.sendToUser('a', 'notice', { n: 1 })
  await hub.sendToUser('nobody', 'notice', { n: 2 })
  t.same(events(a1, 'notice'), [{ n: 1 }])
  t.same(events(a2, 'notice'), [{ n: 1 }])
  t.same(events(b, 'notice'), [])
  await hub.broadcast('maintenance', { at: 'noon' })
  for (const c of [a1, a2, b]) t.same(events(c, 'maintenance'), [{ at: 'noon' }])
  b.open = false
  await hub.broadcast('maintenance', { at: 'one' })
  t.same(delivered, [['notice', 2], ['notice', 0], ['maintenance', 3], ['maintenance', 2]], 'onDelivered counts recipients that took it')
})

t.test('the slow-consumer policy comes from the room, else the hub default', async (t) => {
  const policies: RoomPolicy[] = [
    { match: 'feed', canJoin: () => true, clientPublish: false, presence: false, slowConsumer: 'drop' },
    { match: /^chat-/, canJoin: () => true, clientPublish: true, presence: false }
  ]
  const hub = new RoomHub({ policies, slowConsumer: 'close' })
  const c = connection('c')
  hub.add(c)
  await hub.join(c, 'feed')
  await hub.join(c, 'chat-1')
  await hub.publish('feed', 'e', {})
  await hub.publish('chat-1', 'e', {})
  await hub.sendToUser('c', 'e', {})
  t.same(c.policies, ['drop', 'close', 'close'])
})

t.test('server code may publish to a room with no members (seq still counts)', async (t) => {
  const hub = new RoomHub({ policies: roomPolicies })
  t.equal(await hub.publish('items', 'items:changed', { id: '1', op: 'created' }), 1)
  t.equal(await hub.publish('items', 'items:changed', { id: '1', op: 'deleted' }), 2)
})

t.test('the bus is the only way packets reach connections (the seam a Redis bus replaces)', async (t) => {
  const local = createLocalBus()
  const seen: PacketDraft[] = []
  const watched: string[] = []
  const bus: HubBus = {
    ...local,
    subscribe: (fn) => local.subscribe((packet) => fn(JSON.parse(JSON.stringify(packet)) as HubPacket)),
    publish: async (draft) => { seen.push(draft); return await local.publish(draft) },
    watch: async (room) => { watched.push(`+${room}`) },
    unwatch: (room) => { watched.push(`-${room}`) }
  }
  const hub = new RoomHub({ policies: roomPolicies, bus })
  const [a, b] = [connection('a'), connection('b')]
  hub.add(a)
  hub.add(b)
  await hub.join(a, 'r')
  await hub.join(b, 'r')
  await hub.publish('r', 'room:message', { payload: 1 }, { except: a.id })
  t.same(events(b, 'room:message'), [{ payload: 1, room: 'r', seq: 1 }], 'a packet that went through serialization is delivered the same')
  t.same(events(a, 'room:message'), [], 'the sender is excluded by connection id, which works across instances')
  t.same(seen.map((p) => [p.target, p.to, p.event, p.sequenced]), [
    ['room', 'r', 'presence:join', false], ['room', 'r', 'presence:join', false], ['room', 'r', 'room:message', true]
  ])
  await hub.leave(a, 'r')
  await hub.leave(b, 'r')
  t.same(watched, ['+r', '-r'], 'the bus hears when this instance gains and loses members in a room')
  await hub.close()
})

const draft = (room: string, extra: Partial<PacketDraft> = {}): PacketDraft =>
  ({ target: 'room', to: room, event: 'e', text: `{"event":"e","data":{"room":"${room}"}}`, sequenced: true, ...extra })

t.test('createLocalBus keeps sequences for the most recently active rooms', async (t) => {
  const bus = createLocalBus({ maxRooms: 2 })
  t.equal(await bus.publish(draft('a')), 1)
  t.equal(await bus.publish(draft('b')), 1)
  t.equal(await bus.publish(draft('a')), 2)
  t.equal(await bus.publish(draft('c')), 1, 'evicts b, the least recently active')
  t.equal(await bus.publish(draft('a')), 3)
  t.equal(await bus.publish(draft('b')), 1)
  await bus.watch('a')
  for (const room of ['x', 'y', 'z']) await bus.publish(draft(room))
  t.equal(await bus.publish(draft('a')), 4, 'a room with members here keeps its counter, however idle')
  bus.unwatch('a')
  t.equal(await bus.lastSeq('nowhere'), 0)
  t.equal(withSeq('{"event":"e","data":{"room":"a"}}', 7), '{"event":"e","data":{"room":"a","seq":7}}')
})

t.test('a publish repeated with the same dedup key within the window is sent once and gets the first seq', async (t) => {
  const { hub, conns: [a, b] } = hubWith(['a', 'b'])
  await hub.join(a, 'chat-1')
  await hub.join(b, 'chat-1')
  t.equal(await hub.publish('chat-1', 'room:message', { n: 1 }, { except: a.id, dedupKey: 'a\nm1' }), 1)
  t.equal(await hub.publish('chat-1', 'room:message', { n: 1 }, { except: a.id, dedupKey: 'a\nm1' }), 1, 'the retry is acknowledged with the same seq')
  t.equal(await hub.publish('chat-1', 'room:message', { n: 2 }, { except: a.id, dedupKey: 'a\nm2' }), 2)
  t.equal(await hub.publish('chat-1', 'room:message', { n: 1 }, { except: b.id, dedupKey: 'b\nm1' }), 3, 'another user\'s id is another message')
  t.same(events(b, 'room:message').map((m) => m.n), [1, 2], 'delivered once')

  let clock = 0
  const window = new DedupWindow(1000, 2, () => clock)
  window.remember('k', Promise.resolve(4))
  t.equal(await window.get('k'), 4)
  clock = 1000
  t.equal(window.get('k'), undefined, 'forgotten once the window has passed')
  window.remember('x', Promise.reject(new Error('redis down')))
  await Promise.resolve()
  t.equal(window.get('x'), undefined, 'a failed publish is forgotten, so the retry goes through')
})

t.test('join with since: the missed messages in order, then live ones, each seq once, even when live ones arrive during the replay', async (t) => {
  const history = createMemoryHistory({ perRoom: 10, maxAgeMs: 60_000 })
  const local = createLocalBus({ history })
  // Live messages published while the history is being read must wait behind the replay.
  const bus: HubBus = {
    ...local,
    since: async (room, seq) => {
      const missed = await local.since(room, seq)
      await hub.publish(room, 'room:message', { n: 'live' })
      return missed
    }
  }
  const hub = new RoomHub({ policies: roomPolicies, bus })
  const [a, b] = [connection('a'), connection('b')]
  hub.add(a)
  hub.add(b)
  for (let n = 1; n <= 5; n++) await hub.publish('chat-1', 'room:message', { n })
  const result = await hub.join(b, 'chat-1', { since: 2 })
  t.same(result, { room: 'chat-1', joined: true, seq: 6, recovered: true })
  t.same(events(b, 'room:message').map((m) => m.seq), [3, 4, 5, 6], 'replayed 3–5, then the live 6')
  await hub.publish('chat-1', 'room:message', { n: 7 })
  t.same(events(b, 'room:message').map((m) => m.seq), [3, 4, 5, 6, 7])

  await hub.join(a, 'chat-1')
  const again = await hub.join(b, 'chat-1', { since: 7 })
  t.same(again, { room: 'chat-1', joined: false, seq: 8, recovered: true }, 'a member may resume too')
  t.same(events(b, 'room:message').map((m) => m.seq), [3, 4, 5, 6, 7, 8])
  const fresh = await hub.join(a, 'chat-1')
  t.same(fresh, { room: 'chat-1', joined: false, seq: 8 }, 'without since: no replay, no recovered')
})

t.test('join with since beyond the history says recovered: false and replays nothing', async (t) => {
  const history = createMemoryHistory({ perRoom: 3, maxAgeMs: 60_000 })
  const hub = new RoomHub({ policies: roomPolicies, bus: createLocalBus({ history }) })
  const b = connection('b')
  hub.add(b)
  for (let n = 1; n <= 10; n++) await hub.publish('chat-1', 'room:message', { n })
  t.same(await hub.join(b, 'chat-1', { since: 2 }), { room: 'chat-1', joined: true, seq: 10, recovered: false })
  t.same(events(b, 'room:message'), [])
  const noHistory = new RoomHub({ policies: roomPolicies })
  const c = connection('c')
  noHistory.add(c)
  await noHistory.publish('chat-1', 'room:message', {})
  t.same(await noHistory.join(c, 'chat-1', { since: 1 }), { room: 'chat-1', joined: true, seq: 1, recovered: true }, 'up to date needs no history')
})

t.test('createLocalPresence counts connections per user and users per room', async (t) => {
  const presence = createLocalPresence()
  t.same(await presence.add('r', 'u'), { changed: true, count: 1 })
  t.same(await presence.add('r', 'u'), { changed: false, count: 1 })
  t.same(await presence.add('r', 'v'), { changed: true, count: 2 })
  t.same(await presence.remove('r', 'u'), { changed: false, count: 2 })
  t.same(await presence.remove('r', 'u'), { changed: true, count: 1 })
  t.same(await presence.remove('r', 'u'), { changed: false, count: 1 }, 'removing an absent user changes nothing')
  t.same(await presence.remove('nowhere', 'u'), { changed: false, count: 0 })
  t.same(await presence.list('r'), ['v'])
  await presence.remove('r', 'v')
  t.same(await presence.list('r'), [])
})

t.test('history: replay after a seq, and a gap when it no longer reaches back', async (t) => {
  let clock = 0
  const history = createMemoryHistory({ perRoom: 3, maxAgeMs: 1000, maxRooms: 2, now: () => clock })
  const hub = new RoomHub({ policies: roomPolicies, bus: createLocalBus({ history }) })
  for (let i = 1; i <= 5; i++) await hub.publish('r', 'room:message', { payload: i })
  t.same((await hub.replay('r', 3))!.map((p) => p.seq), [4, 5])
  t.same((await hub.replay('r', 2))!.map((p) => p.seq), [3, 4, 5])
  t.equal(await hub.replay('r', 1), undefined, 'seq 2 is gone: the client must resynchronize')
  t.same(await hub.replay('r', 5), [], 'up to date')
  t.equal(await hub.replay('r', 9), undefined, 'a seq from the future (the room restarted) is a gap')
  t.same(await hub.replay('empty', 0), [])
  await hub.publish('r', 'typing', {}, { transient: true })
  t.same((await hub.replay('r', 4))!.map((p) => p.seq), [5], 'transient messages are not kept')
  clock = 1001
  t.equal(await hub.replay('r', 4), undefined, 'older than maxAgeMs: not replayed')
  await hub.publish('s', 'room:message', {})
  await hub.publish('u', 'room:message', {})
  t.equal(await hub.replay('r', 0), undefined, 'r was evicted (at most 2 rooms kept) while its seq went on: a gap')
  history.append('s', { target: 'room', to: 's', event: 'e', seq: 1, text: '{}' })
  t.same(history.since('s', 0)!.map((p) => p.seq), [1], 'a sequence that restarts empties the room\'s history')

  const dropped: Array<[string, number]> = []
  const small = createMemoryHistory({ perRoom: 10, maxAgeMs: 1000, maxBytes: 10, maxMessageBytes: 8, onDropped: (what, n) => { dropped.push([what, n]) } })
  const entry = (room: string, seq: number) => ({ target: 'room' as const, to: room, event: 'e', seq, text: 'xxxx' })
  small.append('a', entry('a', 1))
  small.append('a', entry('a', 2))
  small.append('b', entry('b', 1))
  t.same(small.since('b', 0)!.map((p) => p.seq), [1])
  t.same(small.since('a', 0), [], 'over the character budget: the least recently written room was forgotten (the bus reports the gap against its counter)')
  small.append('b', entry('b', 2))
  small.append('b', entry('b', 3))
  t.same(small.since('b', 1)!.map((p) => p.seq), [2, 3], 'then the room\'s own oldest entries')
  t.equal(small.since('b', 0), undefined)
  small.append('b', { ...entry('b', 4), text: 'é'.repeat(5) })
  t.same(small.since('b', 3), [], 'a message over maxMessageBytes in UTF-8 (10 bytes in 5 characters) is not kept')
  t.same(dropped, [['room', 1], ['message', 1]], 'each room evicted and each message not kept is reported')
})
