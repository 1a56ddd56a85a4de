// The real-time hub: rooms with membership and a per-room monotonic `seq`, presence, and fan-out to
// a room (except the sender), to one user's connections, or to everyone. Framework-free: transports
// (WebSocket, SSE) plug in as `HubConnection`s. Everything that must be shared across instances
// goes through two seams — `HubBus` (sequence numbers, history, publish dedup and delivery) and
// `PresenceStore` — whose in-process versions live here; realtime/hub/redis-bus.ts and realtime/hub/redis-presence.ts
// replace them without touching the hub. Each message is serialized once (`HubPacket.text`), whatever
// the number of recipients. A join with `since` replays what the connection missed, gating live
// packets meanwhile so none is lost or doubled at the seam.

import type { AuthUser } from '../../auth/access-token.ts'
import { AppError, ErrorCode } from '../../core/errors.ts'

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

/** A packet before the bus has numbered it: `text` lacks the `seq` when `sequenced` (see `withSeq`). */
export interface PacketDraft {
  readonly target: HubPacket['target']
  readonly to: string
  readonly except?: string
  readonly event: string
  /** The envelope; for a sequenced room message, `{"event":…,"data":{…,"room":…}}` without its seq. */
  readonly text: string
  /** Numbered with the room's next seq and kept in its history. */
  readonly sequenced: boolean
  /**
   * Identifies a client's publish (user + envelope id): a repeat within the bus's dedup window is
   * not sent again, and `publish` resolves with the seq the first one got.
   */
  readonly dedupKey?: string
}

/** The envelope of a sequenced draft with its `seq` as the data's last member. */
export function withSeq (text: string, seq: number): string {
  return `${text.slice(0, -2)},"seq":${seq}}}`
}

/**
 * Moves packets between instances. In process: a counter per room and a direct call. With Redis: one
 * script numbers, records and publishes each packet, and a subscription delivers it on every instance
 * (this one included) — the hub never delivers a packet except through the bus.
 */
export interface HubBus {
  /** Numbers (when sequenced), records and delivers a packet; resolves with its seq (undefined when transient). */
  publish: (draft: PacketDraft) => Promise<number | undefined>
  /** The room's latest seq (0 before its first message). */
  lastSeq: (room: string) => Promise<number>
  /** Sequenced packets after `seq`, oldest first; undefined when the history does not reach back that far. */
  since: (room: string, seq: number) => Promise<HubPacket[] | undefined>
  /** Called once by the hub with the function every packet must reach on this instance. */
  subscribe: (deliver: (packet: HubPacket) => void) => void
  /** This instance now has members in `room`: resolves once packets published from now on will arrive. */
  watch: (room: string) => Promise<void>
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
  /**
   * Called once by the hub: a shared store reports users whose every entry expired (their instance
   * died without removing them), so the hub can announce that they left.
   */
  onExpired?: (fn: (room: string, users: string[], count: number) => void) => void
  close?: () => Promise<void>
}

/** Recent sequenced packets per room (the in-process bus's history). */
export interface RoomHistory {
  append: (room: string, packet: HubPacket) => void
  /** Packets after `seq`, oldest first; undefined when the history does not reach back that far. */
  since: (room: string, seq: number) => HubPacket[] | undefined
}

export interface RoomHubOptions {
  policies: readonly RoomPolicy[]
  /** For rooms whose policy does not say, and for messages to users or to everyone. Default `close`. */
  slowConsumer?: SlowConsumerPolicy
  /** Rooms one connection may be in at once (bounds a client's footprint). Default unlimited. */
  maxRoomsPerConnection?: number
  bus?: HubBus
  presence?: PresenceStore
  /** After each fan-out on this instance: how many local connections took the packet (metrics). */
  onDelivered?: (packet: HubPacket, count: number) => void
  /** After each join with `since`: how many packets were replayed, or undefined when the history fell short. */
  onReplay?: (room: string, replayed: number | undefined) => void
  /** A presence update that failed after the membership changed (logged; membership stands). */
  onError?: (err: unknown, what: string) => void
}

export interface JoinOptions {
  /** The last seq the client saw in this room: what came after it is replayed before live messages. */
  since?: number
}

