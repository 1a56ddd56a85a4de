// The room hub's bus across instances (REDIS_URL): one Lua script per sequenced message takes the
// room's next seq (INCR), appends it to the room's history (a Redis Stream whose entry ids are the
// seqs, kept within the history's total bounds: realtime/hub/redis-history.ts), remembers a client's
// publish id for dedup, and PUBLISHes it — atomically, so every instance receives each room's
// messages in seq order. A message over the per-message history limit is published but not kept. Every instance, this one included, delivers what its
// subscription receives; a packet is delivered once per instance (a seq at or below the last one
// delivered is dropped).
//
// Redis down: publishing goes on for this instance's members, numbered after the last seq seen here
// and not recorded; `onError` counts and logs it. When Redis is back the room counters are raised past
// those local numbers, the subscriptions are renewed, and what other instances published meanwhile is
// fetched from the history — so cross-instance delivery resumes without a restart.
//
// Tracing: a publish is a PRODUCER span whose W3C context travels in the channel message's header, so
// its delivery on every instance is a CONSUMER span linked to it (and its child). Without tracing
// nothing is added to the message.

import type { Redis } from 'ioredis'
import { SpanKind, context, propagation, trace, type Context } from '@opentelemetry/api'
import {
  DEFAULT_HISTORY_BOUNDS, DedupWindow, LruMap, fitsHistory, withSeq,
  type HistoryBounds, type HistoryDropped, type HubBus, type HubPacket, type PacketDraft
} from './room-hub.ts'
import { APPEND_TO_HISTORY_LUA, historyIndexKeys } from './redis-history.ts'

export interface RedisBusOptions {
  /** Commands and scripts. */
  redis: Redis
  /** A second connection, in subscriber mode (see createRedisClient's `subscriber`); other users may share it. */
  subscriber: Redis
  /** Tells this instance's packets apart in logs (and keeps its fallback state its own). */
  instanceId: string
  /** Sequenced messages kept per room (0: none, and a join with `since` is never recovered). */
  historySize: number
  /** A room's history older than this is not replayed; an idle room's history expires after it. */
  historyMaxAgeMs: number
  /** The history's total bounds, shared by every instance (default DEFAULT_HISTORY_BOUNDS). */
  historyBounds?: HistoryBounds
  /** Rooms whose history was evicted by this instance's publishes, and messages it did not keep. */
  onHistoryDropped?: HistoryDropped
  /** How long a client's publish id is remembered. */
  dedupWindowMs: number
  /** A Redis operation failed (`what` says which); the bus carried on locally. */
  onError: (err: unknown, what: string) => void
  /** Replay sizes and the like are the hub's business; this reports a fetch that filled a gap after an outage. */
  onGapFilled?: (room: string, packets: number) => void
  keyPrefix?: string
  now?: () => number
}

// An idle room's counter outlives its history by far: a client coming back after a day still sees
// a continuing sequence (and `recovered: false`), not seq 1 again.
const SEQ_TTL_MS = 7 * 24 * 3600 * 1000
// Rooms whose last seq this instance remembers (for dedup of deliveries and outage numbering).
const KNOWN_ROOMS = 10_000

// KEYS: seq, history, dedup, history rooms, history sizes, history bytes. ARGV: channel, header
// prefix, text, history size (0 = not kept), now, history ttl, dedup window (0 = none), seq ttl, event,
// room, history key prefix, history max rooms, history max bytes, header suffix (the trace context).
// Returns {seq, rooms evicted}, or {seq, -1} for a repeat within the dedup window.
const PUBLISH_SCRIPT = APPEND_TO_HISTORY_LUA + `
if ARGV[7] ~= '0' then
  local prior = redis.call('GET', KEYS[3])
  if prior then return {tonumber(prior), -1} end
end
local seq = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[8])
local text = string.sub(ARGV[3], 1, -3) .. ',"seq":' .. seq .. '}}'
local evicted = 0
if ARGV[4] ~= '0' then
  evicted = appendToHistory({
    stream = KEYS[2], rooms = KEYS[4], sizes = KEYS[5], total = KEYS[6], room = ARGV[10], streamPrefix = ARGV[11],
    size = tonumber(ARGV[4]), now = ARGV[5], ttl = tonumber(ARGV[6]), maxRooms = tonumber(ARGV[12]), maxBytes = tonumber(ARGV[13])
  }, seq .. '-1', ARGV[9], text)
end
if ARGV[7] ~= '0' then redis.call('SET', KEYS[3], seq, 'PX', ARGV[7]) end
redis.call('PUBLISH', ARGV[1], ARGV[2] .. seq .. ARGV[14] .. ']\\n' .. text)
return {seq, evicted}
`

