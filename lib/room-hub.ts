// The real-time hub: rooms with membership and a per-room monotonic `seq`, presence, and fan-out to
// a room (except the sender), to one user's connections, or to everyone. Framework-free: transports
// (WebSocket, SSE) plug in as `HubConnection`s. Everything that must be shared across instances
// goes through three seams — `HubBus` (sequence numbers and delivery), `PresenceStore`, `RoomHistory`
// — whose in-process versions live here; a Redis-backed set replaces them without touching the hub.
// Each message is serialized once (`HubPacket.text`), whatever the number of recipients.

import type { AuthUser } from './access-token.ts'
import { AppError, ErrorCode } from './errors.ts'

/** What happens to a recipient whose send buffer is over its bound: closed (1008), or the message skipped. */
export type SlowConsumerPolicy = 'close' | 'drop'

/**
 * Who may do what in the rooms whose name matches. The hub uses the first policy that matches;
 * a room no policy matches cannot be joined (closed by default).
 */
export interface RoomPolicy {
  /** An exact room name, or a RegExp the name must match. */
  readonly match: string | RegExp
  readonly canJoin: (user: AuthUser, room: string) => boolean
  /** Whether members may publish from the client (`room:publish`); server code always may. */
  readonly clientPublish: boolean
  /** Push `presence:join`/`presence:leave` and answer `presence:list` (off for feeds with many watchers). */
  readonly presence: boolean
  /** Overrides the hub's default slow-consumer policy for these rooms. */
  readonly slowConsumer?: SlowConsumerPolicy
}

/** Room names: printable ASCII without spaces, quotes or backslashes (safe in logs and messages). */
export const ROOM_NAME_PATTERN = '^[!#-\\[\\]-~]{1,200}$'
const ROOM_NAME = new RegExp(ROOM_NAME_PATTERN)

/** One message on its way to recipients: serialized once, shared by every recipient and transport. */
export interface HubPacket {
  readonly target: 'room' | 'user' | 'all'
  /** The room name (`room`) or the user's subject (`user`); empty for `all`. */
  readonly to: string
  /** A connection id that must not receive it (the sender). */
  readonly except?: string
  readonly event: string
  /** The room's sequence number; absent for transient messages (presence, typing…). */
  readonly seq?: number
  /** The JSON envelope `{"event","data"}` as every recipient receives it. */
  readonly text: string
  /** The WebSocket frame of `text`, built by the first WebSocket recipient and reused by the rest. */
  wsFrame?: Buffer
}

/** A transport's connection as the hub sees it. `rooms` is maintained by the hub. */
export interface HubConnection {
  readonly id: string
  readonly user: AuthUser
  readonly rooms: Set<string>
  /** Hands a packet to the transport; false when it was not sent (closed, or dropped as a slow consumer). */
  deliver: (packet: HubPacket, policy: SlowConsumerPolicy) => boolean
}

/**
 * Moves packets between instances. In process: a counter per room and a direct call. With Redis:
 * INCR for `nextSeq`, PUBLISH for `publish`, and a subscription that calls `deliver` on every
 * instance (this one included) — the hub never delivers a packet except through the bus.
 */
export interface HubBus {
  /** The room's next sequence number, shared by every instance. */
  nextSeq: (room: string) => Promise<number>
  publish: (packet: HubPacket) => Promise<void>
  /** Called once by the hub with the function every packet must reach on this instance. */
  subscribe: (deliver: (packet: HubPacket) => void) => void
  /** This instance now has members in `room` (a Redis bus subscribes to the room's channel). */
  watch: (room: string) => void
  /** This instance has no members left in `room`. */
  unwatch: (room: string) => void
  close: () => Promise<void>
}

export interface PresenceChange {
  /** True when the user's first connection joined, or its last one left: a presence event is due. */
  changed: boolean
  /** Distinct users in the room afterwards. */
  count: number
}

/** Which users are in which room, counting each user's connections (a user with two tabs is one user). */
export interface PresenceStore {
  add: (room: string, user: string) => Promise<PresenceChange>
  remove: (room: string, user: string) => Promise<PresenceChange>
  list: (room: string) => Promise<string[]>
}

