// The WebSocket transport: registers @fastify/websocket (frame size limit, no compression), owns the
// RoomHub (`fastify.roomHub`) — in process, or across instances on the app's Redis with REDIS_URL
// (its failure metrics live here) — and the event router, and runs every
// open connection: heartbeat, message budget, token expiry, slow consumers, metrics, and shutdown with
// 1001. realtime/transports/ws-route.ts does the handshake checks and hands each upgraded socket to `fastify.webSockets.accept`.

import { randomUUID } from 'node:crypto'
import fp from 'fastify-plugin'
import fastifyWebsocket from '@fastify/websocket'
import type { FastifyInstance } from 'fastify'
import type { RawData, WebSocket } from 'ws'
import { Counter, Gauge, Histogram } from 'prom-client'
import type { Config } from '../core/config.ts'
import type { AuthUser } from '../auth/access-token.ts'
import { AppError, ErrorCode } from '../core/errors.ts'
import { EventRouter, WsErrorCode, loadEventDirectory } from './protocol/event-router.ts'
import {
  RoomHub, createLocalBus, createLocalPresence, createMemoryHistory,
  type HistoryDropped, type HubBus, type PresenceStore, type RoomPolicy
} from './hub/room-hub.ts'
import { createRedisBus } from './hub/redis-bus.ts'
import { createRedisPresence } from './hub/redis-presence.ts'
import { CloseCode, WsConnection, type ConnectionPolicy } from './transports/ws-connection.ts'

export interface WebSocketSessions {
  /** The events clients may send. */
  readonly events: string[]
  /** Open connections on this instance. */
  readonly size: number
  /** Before the upgrade: throws 503 while shutting down, 429 when the user has all its connections open. */
  admit: (user: AuthUser) => void
  /** Takes over an upgraded socket of a verified user: registers it and sends `connection:ready`. */
  accept: (socket: WebSocket, user: AuthUser) => void
}

declare module 'fastify' {
  interface FastifyInstance {
    roomHub: RoomHub
    webSockets: WebSocketSessions
  }
}

export interface WebSocketPluginOptions {
  ws: Config['ws']
  rooms: readonly RoomPolicy[]
  /** The directory whose files each define one event (`defineEvent`); loaded at start-up. */
  eventsDir: string
}

const kConnection = Symbol('keel.wsConnection')
type Socket = WebSocket & { [kConnection]?: WsConnection }

// setTimeout's ceiling (~24.8 days); a longer-lived token is re-armed when this fires.
const MAX_TIMER_MS = 2 ** 31 - 1

/** The close code ws sends for a protocol error, by the error's `code`. */
function protocolCloseCode (code: string | undefined): number {
  if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') return CloseCode.TOO_BIG
  if (code === 'WS_ERR_INVALID_UTF8') return 1007
  return 1002
}

/** prom-client children by label value, so a hot path increments without hashing a label object. */
function byLabel (counter: Counter<string>): (value: string) => { inc: (n?: number) => void } {
  const children = new Map<string, { inc: (n?: number) => void }>()
  return (value) => {
    let child = children.get(value)
    if (child === undefined) children.set(value, child = counter.labels(value))
    return child
  }
}

function wsMetrics (fastify: FastifyInstance) {
  const registers = [fastify.metrics]
  return {
    open: new Gauge({ name: 'ws_connections', help: 'Open WebSocket connections', registers }),
    received: byLabel(new Counter({ name: 'ws_messages_received_total', help: 'WebSocket messages received, by event', labelNames: ['event'], registers })),
    sent: byLabel(new Counter({ name: 'ws_messages_sent_total', help: 'WebSocket messages sent, by event (each recipient counts)', labelNames: ['event'], registers })),
    errors: byLabel(new Counter({ name: 'ws_errors_total', help: 'WebSocket error events sent, by code', labelNames: ['code'], registers })),
    closes: byLabel(new Counter({ name: 'ws_closes_total', help: 'WebSocket connections closed, by close code (the server\'s when it closed)', labelNames: ['code'], registers })),
    slowConsumers: byLabel(new Counter({ name: 'ws_slow_consumer_actions_total', help: 'Messages to consumers over their send-buffer bound, by action (close or drop)', labelNames: ['action'], registers })),
    replayed: new Histogram({ name: 'room_replay_messages', help: 'Messages replayed per resume (room:join with since, SSE Last-Event-ID) that the history covered', buckets: [0, 1, 10, 50, 100, 500, 1000, 10_000], registers }),
    replays: byLabel(new Counter({ name: 'room_replays_total', help: 'Resumes, by result: recovered, or gap (the history no longer reached back)', labelNames: ['result'], registers })),
    redisFailures: byLabel(new Counter({ name: 'room_hub_redis_failures_total', help: 'Room hub operations that could not use Redis (the hub carried on for this instance), by operation', labelNames: ['operation'], registers }))
  }
}