// KEYS: seq, history. ARGV: since, most entries worth reading. Returns {last, entries or false}.
const SINCE_SCRIPT = `
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local since = tonumber(ARGV[1])
if since >= last or last - since > tonumber(ARGV[2]) then return {last, false} end
return {last, redis.call('XRANGE', KEYS[2], (since + 1) .. '-1', '+', 'COUNT', last - since)}
`

// KEYS: seq. ARGV: a seq numbered here during an outage, seq ttl. Raises the counter to at least it.
const RAISE_SCRIPT = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
return current
`

type StreamEntry = [id: string, fields: string[]]

interface ScriptedRedis {
  keelPublish: (seqKey: string, historyKey: string, dedupKey: string, roomsKey: string, sizesKey: string, totalKey: string,
    ...args: Array<string | number>) => Promise<[seq: number, evicted: number]>
  keelSince: (seqKey: string, historyKey: string, since: number, most: number) => Promise<[number, StreamEntry[] | null]>
  keelRaise: (seqKey: string, seq: number, ttl: number) => Promise<number>
}

/**
 * The channel message: a JSON header line `[instance, target, to, except, event, seq, traceparent?]`,
 * then the envelope. The trace context comes last, so an instance that does not read it still can.
 */
function headerPrefix (instanceId: string, draft: PacketDraft): string {
  return JSON.stringify([instanceId, draft.target, draft.to, draft.except ?? '', draft.event]).slice(0, -1) + ','
}

/** What follows the seq in the header: the publishing span's `traceparent`, when one is recorded. */
function headerSuffix (publishing: Context): string {
  const carrier: Record<string, string> = {}
  propagation.inject(publishing, carrier)
  return carrier.traceparent === undefined ? '' : `,${JSON.stringify(carrier.traceparent)}`
}

function parseMessage (message: string): { packet: HubPacket, traceparent: string | undefined } | undefined {
  const newline = message.indexOf('\n')
  if (newline < 0) return undefined
  const [, target, to, except, event, seq, traceparent] =
    JSON.parse(message.slice(0, newline)) as [string, HubPacket['target'], string, string, string, number | null, string | undefined]
  const packet = { target, to, except: except === '' ? undefined : except, event, seq: seq ?? undefined, text: message.slice(newline + 1) }
  return { packet, traceparent: typeof traceparent === 'string' ? traceparent : undefined }
}

const tracer = trace.getTracer('keel.realtime')
function spanAttributes (draft: { target: string, to: string, event: string }): Record<string, string> {
  const attributes: Record<string, string> = { 'messaging.system': 'redis', 'keel.hub.target': draft.target, 'keel.event': draft.event }
  if (draft.target === 'room') attributes['keel.room'] = draft.to
  return attributes
}

function packetOf (room: string, [id, fields]: StreamEntry): { packet: HubPacket, at: number } {
  const field = (name: string) => fields[fields.indexOf(name) + 1]!
  return { packet: { target: 'room', to: room, event: field('e'), seq: Number.parseInt(id, 10), text: field('p') }, at: Number(field('t')) }
}

/** Redis key and channel names of one hub (all under one prefix). */
class HubKeys {
  readonly prefix: string
  readonly directChannel: string
  readonly index: ReturnType<typeof historyIndexKeys>
  constructor (prefix: string) {
    this.prefix = prefix
    this.directChannel = `${prefix}direct`
    this.index = historyIndexKeys(prefix)
  }

  roomChannel (room: string): string { return `${this.prefix}room:${room}` }
  seq (room: string): string { return `${this.prefix}seq:${room}` }
  history (room: string): string { return `${this.prefix}history:${room}` }
  dedup (key: string): string { return `${this.prefix}dedup:${key}` }
}

/** The bus as a small class: its state is the per-room bookkeeping below, its methods the HubBus seam. */
class RedisBus implements HubBus {
  readonly #options: RedisBusOptions
  readonly #keys: HubKeys
  readonly #scripts: ScriptedRedis
  readonly #now: () => number
  readonly #bounds: HistoryBounds
  readonly #dropped: HistoryDropped
  /** The last seq delivered on this instance, per room: a packet at or below it is a duplicate. */
  readonly #known = new LruMap<string, number>(KNOWN_ROOMS)
  /** Rooms numbered here while Redis was down, with the last such seq: the counters to raise on reconnect. */
  readonly #numberedLocally = new Map<string, number>()
  readonly #localDedup: DedupWindow
  readonly #watched = new Set<string>()
  #deliver: (packet: HubPacket) => void = () => {}
  #closed = false
  #outage = false

  constructor (options: RedisBusOptions) {
    this.#options = options
    this.#keys = new HubKeys(options.keyPrefix ?? 'keel:hub:')
    this.#now = options.now ?? Date.now
    this.#bounds = options.historyBounds ?? DEFAULT_HISTORY_BOUNDS
    this.#dropped = options.onHistoryDropped ?? (() => {})
    this.#localDedup = new DedupWindow(options.dedupWindowMs)
    const { redis } = options
    redis.defineCommand('keelPublish', { numberOfKeys: 6, lua: PUBLISH_SCRIPT })
    redis.defineCommand('keelSince', { numberOfKeys: 2, lua: SINCE_SCRIPT })
    redis.defineCommand('keelRaise', { numberOfKeys: 1, lua: RAISE_SCRIPT })
    this.#scripts = redis as unknown as ScriptedRedis
    this.#listen()
  }

  /** Connection events: an outage starts on error/close; both connections ready again → resync. */
  #listen (): void {
    const { redis, subscriber, onError } = this.#options
    const resyncFailed = (err: unknown) => onError(err, 'resynchronizing with Redis')
    subscriber.on('message', (channel: string, message: string) => this.#onMessage(channel, message))
    redis.on('error', () => { this.#outage = true })
    redis.on('close', () => { this.#outage = true })
    redis.on('ready', () => { if (subscriber.status === 'ready') this.#resync().catch(resyncFailed) })
    subscriber.on('error', () => {})
    subscriber.on('close', () => { this.#outage = true })
    subscriber.on('ready', () => {
      this.#subscribe([this.#keys.directChannel, ...[...this.#watched].map((room) => this.#keys.roomChannel(room))])
        .then(async () => { if (redis.status === 'ready') await this.#resync() })
        .catch(resyncFailed)
    })
  }

  #onMessage (channel: string, message: string): void {
    // The subscriber connection is shared: other users' channels are theirs to read.
    if (!channel.startsWith(this.#keys.prefix)) return
    let parsed: ReturnType<typeof parseMessage>
    try {
      parsed = parseMessage(message)
    } catch (err) {
      this.#options.onError(err, 'reading a hub message from Redis')
    }
    if (parsed === undefined) return
    if (parsed.traceparent === undefined) return this.#receive(parsed.packet)
    this.#receiveTraced(parsed.packet, parsed.traceparent)
  }

  /** A delivery of a traced publish: a CONSUMER span, child of the publishing span and linked to it. */
  #receiveTraced (packet: HubPacket, traceparent: string): void {
    const publishing = propagation.extract(context.active(), { traceparent })
    const link = trace.getSpanContext(publishing)
    const span = tracer.startSpan(`deliver ${packet.event}`, {
      kind: SpanKind.CONSUMER,
      links: link === undefined ? [] : [{ context: link }],
      attributes: { ...spanAttributes(packet), 'messaging.operation.type': 'process' }
    }, publishing)
    try {
      context.with(trace.setSpan(publishing, span), () => this.#receive(packet))
    } finally {
      span.end()
    }
  }

  #receive (packet: HubPacket): void {
    if (packet.seq !== undefined) {
      if (packet.seq <= (this.#known.get(packet.to) ?? 0)) return
      this.#known.set(packet.to, packet.seq)
    }
    this.#deliver(packet)
  }

  /** Redis is unreachable: this instance's members still get the packet, numbered after what was seen here. */
  #publishLocally (draft: PacketDraft): number | undefined {
    if (!draft.sequenced) {
      this.#receive({ target: draft.target, to: draft.to, except: draft.except, event: draft.event, text: draft.text })
      return undefined
    }
    const seq = (this.#known.get(draft.to) ?? 0) + 1
    if (this.#watched.has(draft.to)) this.#numberedLocally.set(draft.to, seq)
    this.#receive({ target: 'room', to: draft.to, except: draft.except, event: draft.event, seq, text: withSeq(draft.text, seq) })
    return seq
  }

  async #publishRemotely (draft: PacketDraft, publishing: Context): Promise<number | undefined> {
    const { redis, historySize, historyMaxAgeMs, dedupWindowMs, instanceId } = this.#options
    const keys = this.#keys
    const channel = draft.target === 'room' ? keys.roomChannel(draft.to) : keys.directChannel
    const head = headerPrefix(instanceId, draft)
    const tail = headerSuffix(publishing)
    if (!draft.sequenced) {
      await redis.publish(channel, `${head}null${tail}]\n${draft.text}`)
      return undefined
    }
    const dedupKey = draft.dedupKey === undefined ? keys.seq(draft.to) : keys.dedup(draft.dedupKey)
    const kept = historySize > 0 && fitsHistory(draft.text, this.#bounds.maxMessageBytes)
    const [seq, evicted] = await this.#scripts.keelPublish(keys.seq(draft.to), keys.history(draft.to), dedupKey,
      keys.index.rooms, keys.index.sizes, keys.index.total,
      channel, head, draft.text, kept ? historySize : 0, this.#now(), historyMaxAgeMs,
      draft.dedupKey === undefined ? 0 : dedupWindowMs, SEQ_TTL_MS, draft.event,
      draft.to, keys.history(''), this.#bounds.maxRooms, this.#bounds.maxBytes, tail)
    if (evicted > 0) this.#dropped('room', evicted)
    // A repeat (-1) published nothing; a new message over the size limit was delivered, not kept.
    if (evicted >= 0 && historySize > 0 && !kept) this.#dropped('message', 1)
    return seq
  }

  async publish (draft: PacketDraft): Promise<number | undefined> {
    const { redis, onError } = this.#options
    if (!this.#outage && redis.status === 'ready') {
      const span = tracer.startSpan(`publish ${draft.event}`, { kind: SpanKind.PRODUCER, attributes: { ...spanAttributes(draft), 'messaging.operation.type': 'send' } })
      const publishing = trace.setSpan(context.active(), span)
      try {
        return await context.with(publishing, () => this.#publishRemotely(draft, publishing))
      } catch (err) {
        onError(err, 'publishing to Redis')
      } finally {
        span.end()
      }
    } else {
      onError(new Error(`Redis connection is ${redis.status}`), 'publishing to Redis')
    }
    return await this.#localDedup.once(draft.dedupKey, () => this.#publishLocally(draft))
  }

  async since (room: string, seq: number): Promise<HubPacket[] | undefined> {
    const { historySize, historyMaxAgeMs } = this.#options
    if (historySize === 0) return seq === await this.lastSeq(room) ? [] : undefined
    const [last, entries] = await this.#scripts.keelSince(this.#keys.seq(room), this.#keys.history(room), seq, historySize)
    if (seq === last) return []
    if (entries === null || entries.length !== last - seq) return undefined
    const oldest = this.#now() - historyMaxAgeMs
    const packets = entries.map((entry) => packetOf(room, entry))
    // Contiguous from seq + 1 (nothing numbered during an outage is missing) and young enough.
    if (packets[0]!.at < oldest || packets.some(({ packet }, i) => packet.seq !== seq + 1 + i)) return undefined
    return packets.map(({ packet }) => packet)
  }

  async lastSeq (room: string): Promise<number> {
    const { redis, onError } = this.#options
    const seen = this.#known.get(room) ?? 0
    if (redis.status !== 'ready') return seen
    try {
      return Math.max(Number(await redis.get(this.#keys.seq(room)) ?? 0), seen)
    } catch (err) {
      onError(err, 'reading a room seq from Redis')
      return seen
    }
  }

  async #subscribe (channels: string[]): Promise<void> {
    const { subscriber, onError } = this.#options
    if (channels.length === 0 || subscriber.status !== 'ready') return
    try {
      await subscriber.subscribe(...channels)
    } catch (err) {
      onError(err, 'subscribing to Redis')
    }
  }

  /** After an outage: raise counters past local numbering, renew subscriptions, fetch what was missed. */
  async #resync (): Promise<void> {
    const { onError, historySize } = this.#options
    for (const [room, seq] of this.#numberedLocally) {
      try {
        await this.#scripts.keelRaise(this.#keys.seq(room), seq, SEQ_TTL_MS)
        this.#numberedLocally.delete(room)
      } catch (err) {
        onError(err, 'raising a room seq in Redis')
        return
      }
    }
    this.#outage = false
    if (historySize === 0) return
    for (const room of this.#watched) await this.#fetchMissed(room)
  }

  async #fetchMissed (room: string): Promise<void> {
    const last = this.#known.get(room)
    if (last === undefined) return
    try {
      const missed = await this.since(room, last)
      for (const packet of missed ?? []) this.#receive(packet)
      if (missed !== undefined && missed.length > 0) this.#options.onGapFilled?.(room, missed.length)
    } catch (err) {
      this.#options.onError(err, 'reading room history from Redis')
    }
  }

  subscribe (deliver: (packet: HubPacket) => void): void {
    this.#deliver = deliver
  }

  async watch (room: string): Promise<void> {
    this.#watched.add(room)
    await this.#subscribe([this.#keys.roomChannel(room)])
  }

  unwatch (room: string): void {
    const { subscriber, onError } = this.#options
    this.#watched.delete(room)
    if (this.#closed || subscriber.status !== 'ready') return
    subscriber.unsubscribe(this.#keys.roomChannel(room)).catch((err: unknown) => onError(err, 'unsubscribing from Redis'))
  }

  // The connections are the app's (core/redis.ts closes them with it).
  async close (): Promise<void> {
    this.#closed = true
  }
}

export function createRedisBus (options: RedisBusOptions): HubBus {
  return new RedisBus(options)
}
