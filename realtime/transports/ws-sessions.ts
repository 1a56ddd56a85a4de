// The open WebSocket connections of this instance, whatever carries them (an HTTP/1.1 upgrade or an
// HTTP/2 stream, ws-h2.ts): takes each socket over, runs its frames through the event router under its
// message budget, pings it (a peer that misses the pong window is terminated), ends it at its token's
// expiry (4001), and on shutdown closes every one with 1001, terminating those that do not answer
// within the grace. One set of socket listeners serves every connection: no closures per connection.

import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { RawData, WebSocket } from 'ws'
import type { AuthUser } from '../../auth/access-token.ts'
import { AppError, ErrorCode } from '../../core/errors.ts'
import type { Realtime } from '../plugin.ts'
import type { WebSocketMetrics } from '../metrics.ts'
import { type EventRouter, WsErrorCode } from '../protocol/event-router.ts'
import { CloseCode, WsConnection, type ConnectionPolicy, type WebSocketTransportName } from './ws-connection.ts'
import { armExpiry } from './session.ts'

const kConnection = Symbol('keel.wsConnection')
type Socket = WebSocket & { [kConnection]?: WsConnection }

export interface WebSocketSessionsOptions {
  realtime: Realtime
  router: EventRouter
  policy: ConnectionPolicy
  metrics: WebSocketMetrics
  log: FastifyBaseLogger
  pingIntervalMs: number
  pongTimeoutMs: number
  /** How long a peer has to answer the shutdown's close before its socket is destroyed. */
  closeGraceMs: number
}

/** The close code ws sends for a protocol error, by the error's `code`. */
function protocolCloseCode (code: string | undefined): number {
  if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') return CloseCode.TOO_BIG
  if (code === 'WS_ERR_INVALID_UTF8') return 1007
  return 1002
}

/**
 * @fastify/websocket's per-socket error listener and the upgrade response keep the request and reply
 * alive for the connection's lifetime: let them go.
 */
function detachUpgradeRequest (socket: WebSocket): void {
  socket.removeAllListeners('error')
  const raw = (socket as unknown as { _socket?: { _httpMessage?: { detachSocket?: (s: unknown) => void } | null } })._socket
  raw?._httpMessage?.detachSocket?.(raw)
}

export class WebSocketSessions {
  readonly #sessions = new Set<WsConnection>()
  readonly #options: WebSocketSessionsOptions
  readonly #rateMessage: string
  readonly #onMessage: (this: Socket, data: RawData, isBinary: boolean) => void
  readonly #onClose: (this: Socket, code: number) => void
  readonly #onSocketError: (this: Socket, err: Error) => void
  #heartbeat: NodeJS.Timeout | undefined
  #pongDeadline: NodeJS.Timeout | undefined
  #drained: (() => void) | undefined

  constructor (options: WebSocketSessionsOptions) {
    this.#options = options
    const { messageRate, messageBurst } = options.policy
    this.#rateMessage = `over the message budget (${messageRate}/s, bursts of ${messageBurst}); slow down`
    // Socket listeners (`this` is the socket) that reach this registry.
    const sessions = this
    this.#onMessage = function onMessage (data, isBinary) { sessions.#receive(this[kConnection]!, data as Buffer, isBinary) }
    this.#onClose = function onClose (code) { sessions.#closed(this[kConnection]!, code) }
    this.#onSocketError = function onSocketError (err) { sessions.#protocolError(this[kConnection], err) }
  }

  /** Open connections on this instance. */
  get size (): number {
    return this.#sessions.size
  }

