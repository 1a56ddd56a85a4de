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

import type { Redis } from 'ioredis'
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
// room, history key prefix, history max rooms, history max bytes. Returns {seq, rooms evicted}, or
// {seq, -1} for a repeat within the dedup window.
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
redis.call('PUBLISH', ARGV[1], ARGV[2] .. seq .. ']\\n' .. text)
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

/** The channel message: a JSON header line `[instance, target, to, except, event, seq]`, then the envelope. */
function headerPrefix (instanceId: string, draft: PacketDraft): string {
  return JSON.stringify([instanceId, draft.target, draft.to, draft.except ?? '', draft.event]).slice(0, -1) + ','
}

function parseMessage (message: string): HubPacket | undefined {
  const newline = message.indexOf('\n')
  if (newline < 0) return undefined
  const [, target, to, except, event, seq] = JSON.parse(message.slice(0, newline)) as [string, HubPacket['target'], string, string, string, number | null]
  return { target, to, except: except === '' ? undefined : except, event, seq: seq ?? undefined, text: message.slice(newline + 1) }
}

function packetOf (room: string, [id, fields]: StreamEntry): { packet: HubPacket, at: number } {
  const field = (name: string) => fields[fields.indexOf(name) + 1]!
  return { packet: { target: 'room', to: room, event: field('e'), seq: Number.parseInt(id, 10), text: field('p') }, at: Number(field('t')) }
}