export interface JoinResult {
  room: string
  /** False when the connection was already a member (joining again is harmless). */
  joined: boolean
  /** The room's latest seq when the join completed (0 before its first message). */
  seq: number
  /**
   * Only with `since`: true when every message after it was replayed (in order, before this result);
   * false when the history no longer reaches back — the client must refetch the room's state.
   */
  recovered?: boolean
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
  /**
   * Who publishes and their id for this message (`room:publish`: user + envelope id): a repeat within
   * the bus's window (a client retrying after a lost ack) is not sent again and gets the first seq.
   */
  dedupKey?: string
}

interface LocalRoom {
  readonly policy: RoomPolicy | undefined
  readonly slowConsumer: SlowConsumerPolicy
  readonly members: Set<HubConnection>
  /** The bus's `watch` of this room: settled once its packets reach this instance. */
  watching: Promise<void> | undefined
}

const EMPTY: ReadonlySet<HubConnection> = new Set()

export class RoomHub {
  readonly #policies: readonly RoomPolicy[]
  readonly #slowConsumer: SlowConsumerPolicy
  readonly #maxRooms: number
  readonly #bus: HubBus
  readonly #presence: PresenceStore
  readonly #onDelivered: ((packet: HubPacket, count: number) => void) | undefined
  readonly #onReplay: ((room: string, replayed: number | undefined) => void) | undefined
  readonly #onError: (err: unknown, what: string) => void
  readonly #rooms = new Map<string, LocalRoom>()
  readonly #byUser = new Map<string, Set<HubConnection>>()
  /** Connections being replayed to: their live packets of that room wait here (see `join`). */
  readonly #gates = new Map<HubConnection, Map<string, HubPacket[]>>()
  #connections = 0

  constructor (options: RoomHubOptions) {
    this.#policies = options.policies
    this.#slowConsumer = options.slowConsumer ?? 'close'
    this.#maxRooms = options.maxRoomsPerConnection ?? Infinity
    this.#bus = options.bus ?? createLocalBus()
    this.#presence = options.presence ?? createLocalPresence()
    this.#onDelivered = options.onDelivered
    this.#onReplay = options.onReplay
    this.#onError = options.onError ?? (() => {})
    this.#bus.subscribe((packet) => this.#deliver(packet))
    this.#presence.onExpired?.((room, users, count) => {
      for (const user of users) {
        this.publish(room, 'presence:leave', { user, count }, { transient: true })
          .catch((err: unknown) => this.#onError(err, 'announcing an expired presence'))
      }
    })
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
    this.#gates.delete(conn)
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