/** Recent sequenced packets per room, for clients that reconnect (SSE `Last-Event-ID`). */
export interface RoomHistory {
  append: (room: string, packet: HubPacket) => Promise<void>
  /** Packets after `seq`, oldest first; undefined when the history does not reach back that far. */
  since: (room: string, seq: number) => Promise<HubPacket[] | undefined>
}

export interface RoomHubOptions {
  policies: readonly RoomPolicy[]
  /** For rooms whose policy does not say, and for messages to users or to everyone. Default `close`. */
  slowConsumer?: SlowConsumerPolicy
  /** Rooms one connection may be in at once (bounds a client's footprint). Default unlimited. */
  maxRoomsPerConnection?: number
  bus?: HubBus
  presence?: PresenceStore
  history?: RoomHistory
  /** After each fan-out on this instance: how many local connections took the packet (metrics). */
  onDelivered?: (packet: HubPacket, count: number) => void
}

export interface JoinResult {
  room: string
  /** False when the connection was already a member (joining again is harmless). */
  joined: boolean
}

export interface PresenceSnapshot {
  room: string
  users: string[]
  count: number
}

export interface PublishOptions {
  /** A connection that must not receive the message (the sender). */
  except?: string
  /** Not numbered and not kept in history: for presence, typing indicators and the like. */
  transient?: boolean
}

interface LocalRoom {
  readonly policy: RoomPolicy | undefined
  readonly slowConsumer: SlowConsumerPolicy
  readonly members: Set<HubConnection>
}

const EMPTY: ReadonlySet<HubConnection> = new Set()

export class RoomHub {
  readonly #policies: readonly RoomPolicy[]
  readonly #slowConsumer: SlowConsumerPolicy
  readonly #maxRooms: number
  readonly #bus: HubBus
  readonly #presence: PresenceStore
  readonly #history: RoomHistory | undefined
  readonly #onDelivered: ((packet: HubPacket, count: number) => void) | undefined
  readonly #rooms = new Map<string, LocalRoom>()
  readonly #byUser = new Map<string, Set<HubConnection>>()
  #connections = 0

  constructor (options: RoomHubOptions) {
    this.#policies = options.policies
    this.#slowConsumer = options.slowConsumer ?? 'close'
    this.#maxRooms = options.maxRoomsPerConnection ?? Infinity
    this.#bus = options.bus ?? createLocalBus()
    this.#presence = options.presence ?? createLocalPresence()
    this.#history = options.history
    this.#onDelivered = options.onDelivered
    this.#bus.subscribe((packet) => this.#deliver(packet))
  }

  /** Open connections on this instance. */
  get size (): number {
    return this.#connections
  }

  /** Open connections of one user on this instance. */
  connectionsOf (sub: string): number {
    return this.#byUser.get(sub)?.size ?? 0
  }

  add (conn: HubConnection): void {
    let own = this.#byUser.get(conn.user.sub)
    if (own === undefined) this.#byUser.set(conn.user.sub, own = new Set())
    if (own.has(conn)) return
    own.add(conn)
    this.#connections++
  }

  /** Removes a closed connection: it leaves every room (presence follows) and stops receiving. */
  async remove (conn: HubConnection): Promise<void> {
    const own = this.#byUser.get(conn.user.sub)
    if (own?.delete(conn) !== true) return
    this.#connections--
    if (own.size === 0) this.#byUser.delete(conn.user.sub)
    for (const room of [...conn.rooms]) await this.leave(conn, room)
  }

  policyFor (room: string): RoomPolicy | undefined {
    for (const policy of this.#policies) {
      if (typeof policy.match === 'string' ? policy.match === room : policy.match.test(room)) return policy
    }
    return undefined
  }

  canJoin (user: AuthUser, room: string): boolean {
    if (!ROOM_NAME.test(room)) return false
    return this.policyFor(room)?.canJoin(user, room) === true
  }