  /**
   * Takes over the open socket of a verified user, carried by `transport`: registers it and sends
   * `connection:ready`. `log` is the handshake request's (its lines carry the request id).
   */
  accept (ws: WebSocket, user: AuthUser, transport: WebSocketTransportName, log: FastifyBaseLogger): void {
    const socket = ws as Socket
    detachUpgradeRequest(socket)
    socket.on('error', this.#onSocketError)
    try {
      // Again: upgrades of the same user that passed the handshake at the same time may have filled its slots.
      this.#options.realtime.admit(user)
    } catch (err) {
      const shuttingDown = err instanceof AppError && err.code === ErrorCode.SERVICE_UNAVAILABLE
      socket.close(shuttingDown ? CloseCode.GOING_AWAY : CloseCode.POLICY, shuttingDown ? 'server shutting down' : 'too many connections for this user')
      return
    }
    const { realtime, policy, metrics } = this.#options
    const conn = new WsConnection(randomUUID(), user, socket, realtime.hub, policy, Date.now(), transport)
    socket[kConnection] = conn
    socket.on('message', this.#onMessage)
    socket.on('pong', onPong)
    socket.once('close', this.#onClose)
    this.#sessions.add(conn)
    realtime.hub.add(conn)
    metrics.open.inc()
    metrics.opened(transport).inc()
    log.info({ connectionId: conn.id, transport }, 'WebSocket session opened')
    armExpiry(conn)
    conn.send('connection:ready', { connectionId: conn.id, user: { sub: user.sub, scopes: user.scopes, exp: user.exp } })
  }

  /**
   * Heartbeat: one timer for all connections. Each sweep pings everyone; a connection that has not
   * answered when the pong timeout fires is terminated (so a dead peer goes within interval + timeout).
   */
  startHeartbeat (): void {
    const { pingIntervalMs, pongTimeoutMs } = this.#options
    const reapSilent = (): void => {
      for (const conn of this.#sessions) if (conn.awaitingPong) conn.terminate()
    }
    this.#heartbeat = setInterval(() => {
      for (const conn of this.#sessions) {
        conn.awaitingPong = true
        conn.ping()
      }
      this.#pongDeadline = setTimeout(reapSilent, pongTimeoutMs)
      this.#pongDeadline.unref()
    }, pingIntervalMs)
    this.#heartbeat.unref()
  }

  /** Shutdown: closes every connection with 1001 and resolves once all are gone, terminating those that do not answer in time. */
  async closeAll (): Promise<void> {
    clearInterval(this.#heartbeat)
    clearTimeout(this.#pongDeadline)
    if (this.#sessions.size === 0) return
    const allClosed = new Promise<void>((resolve) => { this.#drained = resolve })
    for (const conn of this.#sessions) conn.close(CloseCode.GOING_AWAY, 'server shutting down')
    const force = setTimeout(() => { for (const conn of this.#sessions) conn.terminate() }, this.#options.closeGraceMs)
    await allClosed
    clearTimeout(force)
  }

  #receive (conn: WsConnection, data: Buffer, isBinary: boolean): void {
    if (!conn.isOpen) return
    const { router } = this.#options
    const verdict = conn.admit(Date.now())
    if (verdict === 'accept') {
      // dispatch answers every failure itself; a rejection would be a bug in the router.
      router.dispatch(conn, data, isBinary).catch((err: unknown) => this.#options.log.error({ err }, 'WebSocket dispatch failed'))
      return
    }
    router.refuse(conn, data, WsErrorCode.RATE_LIMITED, this.#rateMessage)
    if (verdict === 'close') conn.close(CloseCode.RATE_LIMITED, 'message rate exceeded')
  }

  #protocolError (conn: WsConnection | undefined, err: Error): void {
    // ws closes the connection itself (1009 for an oversized frame, 1002/1007 for protocol errors):
    // record the code it sent, so ws_closes_total counts what the client saw rather than 1006.
    const code = (err as { code?: string }).code
    if (conn !== undefined) conn.closedWith ??= protocolCloseCode(code)
    this.#options.log.debug({ err: { message: err.message, code } }, 'WebSocket protocol error')
  }

  #closed (conn: WsConnection, code: number): void {
    const { metrics, log } = this.#options
    this.#sessions.delete(conn)
    metrics.open.dec()
    const closeCode = conn.closedWith ?? code
    metrics.closes(String(closeCode)).inc()
    log.info({ connectionId: conn.id, transport: conn.transport, code: closeCode }, 'WebSocket session closed')
    conn.release().catch((err: unknown) => log.error({ err }, 'removing a WebSocket connection from the hub failed'))
    if (this.#sessions.size === 0) this.#drained?.()
  }
}

function onPong (this: Socket): void {
  this[kConnection]!.awaitingPong = false
}