  /**
   * Joins `room` when its policy lets the user in; throws a FORBIDDEN `AppError` otherwise. With
   * `since`, the messages after it are delivered first, in order, and live ones that arrive meanwhile
   * wait behind them, so the connection sees every seq once.
   */
  async join (conn: HubConnection, room: string, options: JoinOptions = {}): Promise<JoinResult> {
    if (!this.canJoin(conn.user, room)) throw new AppError(ErrorCode.FORBIDDEN, `you may not join room "${safeName(room)}"`)
    const { since } = options
    const joined = !conn.rooms.has(room)
    if (joined && conn.rooms.size >= this.#maxRooms) {
      throw new AppError(ErrorCode.FORBIDDEN, `a connection may be in at most ${this.#maxRooms} rooms; leave one first`)
    }
    let local = this.#rooms.get(room)
    if (local === undefined) {
      const policy = this.policyFor(room)
      local = { policy, slowConsumer: policy?.slowConsumer ?? this.#slowConsumer, members: new Set(), watching: undefined }
      this.#rooms.set(room, local)
      local.watching = this.#bus.watch(room)
    }
    // From here on the room's packets reach this connection: held back while the replay runs.
    if (since !== undefined) this.#gate(conn, room)
    if (joined) {
      local.members.add(conn)
      conn.rooms.add(room)
    }
    try {
      // Every packet published from now on arrives through the bus: what came before is in the history.
      await local.watching
      if (joined && local.policy?.presence === true) await this.#announceJoin(conn, room)
      const seq = await this.#bus.lastSeq(room)
      if (since === undefined) return { room, joined, seq }
      return { room, joined, ...await this.#replayTo(conn, room, since, seq, local.slowConsumer) }
    } finally {
      this.#gates.get(conn)?.delete(room)
      if (this.#gates.get(conn)?.size === 0) this.#gates.delete(conn)
    }
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
    return await this.#bus.publish({
      target: 'room',
      to: room,
      except: options.except,
      event,
      text: JSON.stringify({ event, data: { ...data, room } }),
      sequenced: options.transient !== true,
      dedupKey: options.dedupKey === undefined || options.transient === true ? undefined : `${room}\n${options.dedupKey}`
    })
  }

  /** Sends to every connection of one user (all instances). */
  async sendToUser (sub: string, event: string, data: unknown): Promise<void> {
    await this.#bus.publish({ target: 'user', to: sub, event, text: JSON.stringify({ event, data }), sequenced: false })
  }

  /** Sends to every connection (all instances). */
  async broadcast (event: string, data: unknown): Promise<void> {
    await this.#bus.publish({ target: 'all', to: '', event, text: JSON.stringify({ event, data }), sequenced: false })
  }

  /** Who is in `room`, for a user allowed to join it; FORBIDDEN otherwise or when the room has no presence. */
  async presence (user: AuthUser, room: string): Promise<PresenceSnapshot> {
    if (!this.canJoin(user, room)) throw new AppError(ErrorCode.FORBIDDEN, `you may not see who is in room "${safeName(room)}"`)
    if (this.policyFor(room)?.presence !== true) throw new AppError(ErrorCode.FORBIDDEN, `room "${safeName(room)}" does not track presence`)
    const users = await this.#presence.list(room)
    return { room, users, count: users.length }
  }

  /** Sequenced packets of `room` after `seq` (undefined when the history does not reach back). */
  async replay (room: string, seq: number): Promise<HubPacket[] | undefined> {
    const missed = await this.#bus.since(room, seq)
    this.#onReplay?.(room, missed?.length)
    return missed
  }

  async close (): Promise<void> {
    await this.#bus.close()
    await this.#presence.close?.()
  }

  async #announceJoin (conn: HubConnection, room: string): Promise<void> {
    const change = await this.#presence.add(room, conn.user.sub)
    if (change.changed) await this.publish(room, 'presence:join', { user: conn.user.sub, count: change.count }, { except: conn.id, transient: true })
  }