export function createRedisBus (options: RedisBusOptions): HubBus {
  const { redis, subscriber, instanceId, historySize, historyMaxAgeMs, dedupWindowMs, onError } = options
  const prefix = options.keyPrefix ?? 'keel:hub:'
  const now = options.now ?? Date.now
  const directChannel = `${prefix}direct`
  const roomChannel = (room: string) => `${prefix}room:${room}`
  const seqKey = (room: string) => `${prefix}seq:${room}`
  const historyKey = (room: string) => `${prefix}history:${room}`
  const index = historyIndexKeys(prefix)
  const bounds = options.historyBounds ?? DEFAULT_HISTORY_BOUNDS
  const dropped = options.onHistoryDropped ?? (() => {})

  redis.defineCommand('keelPublish', { numberOfKeys: 6, lua: PUBLISH_SCRIPT })
  redis.defineCommand('keelSince', { numberOfKeys: 2, lua: SINCE_SCRIPT })
  redis.defineCommand('keelRaise', { numberOfKeys: 1, lua: RAISE_SCRIPT })
  const scripts = redis as unknown as ScriptedRedis

  /** The last seq delivered on this instance, per room: a packet at or below it is a duplicate. */
  const known = new LruMap<string, number>(KNOWN_ROOMS)
  /** Rooms numbered here while Redis was down, with the last such seq: the counters to raise on reconnect. */
  const numberedLocally = new Map<string, number>()
  const localDedup = new DedupWindow(dedupWindowMs)
  const watched = new Set<string>()
  let deliver: (packet: HubPacket) => void = () => {}
  let closed = false
  let outage = false

  function receive (packet: HubPacket): void {
    if (packet.seq !== undefined) {
      if (packet.seq <= (known.get(packet.to) ?? 0)) return
      known.set(packet.to, packet.seq)
    }
    deliver(packet)
  }

  subscriber.on('message', (channel: string, message: string) => {
    // The subscriber connection is shared: other users' channels are theirs to read.
    if (!channel.startsWith(prefix)) return
    let packet: HubPacket | undefined
    try {
      packet = parseMessage(message)
    } catch (err) {
      onError(err, 'reading a hub message from Redis')
    }
    if (packet !== undefined) receive(packet)
  })

  /** Redis is unreachable: this instance's members still get the packet, numbered after what was seen here. */
  function publishLocally (draft: PacketDraft): number | undefined {
    if (!draft.sequenced) {
      receive({ target: draft.target, to: draft.to, except: draft.except, event: draft.event, text: draft.text })
      return undefined
    }
    const seq = (known.get(draft.to) ?? 0) + 1
    if (watched.has(draft.to)) numberedLocally.set(draft.to, seq)
    receive({ target: 'room', to: draft.to, except: draft.except, event: draft.event, seq, text: withSeq(draft.text, seq) })
    return seq
  }

  async function publishRemotely (draft: PacketDraft): Promise<number | undefined> {
    const channel = draft.target === 'room' ? roomChannel(draft.to) : directChannel
    const head = headerPrefix(instanceId, draft)
    if (!draft.sequenced) {
      await redis.publish(channel, `${head}null]\n${draft.text}`)
      return undefined
    }
    const dedupKey = draft.dedupKey === undefined ? seqKey(draft.to) : `${prefix}dedup:${draft.dedupKey}`
    const kept = historySize > 0 && fitsHistory(draft.text, bounds.maxMessageBytes)
    const [seq, evicted] = await scripts.keelPublish(seqKey(draft.to), historyKey(draft.to), dedupKey, index.rooms, index.sizes, index.total,
      channel, head, draft.text, kept ? historySize : 0, now(), historyMaxAgeMs, draft.dedupKey === undefined ? 0 : dedupWindowMs, SEQ_TTL_MS, draft.event,
      draft.to, historyKey(''), bounds.maxRooms, bounds.maxBytes)
    if (evicted > 0) dropped('room', evicted)
    // A repeat (-1) published nothing; a new message over the size limit was delivered, not kept.
    if (evicted >= 0 && historySize > 0 && !kept) dropped('message', 1)
    return seq
  }

  async function publish (draft: PacketDraft): Promise<number | undefined> {
    if (!outage && redis.status === 'ready') {
      try {
        return await publishRemotely(draft)
      } catch (err) {
        onError(err, 'publishing to Redis')
      }
    } else {
      onError(new Error(`Redis connection is ${redis.status}`), 'publishing to Redis')
    }
    return await localDedup.once(draft.dedupKey, () => publishLocally(draft))
  }

  async function since (room: string, seq: number): Promise<HubPacket[] | undefined> {
    if (historySize === 0) return seq === await lastSeq(room) ? [] : undefined
    const [last, entries] = await scripts.keelSince(seqKey(room), historyKey(room), seq, historySize)
    if (seq === last) return []
    if (entries === null || entries.length !== last - seq) return undefined
    const oldest = now() - historyMaxAgeMs
    const packets = entries.map((entry) => packetOf(room, entry))
    // Contiguous from seq + 1 (nothing numbered during an outage is missing) and young enough.
    if (packets[0]!.at < oldest || packets.some(({ packet }, i) => packet.seq !== seq + 1 + i)) return undefined
    return packets.map(({ packet }) => packet)
  }

  async function lastSeq (room: string): Promise<number> {
    if (redis.status !== 'ready') return known.get(room) ?? 0
    try {
      return Math.max(Number(await redis.get(seqKey(room)) ?? 0), known.get(room) ?? 0)
    } catch (err) {
      onError(err, 'reading a room seq from Redis')
      return known.get(room) ?? 0
    }
  }

  async function subscribe (channels: string[]): Promise<void> {
    if (channels.length === 0 || subscriber.status !== 'ready') return
    try {
      await subscriber.subscribe(...channels)
    } catch (err) {
      onError(err, 'subscribing to Redis')
    }
  }

  /** After an outage: raise counters past local numbering, renew subscriptions, fetch what was missed. */
  async function resync (): Promise<void> {
    for (const [room, seq] of numberedLocally) {
      try {
        await scripts.keelRaise(seqKey(room), seq, SEQ_TTL_MS)
        numberedLocally.delete(room)
      } catch (err) {
        onError(err, 'raising a room seq in Redis')
        return
      }
    }
    outage = false
    if (historySize === 0) return
    for (const room of watched) {
      const last = known.get(room)
      if (last === undefined) continue
      try {
        const missed = await since(room, last)
        for (const packet of missed ?? []) receive(packet)
        if (missed !== undefined && missed.length > 0) options.onGapFilled?.(room, missed.length)
      } catch (err) {
        onError(err, 'reading room history from Redis')
      }
    }
  }

  redis.on('error', () => { outage = true })
  redis.on('close', () => { outage = true })
  redis.on('ready', () => { if (subscriber.status === 'ready') resync().catch((err: unknown) => onError(err, 'resynchronizing with Redis')) })
  subscriber.on('error', () => {})
  subscriber.on('close', () => { outage = true })
  subscriber.on('ready', () => {
    subscribe([directChannel, ...[...watched].map(roomChannel)])
      .then(async () => { if (redis.status === 'ready') await resync() })
      .catch((err: unknown) => onError(err, 'resynchronizing with Redis'))
  })

  return {
    publish,
    lastSeq,
    since,
    subscribe (fn) { deliver = fn },
    async watch (room) {
      watched.add(room)
      await subscribe([roomChannel(room)])
    },
    unwatch (room) {
      watched.delete(room)
      if (closed || subscriber.status !== 'ready') return
      subscriber.unsubscribe(roomChannel(room)).catch((err: unknown) => onError(err, 'unsubscribing from Redis'))
    },
    // The connections are the app's (core/redis.ts closes them with it).
    async close () {
      closed = true
    }
  }
}
