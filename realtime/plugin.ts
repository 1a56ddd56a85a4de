// The real-time layer's core: owns the RoomHub (`fastify.roomHub`) — in process, or across instances
// on the app's Redis (core/redis.ts) with REDIS_URL, with the hub's failure metrics here — and
// decorates `fastify.realtime`, the API its transports and the app's resources use: session admission,
// room policies and domain-event feeds. It knows no transport and no resource: app.ts registers the
// transports (realtime/transports/) after it, and each resource declares its own rooms and feeds. What
// was declared stays readable (`roomPolicies`, `feeds`) for the AsyncAPI document (realtime/asyncapi.ts).

import { randomUUID } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { Config } from '../core/config.ts'
import type { AuthUser } from '../auth/access-token.ts'
import { AppError, ErrorCode } from '../core/errors.ts'
import type { DomainEventMap, DomainEventName } from '../core/domain-events.ts'
import {
  RoomHub, createLocalBus, createLocalPresence, createMemoryHistory,
  type HistoryDropped, type HubBus, type PresenceStore, type RoomPolicy
} from './hub/room-hub.ts'
import { createRedisBus } from './hub/redis-bus.ts'
import { createRedisPresence } from './hub/redis-presence.ts'
import { Counter } from 'prom-client'
import type { Static, TObject } from '@sinclair/typebox'
import { builtInRoomPolicies, type DescribedRoomPolicy } from './protocol/rooms.ts'
import { hubMetrics, type HubMetrics } from './metrics.ts'

/** `S` when its data is exactly `T` (each assignable to the other), else never: a feed's schema must say what is emitted. */
export type ExactSchema<S extends TObject, T> = [Static<S>] extends [T] ? ([T] extends [Static<S>] ? S : never) : never

/** A push a resource declared with `feed`. */
export interface FeedDeclaration {
  /** The domain event's name, which is also the pushed event's. */
  readonly event: string
  /** The data as the domain emits it (the push adds `room` and `seq`); its `description` is the document's. */
  readonly data: TObject
  /** The room it goes to, or undefined when the room is chosen per event. */
  readonly room: string | undefined
}

export interface Realtime {
  /** The hub: rooms, presence, and publishing to a room, a user or everyone (the same as `fastify.roomHub`). */
  readonly hub: RoomHub
  /**
   * Whether a new session (WebSocket or SSE) of this user may open, asked before its handshake completes:
   * throws 503 while shutting down, 429 (with Retry-After) when the user has all its sessions open.
   */
  admit: (user: AuthUser) => void
  /**
   * A kind of room and who may join it. Resource policies are checked in the order added, before the
   * built-in ones (realtime/protocol/rooms.ts). Only while the app registers its plugins.
   */
  addRoomPolicy: (policy: DescribedRoomPolicy) => void
  /**
   * Publishes every `event` the domain emits to a room (a name, or one chosen per event) as
   * `{event, data: {...data, room, seq}}`. `data` is the TypeBox schema of the event's data, exactly
   * its type in DomainEventMap (checked at compile time), for the AsyncAPI document. Stops on shutdown.
   */
  feed: <E extends DomainEventName, S extends TObject>(event: E, data: S & ExactSchema<S, DomainEventMap[E]>, room: string | ((data: DomainEventMap[E]) => string)) => void
  /** The room policies, in the order the hub applies them (resources' first), for the document. */
  readonly roomPolicies: readonly DescribedRoomPolicy[]
  /** The feeds declared so far, for the document. */
  readonly feeds: readonly FeedDeclaration[]
  /** For transports: counts messages sent to clients, by event (`ws_messages_sent_total`). */
  countSent: (event: string, count?: number) => void
}

declare module 'fastify' {
  interface FastifyInstance {
    roomHub: RoomHub
    realtime: Realtime
  }
}

export interface RealtimeOptions {
  /** Limits of sessions and rooms: per-user sessions, rooms per session, history, presence, dedup. */
  ws: Config['ws']
}

// The names hubBackend knows its options and metrics by.
type WebSocketPluginOptions = RealtimeOptions
type WsMetrics = HubMetrics

/**
 * The hub's shared state: across instances on the app's Redis (core/redis.ts, which reports outages
 * and readiness) when REDIS_URL is set, with failures counted per operation; else this process's own.
 * Either way the room history stays within the same bounds, and what they cost is counted.
 */