type WsMetrics = ReturnType<typeof wsMetrics>

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

async function websocket (fastify: FastifyInstance, options: WebSocketPluginOptions): Promise<void> {
  const limits = options.ws
  const metrics = wsMetrics(fastify)
  const hub = new RoomHub({
    policies: options.rooms,
    slowConsumer: limits.slowConsumer,
    maxRoomsPerConnection: limits.maxRoomsPerConnection,
    ...await hubBackend(fastify, options, metrics),
    onDelivered: (packet, count) => { if (count > 0) metrics.sent(packet.event).inc(count) },
    onReplay: (_room, replayed) => {
      metrics.replays(replayed === undefined ? 'gap' : 'recovered').inc()
      if (replayed !== undefined) metrics.replayed.observe(replayed)
    },
    onError: (err, what) => fastify.log.error({ err }, `room hub: ${what} failed`)
  })
  const router = new EventRouter(await loadEventDirectory(options.eventsDir), {
    onHandlerError: (err, event) => fastify.log.error({ err, event }, 'WebSocket event handler failed'),
    onReceived: (event) => metrics.received(event).inc(),
    onErrorSent: (code) => metrics.errors(code).inc()
  })
  const policy: ConnectionPolicy = {
    maxBufferedBytes: limits.maxBufferedBytes,
    messageRate: limits.messageRate,
    messageBurst: limits.messageBurst,
    rateCloseAfter: limits.rateCloseAfter,
    onSent: (event) => metrics.sent(event).inc(),
    onSlowConsumer: (action) => metrics.slowConsumers(action).inc()
  }
  const rateMessage = `over the message budget (${limits.messageRate}/s, bursts of ${limits.messageBurst}); slow down`
  const sessions = new Set<WsConnection>()
  let closing = false
  let drained: (() => void) | undefined

  // One set of listeners for every socket (`this` is the socket): no closures per connection.
  function onMessage (this: Socket, data: RawData, isBinary: boolean): void {
    const conn = this[kConnection]!
    if (!conn.isOpen) return
    const verdict = conn.admit(Date.now())
    if (verdict === 'accept') {
      router.dispatch(conn, data as Buffer, isBinary).catch(onDispatchBug)
      return
    }
    router.refuse(conn, data as Buffer, WsErrorCode.RATE_LIMITED, rateMessage)
    if (verdict === 'close') conn.close(CloseCode.RATE_LIMITED, 'message rate exceeded')
  }
  // dispatch answers every failure itself; a rejection would be a bug in the router.
  function onDispatchBug (err: unknown): void {
    fastify.log.error({ err }, 'WebSocket dispatch failed')
  }
  function onPong (this: Socket): void {
    this[kConnection]!.awaitingPong = false
  }
  function onSocketError (this: Socket, err: Error): void {
    // ws closes the connection itself (1009 for an oversized frame, 1002/1007 for protocol errors):
    // record the code it sent, so ws_closes_total counts what the client saw rather than 1006.
    const conn = this[kConnection]
    if (conn !== undefined) conn.closedWith ??= protocolCloseCode((err as { code?: string }).code)
    fastify.log.debug({ err: { message: err.message, code: (err as { code?: string }).code } }, 'WebSocket protocol error')
  }
  function onClose (this: Socket, code: number): void {
    const conn = this[kConnection]!
    clearTimeout(conn.expiryTimer)
    sessions.delete(conn)
    metrics.open.dec()
    metrics.closes(String(conn.closedWith ?? code)).inc()
    hub.remove(conn).catch((err: unknown) => fastify.log.error({ err }, 'removing a WebSocket connection from the hub failed'))
    if (sessions.size === 0) drained?.()
  }
  /** Closes with 4001 at the token's `exp` (re-arming when the timer's ceiling came first). */
  function armExpiry (conn: WsConnection): void {
    const ms = conn.user.exp * 1000 - Date.now()
    if (ms <= 0) {
      conn.close(CloseCode.TOKEN_EXPIRED, 'access token expired')
      return
    }
    conn.expiryTimer = setTimeout(armExpiry, Math.min(ms, MAX_TIMER_MS), conn)
    conn.expiryTimer.unref()
  }

  // Heartbeat: one timer for all connections. Each sweep pings everyone; a connection that has not
  // answered when the pong timeout fires is terminated (so a dead peer goes within interval + timeout).
  let pongDeadline: NodeJS.Timeout | undefined
  function reapSilent (): void {
    for (const conn of sessions) if (conn.awaitingPong) conn.terminate()
  }
  const heartbeat = setInterval(() => {
    for (const conn of sessions) {
      conn.awaitingPong = true
      conn.ping()
    }
    pongDeadline = setTimeout(reapSilent, limits.pongTimeoutMs)
    pongDeadline.unref()
  }, limits.pingIntervalMs)
  heartbeat.unref()

  const stopItemsFeed = fastify.domainEvents.on('items:changed', (change) => {
    hub.publish('items', 'items:changed', change).catch((err: unknown) => fastify.log.error({ err }, 'publishing items:changed failed'))
  })

  /** Shutdown: refuse new upgrades, close every socket with 1001, destroy those that do not answer in time. */
  async function closeAll (): Promise<void> {
    closing = true
    clearInterval(heartbeat)
    clearTimeout(pongDeadline)
    stopItemsFeed()
    if (sessions.size > 0) {
      const allClosed = new Promise<void>((resolve) => { drained = resolve })
      for (const conn of sessions) conn.close(CloseCode.GOING_AWAY, 'server shutting down')
      const force = setTimeout(() => { for (const conn of sessions) conn.terminate() }, limits.closeGraceMs)
      await allClosed
      clearTimeout(force)
    }
    await hub.close()
    fastify.websocketServer.close()
  }

  await fastify.register(fastifyWebsocket, {
    options: {
      maxPayload: limits.maxPayloadBytes,
      // Compression would cost ~300 KiB per connection in zlib state and defeat the shared frames.
      perMessageDeflate: false,
      // This plugin tracks its connections; ws's own Set would be a second reference to each.
      clientTracking: false,
      // ws ≥ 8.18 option (not in @types/ws yet): how long a close handshake may take before ws destroys the socket.
      ...{ closeTimeout: limits.closeGraceMs }
    },
    // Only reached when accepting a socket throws; ws protocol errors go to onSocketError.
    errorHandler (err, socket) {
      fastify.log.error({ err }, 'WebSocket connection failed')
      socket.terminate()
    },
    preClose: closeAll
  })

  const retryAfter = String(Math.ceil((limits.pingIntervalMs + limits.pongTimeoutMs) / 1000))

  const sessionsApi: WebSocketSessions = {
    events: router.events,
    get size () { return sessions.size },
    admit (user) {
      if (closing) throw new AppError(ErrorCode.SERVICE_UNAVAILABLE, 'the server is shutting down; reconnect to another instance')
      if (hub.connectionsOf(user.sub) >= limits.maxConnectionsPerUser) {
        // A dead connection of this user is reaped within one heartbeat: that is when to retry.
        throw new AppError(ErrorCode.RATE_LIMITED, `at most ${limits.maxConnectionsPerUser} WebSocket and SSE connections per user; close one first`, {
          headers: { 'retry-after': retryAfter }
        })
      }
    },
    accept (ws, user) {
      const socket = ws as Socket
      // @fastify/websocket's per-socket error listener and the upgrade response keep the request and
      // reply alive for the connection's lifetime; swap in the shared listener and let them go.
      socket.removeAllListeners('error')
      socket.on('error', onSocketError)
      const raw = (socket as unknown as { _socket?: { _httpMessage?: { detachSocket?: (s: unknown) => void } | null } })._socket
      raw?._httpMessage?.detachSocket?.(raw)

      if (closing) {
        socket.close(CloseCode.GOING_AWAY, 'server shutting down')
        return
      }
      if (hub.connectionsOf(user.sub) >= limits.maxConnectionsPerUser) {
        // Lost a race with the same user's other upgrades that passed `admit` at the same time.
        socket.close(CloseCode.POLICY, 'too many connections for this user')
        return
      }
      const conn = new WsConnection(randomUUID(), user, socket, hub, policy, Date.now())
      socket[kConnection] = conn
      socket.on('message', onMessage)
      socket.on('pong', onPong)
      socket.once('close', onClose)
      sessions.add(conn)
      hub.add(conn)
      metrics.open.inc()
      armExpiry(conn)
      conn.send('connection:ready', { connectionId: conn.id, user: { sub: user.sub, scopes: user.scopes, exp: user.exp } })
    }
  }

  fastify.decorate('roomHub', hub)
  fastify.decorate('webSockets', sessionsApi)
}

export default fp(websocket, { name: 'keel-websocket', dependencies: ['keel-metrics', 'keel-domain-events', 'keel-health'] })