  #gate (conn: HubConnection, room: string): void {
    let rooms = this.#gates.get(conn)
    if (rooms === undefined) this.#gates.set(conn, rooms = new Map())
    rooms.set(room, [])
  }

  /** Delivers the history after `since`, then the live packets held back meanwhile, skipping any seq already sent. */
  async #replayTo (conn: HubConnection, room: string, since: number, latest: number, policy: SlowConsumerPolicy): Promise<{ seq: number, recovered: boolean }> {
    let missed: HubPacket[] | undefined
    try {
      missed = await this.replay(room, since)
    } catch (err) {
      this.#onError(err, 'reading room history')
    }
    // Not recovered: the client refetches the state as of `latest`, so only what follows it is sent.
    let sent = missed === undefined ? latest : since
    for (const packet of missed ?? []) {
      if (packet.seq! <= sent) continue
      conn.deliver(packet, policy)
      sent = packet.seq!
    }
    const held = this.#gates.get(conn)?.get(room) ?? []
    this.#gates.get(conn)?.delete(room)
    for (const packet of held) {
      if (packet.seq !== undefined) {
        if (packet.seq <= sent) continue
        sent = packet.seq
      }
      conn.deliver(packet, policy)
    }
    return { seq: Math.max(latest, sent), recovered: missed !== undefined }
  }

  #deliver (packet: HubPacket): void {
    let count = 0
    if (packet.target === 'room') {
      const local = this.#rooms.get(packet.to)
      if (local !== undefined) {
        const gates = this.#gates.size > 0 ? this.#gates : undefined
        for (const conn of local.members) {
          if (conn.id === packet.except) continue
          const held = gates?.get(conn)?.get(packet.to)
          if (held !== undefined) held.push(packet)
          else if (conn.deliver(packet, local.slowConsumer)) count++
        }
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

/** A map whose least recently set keys are evicted past `max` entries (those `keep` does not hold on to). */
export class LruMap<K, V> extends Map<K, V> {
  readonly #max: number
  readonly #keep: ((key: K) => boolean) | undefined
  constructor (max: number, keep?: (key: K) => boolean) {
    super()
    this.#max = max
    this.#keep = keep
  }

  override set (key: K, value: V): this {
    // Re-insert so the Map's order is least recently set first.
    super.delete(key)
    super.set(key, value)
    if (this.size > this.#max) {
      for (const oldest of this.keys()) {
        if (oldest === key || this.#keep?.(oldest) === true) continue
        super.delete(oldest)
        break
      }
    }
    return this
  }
}

/** Publish ids seen within a window: a repeat resolves with the first publish's seq. */
export class DedupWindow {
  readonly #seen: LruMap<string, { seq: Promise<number | undefined>, until: number }>
  readonly #windowMs: number
  readonly #now: () => number

  constructor (windowMs: number, maxEntries = 100_000, now: () => number = Date.now) {
    this.#seen = new LruMap(maxEntries)
    this.#windowMs = windowMs
    this.#now = now
  }

  /** The seq of an earlier publish with this key, when there was one within the window. */
  get (key: string): Promise<number | undefined> | undefined {
    const entry = this.#seen.get(key)
    if (entry === undefined) return undefined
    if (entry.until > this.#now()) return entry.seq
    this.#seen.delete(key)
    return undefined
  }

  /** Sends unless `key` was sent within the window (then resolves with that seq); no key: always sends. */
  async once (key: string | undefined, send: () => number | undefined): Promise<number | undefined> {
    if (key === undefined) return send()
    const earlier = this.get(key)
    if (earlier !== undefined) return await earlier
    const seq = send()
    this.remember(key, Promise.resolve(seq))
    return seq
  }

  /** Records a publish; a failed one is forgotten so the client's retry goes through. */
  remember (key: string, seq: Promise<number | undefined>): void {
    this.#seen.set(key, { seq, until: this.#now() + this.#windowMs })
    seq.catch(() => { this.#seen.delete(key) })
  }
}

export interface LocalBusOptions {
  /** Rooms whose sequence counters are kept (most recently active); an idle room starts again at 1. */
  maxRooms?: number
  /** In-process history, or none (then a join with `since` is never recovered). */
  history?: RoomHistory
  /** How long a client's publish id is remembered. Default 2 minutes. */
  dedupWindowMs?: number
}

/**
 * The in-process bus. Sequence counters are kept for the rooms with members here and the `maxRooms`
 * most recently active others; a memberless room idle while that many others were active starts
 * again at 1.
 */
export function createLocalBus (options: LocalBusOptions = {}): HubBus {
  const watched = new Set<string>()
  const seqs = new LruMap<string, number>(options.maxRooms ?? 10_000, (room) => watched.has(room))
  const dedup = new DedupWindow(options.dedupWindowMs ?? 120_000)
  const history = options.history
  let deliver: (packet: HubPacket) => void = () => {}
  function send (draft: PacketDraft): number | undefined {
    if (!draft.sequenced) {
      deliver({ target: draft.target, to: draft.to, except: draft.except, event: draft.event, text: draft.text })
      return undefined
    }
    const seq = (seqs.get(draft.to) ?? 0) + 1
    seqs.set(draft.to, seq)
    const packet: HubPacket = { target: 'room', to: draft.to, except: draft.except, event: draft.event, seq, text: withSeq(draft.text, seq) }
    history?.append(draft.to, packet)
    deliver(packet)
    return seq
  }
  return {
    async publish (draft) {
      return await dedup.once(draft.dedupKey, () => send(draft))
    },
    async lastSeq (room) { return seqs.get(room) ?? 0 },
    async since (room, seq) {
      const last = seqs.get(room) ?? 0
      const missed = history === undefined ? (seq === last ? [] : undefined) : history.since(room, seq)
      // The history must account for every seq up to the counter's (an evicted room's does not).
      return missed?.length === last - seq ? missed : undefined
    },
    subscribe (fn) { deliver = fn },
    async watch (room) { watched.add(room) },
    unwatch (room) { watched.delete(room) },
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

/** How much room history is kept: the same bounds for the in-process history and the Redis one. */
export interface HistoryBounds {
  /** Rooms with a history (the least recently written lose theirs first). */
  maxRooms: number
  /** Message text kept across all rooms, about a byte per character (least recently written rooms go first). */
  maxBytes: number
  /** A message whose UTF-8 text is longer is delivered but not kept: a resume from before it is not recovered. */
  maxMessageBytes: number
}

/** What the bounds cost, for metrics: rooms whose history was evicted, or a message not kept. */
export type HistoryDropped = (what: 'room' | 'message', count: number) => void

/** 1000 busy rooms of 64 KiB messages must not cost gigabytes: 32 MiB in all, 16 KiB a message. */
export const DEFAULT_HISTORY_BOUNDS: HistoryBounds = { maxRooms: 1000, maxBytes: 32 * 1024 * 1024, maxMessageBytes: 16 * 1024 }

/** Whether a message's text may be kept: its UTF-8 length, measured only when its length cannot tell. */
export function fitsHistory (text: string, maxMessageBytes: number): boolean {
  if (text.length > maxMessageBytes) return false
  // A UTF-16 code unit is at most 3 bytes of UTF-8.
  return text.length * 3 <= maxMessageBytes || Buffer.byteLength(text) <= maxMessageBytes
}

export interface MemoryHistoryOptions extends Partial<HistoryBounds> {
  /** Sequenced packets kept per room. */
  perRoom: number
  /** Packets older than this are no longer replayed. */
  maxAgeMs: number
  onDropped?: HistoryDropped
  now?: () => number
}

interface HistoryEntry { packet: HubPacket, at: number }

/**
 * In-process history: the last `perRoom` sequenced packets, younger than `maxAgeMs`, of at most
 * `maxRooms` rooms and `maxBytes` of text in all (counted in characters), each message within
 * `maxMessageBytes` (defaults: DEFAULT_HISTORY_BOUNDS). A sequence that restarts empties the room's
 * history. Entries keep the packet's text only (not the WebSocket frame a delivery cached on it).
 */
export function createMemoryHistory (options: MemoryHistoryOptions): RoomHistory {
  const { perRoom, maxAgeMs } = options
  const maxRooms = options.maxRooms ?? DEFAULT_HISTORY_BOUNDS.maxRooms
  const maxBytes = options.maxBytes ?? DEFAULT_HISTORY_BOUNDS.maxBytes
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_HISTORY_BOUNDS.maxMessageBytes
  const now = options.now ?? Date.now
  const dropped = options.onDropped ?? (() => {})
  const rooms = new LruMap<string, HistoryEntry[]>(maxRooms)
  let chars = 0
  const charsOf = (list: readonly HistoryEntry[]) => list.reduce((n, e) => n + e.packet.text.length, 0)
  return {
    append (room, packet) {
      if (!fitsHistory(packet.text, maxMessageBytes)) {
        dropped('message', 1)
        return
      }
      let list = rooms.get(room)
      if (list !== undefined && list.length > 0 && list[list.length - 1]!.packet.seq! >= packet.seq!) {
        chars -= charsOf(list)
        list = []
      }
      list ??= []
      list.push({ packet: { target: 'room', to: room, event: packet.event, seq: packet.seq, text: packet.text }, at: now() })
      chars += packet.text.length
      if (list.length > perRoom) chars -= list.shift()!.packet.text.length
      const evicted = rooms.size >= maxRooms && !rooms.has(room) ? rooms.keys().next().value : undefined
      if (evicted !== undefined) {
        chars -= charsOf(rooms.get(evicted)!)
        dropped('room', 1)
      }
      rooms.set(room, list)
      // Over the budget: the least recently written rooms go first, then this room's oldest entries.
      for (const [name, entries] of rooms) {
        if (chars <= maxBytes) break
        if (name === room) continue
        chars -= charsOf(entries)
        rooms.delete(name)
        dropped('room', 1)
      }
      while (chars > maxBytes && list.length > 1) chars -= list.shift()!.packet.text.length
    },
    since (room, seq) {
      const list = rooms.get(room) ?? []
      const last = list.length === 0 ? 0 : list[list.length - 1]!.packet.seq!
      if (seq >= last) return seq === last ? [] : undefined
      const oldest = now() - maxAgeMs
      const start = list.findIndex((e) => e.packet.seq! > seq)
      // The client's next message (seq + 1) must still be here, and not aged out.
      if (start < 0 || list[start]!.packet.seq !== seq + 1 || list[start]!.at < oldest) return undefined
      return list.slice(start).map((e) => e.packet)
    }
  }
}