async function hubBackend (fastify: FastifyInstance, options: WebSocketPluginOptions, metrics: WsMetrics): Promise<{ bus: HubBus, presence: PresenceStore }> {
  const limits = options.ws
  const historyBounds = { maxRooms: limits.historyMaxRooms, maxBytes: limits.historyMaxBytes, maxMessageBytes: limits.historyMaxMessageBytes }
  const onHistoryDropped = historyMetrics(fastify)
  if (fastify.redis === undefined) {
    const history = limits.historySize > 0
      ? createMemoryHistory({ perRoom: limits.historySize, maxAgeMs: limits.historyMaxAgeMs, ...historyBounds, onDropped: onHistoryDropped })
      : undefined
    return { bus: createLocalBus({ history, dedupWindowMs: limits.publishDedupMs }), presence: createLocalPresence() }
  }
  const outage = fastify.redis.use('room hub', 'rooms reach this instance\'s members only until it is back')
  const onError = (err: unknown, operation: string): void => {
    metrics.redisFailures(operation).inc()
    outage.failed(err, operation)
  }
  const instanceId = randomUUID()
  const bus = createRedisBus({
    redis: fastify.redis.client,
    subscriber: fastify.redis.subscriber(),
    instanceId,
    historySize: limits.historySize,
    historyMaxAgeMs: limits.historyMaxAgeMs,
    historyBounds,
    onHistoryDropped,
    dedupWindowMs: limits.publishDedupMs,
    onError,
    onGapFilled: (room, packets) => fastify.log.info({ room, packets }, 'room hub: fetched what other instances published during the outage')
  })
  const presence = createRedisPresence({ redis: fastify.redis.client, instanceId, ttlMs: limits.presenceTtlMs, onError })
  return { bus, presence }
}

/** Counts what the history's bounds cost: rooms whose history was evicted, messages too big to keep. */
function historyMetrics (fastify: FastifyInstance): HistoryDropped {
  const registers = [fastify.metrics]
  const evictions = new Counter({
    name: 'room_history_evictions_total',
    help: 'Rooms whose history was dropped to stay within ROOM_HISTORY_MAX_ROOMS and ROOM_HISTORY_MAX_BYTES (least recently written first)',
    registers
  })
  const oversized = new Counter({
    name: 'room_history_oversized_total',
    help: 'Room messages delivered but not kept for replay: over ROOM_HISTORY_MAX_MESSAGE_BYTES',
    registers
  })
  return (what, count) => { (what === 'room' ? evictions : oversized).inc(count) }
}

function createHub (fastify: FastifyInstance, options: RealtimeOptions, metrics: HubMetrics, policies: readonly RoomPolicy[], backend: { bus: HubBus, presence: PresenceStore }): RoomHub {
  return new RoomHub({
    // Read on every join, so policies added while the app registers its plugins apply.
    policies,
    slowConsumer: options.ws.slowConsumer,
    maxRoomsPerConnection: options.ws.maxRoomsPerConnection,
    ...backend,
    onDelivered: (packet, count) => { if (count > 0) metrics.sent(packet.event).inc(count) },
    onReplay: (_room, replayed) => {
      metrics.replays(replayed === undefined ? 'gap' : 'recovered').inc()
      if (replayed !== undefined) metrics.replayed.observe(replayed)
    },
    onError: (err, what) => fastify.log.error({ err }, `room hub: ${what} failed`)
  })
}

async function realtime (fastify: FastifyInstance, options: RealtimeOptions): Promise<void> {
  const limits = options.ws
  const metrics = hubMetrics(fastify.metrics)
  // Resource policies first (in the order added), then the built-in catch-alls.
  const policies: DescribedRoomPolicy[] = [...builtInRoomPolicies]
  let resourcePolicies = 0
  const hub = createHub(fastify, options, metrics, policies, await hubBackend(fastify, options, metrics))
  const feeds: Array<() => void> = []
  const feedDeclarations: FeedDeclaration[] = []
  let started = false
  let closing = false
  // A dead session of this user is reaped within one WebSocket heartbeat: that is when to retry.
  const retryAfter = String(Math.ceil((limits.pingIntervalMs + limits.pongTimeoutMs) / 1000))

  const api: Realtime = {
    hub,
    admit (user) {
      if (closing) throw new AppError(ErrorCode.SERVICE_UNAVAILABLE, 'the server is shutting down; reconnect to another instance')
      if (hub.connectionsOf(user.sub) >= limits.maxConnectionsPerUser) {
        throw new AppError(ErrorCode.RATE_LIMITED, `at most ${limits.maxConnectionsPerUser} WebSocket and SSE connections per user; close one first`, {
          headers: { 'retry-after': retryAfter }
        })
      }
    },
    addRoomPolicy (policy) {
      if (started) throw new Error('room policies are added while the app registers its plugins, before it starts')
      policies.splice(resourcePolicies++, 0, policy)
    },
    feed (event, data, room) {
      feedDeclarations.push({ event, data, room: typeof room === 'string' ? room : undefined })
      const roomOf = typeof room === 'string' ? () => room : room
      feeds.push(fastify.domainEvents.on(event, (data) => {
        hub.publish(roomOf(data), event, data as object).catch((err: unknown) => fastify.log.error({ err, event }, 'publishing a domain event to its room failed'))
      }))
    },
    roomPolicies: policies,
    feeds: feedDeclarations,
    countSent (event, count = 1) { metrics.sent(event).inc(count) }
  }

  fastify.addHook('onReady', async () => { started = true })
  // Registered before the transports, so this runs before they end their sessions: none is admitted meanwhile.
  fastify.addHook('preClose', async () => {
    closing = true
    for (const stop of feeds.splice(0)) stop()
  })
  // After the server has closed, so every session has ended and left its rooms.
  fastify.addHook('onClose', async () => { await hub.close() })

  fastify.decorate('roomHub', hub)
  fastify.decorate('realtime', api)
}

export default fp(realtime, { name: 'keel-realtime', dependencies: ['keel-metrics', 'keel-domain-events', 'keel-health', 'keel-redis'] })