  /** Whether a connection may publish to `room` from the client: a member, in a room whose policy allows it. */
  canClientPublish (member: { readonly rooms: ReadonlySet<string> }, room: string): boolean {
    return member.rooms.has(room) && this.#rooms.get(room)?.policy?.clientPublish === true
  }

  /** Joins `room` when its policy lets the user in; throws a FORBIDDEN `AppError` otherwise. */
  async join (conn: HubConnection, room: string): Promise<JoinResult> {
    if (!this.canJoin(conn.user, room)) throw new AppError(ErrorCode.FORBIDDEN, `you may not join room "${safeName(room)}"`)
    if (conn.rooms.has(room)) return { room, joined: false }
    if (conn.rooms.size >= this.#maxRooms) {
      throw new AppError(ErrorCode.FORBIDDEN, `a connection may be in at most ${this.#maxRooms} rooms; leave one first`)
    }
    let local = this.#rooms.get(room)
    if (local === undefined) {
      const policy = this.policyFor(room)
      local = { policy, slowConsumer: policy?.slowConsumer ?? this.#slowConsumer, members: new Set() }
      this.#rooms.set(room, local)
      this.#bus.watch(room)
    }
    local.members.add(conn)
    conn.rooms.add(room)
    if (local.policy?.presence === true) {
      const change = await this.#presence.add(room, conn.user.sub)
      if (change.changed) await this.publish(room, 'presence:join', { user: conn.user.sub, count: change.count }, { except: conn.id, transient: true })
    }
    return { room, joined: true }
  }

  /** Leaves `room`; false when the connection was not a member. */
  async leave (conn: HubConnection, room: string): Promise<boolean> {
    if (!conn.rooms.delete(room)) return false
    const local = this.#rooms.get(room)
    if (local === undefined) return true
    local.members.delete(conn)
    if (local.members.size === 0) {
      this.#rooms.delete(room)
      this.#bus.unwatch(room)
    }
    if (local.policy?.presence === true) {
      const change = await this.#presence.remove(room, conn.user.sub)
      if (change.changed) await this.publish(room, 'presence:leave', { user: conn.user.sub, count: change.count }, { transient: true })
    }
    return true
  }

  /**
   * Sends `{event, data: {...data, room, seq}}` to the room's members (all instances). Returns the
   * message's `seq`, or undefined for a transient message. Server code may publish to any room.
   */
  async publish (room: string, event: string, data: object, options: PublishOptions = {}): Promise<number | undefined> {
    const seq = options.transient === true ? undefined : await this.#bus.nextSeq(room)
    const body = seq === undefined ? { ...data, room } : { ...data, room, seq }
    const packet: HubPacket = { target: 'room', to: room, except: options.except, event, seq, text: JSON.stringify({ event, data: body }) }
    if (seq !== undefined && this.#history !== undefined) await this.#history.append(room, packet)
    await this.#bus.publish(packet)
    return seq
  }

  /** Sends to every connection of one user (all instances). */
  async sendToUser (sub: string, event: string, data: unknown): Promise<void> {
    await this.#bus.publish({ target: 'user', to: sub, event, text: JSON.stringify({ event, data }) })
  }

  /** Sends to every connection (all instances). */
  async broadcast (event: string, data: unknown): Promise<void> {
    await this.#bus.publish({ target: 'all', to: '', event, text: JSON.stringify({ event, data }) })
  }

  /** Who is in `room`, for a user allowed to join it; FORBIDDEN otherwise or when the room has no presence. */
  async presence (user: AuthUser, room: string): Promise<PresenceSnapshot> {
    if (!this.canJoin(user, room)) throw new AppError(ErrorCode.FORBIDDEN, `you may not see who is in room "${safeName(room)}"`)
    if (this.policyFor(room)?.presence !== true) throw new AppError(ErrorCode.FORBIDDEN, `room "${safeName(room)}" does not track presence`)
    const users = await this.#presence.list(room)
    return { room, users, count: users.length }
  }

  /** Sequenced packets of `room` after `seq` (undefined without history or when it does not reach back). */
  async replay (room: string, seq: number): Promise<HubPacket[] | undefined> {
    return await this.#history?.since(room, seq)
  }

  async close (): Promise<void> {
    await this.#bus.close()
  }

  #deliver (packet: HubPacket): void {
    let count = 0
    if (packet.target === 'room') {
      const local = this.#rooms.get(packet.to)
      if (local !== undefined) {
        for (const conn of local.members) if (conn.id !== packet.except && conn.deliver(packet, local.slowConsumer)) count++
      }
    } else if (packet.target === 'user') {
      for (const conn of this.#byUser.get(packet.to) ?? EMPTY) if (conn.deliver(packet, this.#slowConsumer)) count++
    } else {
      for (const own of this.#byUser.values()) {
        for (const conn of own) if (conn.id !== packet.except && conn.deliver(packet, this.#slowConsumer)) count++
      }
    }
    this.#onDelivered?.(packet, count)
  }
}

/** Room names come from clients: never echo more than a short, quote-free prefix. */
function safeName (room: string): string {
  return ROOM_NAME.test(room) ? room.slice(0, 64) : '(invalid name)'
}

/**
 * The in-process bus. Sequence counters are kept for the `maxRooms` most recently active rooms; a
 * room idle while that many others were active starts again at 1 (its members long gone).
 */
export function createLocalBus (maxRooms = 10_000): HubBus {
  const seqs = new Map<string, number>()
  let deliver: (packet: HubPacket) => void = () => {}
  return {
    async nextSeq (room) {
      const seq = (seqs.get(room) ?? 0) + 1
      // Re-insert so the Map's order is least recently used first.
      seqs.delete(room)
      seqs.set(room, seq)
      if (seqs.size > maxRooms) seqs.delete(seqs.keys().next().value!)
      return seq
    },
    async publish (packet) { deliver(packet) },
    subscribe (fn) { deliver = fn },
    watch () {},
    unwatch () {},
    async close () {}
  }
}

export function createLocalPresence (): PresenceStore {
  const rooms = new Map<string, Map<string, number>>()
  return {
    async add (room, user) {
      let users = rooms.get(room)
      if (users === undefined) rooms.set(room, users = new Map())
      const n = users.get(user) ?? 0
      users.set(user, n + 1)
      return { changed: n === 0, count: users.size }
    },
    async remove (room, user) {
      const users = rooms.get(room)
      const n = users?.get(user)
      if (users === undefined || n === undefined) return { changed: false, count: users?.size ?? 0 }
      if (n > 1) {
        users.set(user, n - 1)
        return { changed: false, count: users.size }
      }
      users.delete(user)
      if (users.size === 0) rooms.delete(room)
      return { changed: true, count: users.size }
    },
    async list (room) {
      return [...rooms.get(room)?.keys() ?? []]
    }
  }
}

/**
 * In-process history: the last `perRoom` sequenced packets of at most `maxRooms` rooms (least
 * recently written evicted first). A sequence that restarts empties the room's history.
 */
export function createMemoryHistory (perRoom = 100, maxRooms = 1000): RoomHistory {
  const rooms = new Map<string, HubPacket[]>()
  return {
    async append (room, packet) {
      let list = rooms.get(room)
      rooms.delete(room)
      if (list === undefined || (list.length > 0 && list[list.length - 1]!.seq! >= packet.seq!)) list = []
      list.push(packet)
      if (list.length > perRoom) list.shift()
      rooms.set(room, list)
      if (rooms.size > maxRooms) rooms.delete(rooms.keys().next().value!)
    },
    async since (room, seq) {
      const list = rooms.get(room) ?? []
      const last = list.length === 0 ? 0 : list[list.length - 1]!.seq!
      if (seq >= last) return seq === last ? [] : undefined
      const first = list[0]!.seq!
      // The client's next message (seq + 1) must still be here.
      if (seq + 1 < first) return undefined
      return list.filter((p) => p.seq! > seq)
    }
  }
}
