// One WebSocket client as the hub and the event router see it: its sends (room fan-out written as
// one pre-built frame shared by every recipient), the slow-consumer bound on its send buffer, and its
// message budget. Holds only the socket, the user and small counters — never the upgrade request.

import type { Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { WebSocket } from 'ws'
import type { AuthUser } from '../../auth/access-token.ts'
import type { EventContext, RouterSession } from '../protocol/event-router.ts'
import type { HubPacket, PresenceSnapshot, PublishOptions, RoomHub, SlowConsumerPolicy } from '../hub/room-hub.ts'
import { TokenBucket } from '../protocol/token-bucket.ts'
import { HubSession } from './session.ts'

/** Close codes of the protocol (README "WebSocket"). */
export const CloseCode = {
  GOING_AWAY: 1001,
  POLICY: 1008,
  TOO_BIG: 1009,
  INTERNAL: 1011,
  TOKEN_EXPIRED: 4001,
  RATE_LIMITED: 4003
} as const
export type CloseCode = typeof CloseCode[keyof typeof CloseCode]

/** What carries a connection: an HTTP/1.1 upgrade, or an HTTP/2 stream opened by an extended CONNECT. */
export type WebSocketTransportName = 'h1' | 'h2'

/** WebSocket readyState OPEN (the spec's constant). */
const OPEN = 1

/** Limits, accounting and app services shared by every connection of one server (one object, not one per connection). */
export interface ConnectionPolicy {
  /** What event handlers reach as `ctx.app`: the app's decorators (stores, upstream clients…). */
  readonly app: FastifyInstance
  readonly maxBufferedBytes: number
  readonly messageRate: number
  readonly messageBurst: number
  /** Messages refused for the rate, without the budget refilling in between, before closing 4003. */
  readonly rateCloseAfter: number
  readonly onSent: (event: string) => void
  readonly onSlowConsumer: (action: SlowConsumerPolicy) => void
}

/** The verdict on one inbound message against the connection's budget. */
export type Admission = 'accept' | 'refuse' | 'close'

/** An RFC 6455 server frame (FIN, text, unmasked) around `text`, built in one allocation. */
export function textFrame (text: string): Buffer {
  const length = Buffer.byteLength(text)
  const header = length < 126 ? 2 : length < 65536 ? 4 : 10
  const frame = Buffer.allocUnsafe(header + length)
  frame[0] = 0x81
  if (header === 2) {
    frame[1] = length
  } else if (header === 4) {
    frame[1] = 126
    frame.writeUInt16BE(length, 2)
  } else {
    frame[1] = 127
    frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2)
    frame.writeUInt32BE(length >>> 0, 6)
  }
  frame.write(text, header, 'utf8')
  return frame
}

/** The parts of ws's internals the shared-frame write relies on; checked on every use, with a fallback. */
interface WsInternals { _socket?: Socket, _sender?: { _state?: unknown } }

/** Sockets corked by this tick's shared writes, uncorked together once the tick's work is done. */
const corked: Socket[] = []
function uncorkAll (): void {
  for (const raw of corked) raw.uncork()
  corked.length = 0
}

/**
 * Writes a packet's shared frame straight to the socket when ws's sender is idle (state DEFAULT = 0:
 * nothing queued behind compression or a Blob read), so ws does not frame it again per recipient.
 * Otherwise `send` keeps ws's ordering. Bytes written either way count in `bufferedAmount`.
 * The socket stays corked until the current tick ends, so every message one tick fans out to it
 * (several publishes read in one chunk) leaves in one write: the system call, not the framing, is
 * most of a delivery's cost. Everything written to the socket, ws's own sends too, keeps its order.
 */
function writeShared (socket: WebSocket, packet: HubPacket): void {
  const internals = socket as unknown as WsInternals
  const raw = internals._socket
  if (internals._sender?._state === 0 && raw !== undefined && raw.writable) {
    packet.wsFrame ??= textFrame(packet.text)
    if (raw.writableCorked === 0) {
      raw.cork()
      if (corked.push(raw) === 1) process.nextTick(uncorkAll)
    }
    raw.write(packet.wsFrame)
  } else {
    socket.send(packet.text)
  }
}

export class WsConnection extends HubSession implements RouterSession, EventContext {
  /** Set by the heartbeat when it pings, cleared by the pong. */
  awaitingPong = false
  /** The code the server closed with, when it did (metrics); undefined when the peer closed. */
  closedWith: number | undefined
  readonly transport: WebSocketTransportName
  readonly #socket: WebSocket
  readonly #policy: ConnectionPolicy
  readonly #bucket: TokenBucket
  #strikes = 0

  constructor (id: string, user: AuthUser, socket: WebSocket, hub: RoomHub, policy: ConnectionPolicy, now: number, transport: WebSocketTransportName = 'h1') {
    super(id, user, hub)
    this.transport = transport
    this.#socket = socket
    this.#policy = policy
    this.#bucket = new TokenBucket(policy.messageRate, policy.messageBurst, now)
  }

  get connectionId (): string {
    return this.id
  }

  get app (): FastifyInstance {
    return this.#policy.app
  }

  get isOpen (): boolean {
    return this.#socket.readyState === OPEN
  }

  /** Counts one inbound message against the budget. Refusals accumulate until the budget refills completely. */
  admit (now: number): Admission {
    if (this.#strikes > 0 && this.#bucket.isFull(now)) this.#strikes = 0
    if (this.#bucket.take(now)) return 'accept'
    this.#strikes++
    return this.#strikes >= this.#policy.rateCloseAfter ? 'close' : 'refuse'
  }

  send (event: string, data?: unknown): void {
    this.sendText(JSON.stringify(data === undefined ? { event } : { event, data }), event)
  }

  sendText (text: string, event: string): void {
    if (this.#socket.readyState !== OPEN) return
    this.#socket.send(text)
    this.#policy.onSent(event)
  }

  deliver (packet: HubPacket, policy: SlowConsumerPolicy): boolean {
    const socket = this.#socket
    if (socket.readyState !== OPEN) return false
    if (socket.bufferedAmount > this.#policy.maxBufferedBytes) {
      this.#policy.onSlowConsumer(policy)
      if (policy === 'close') this.close(CloseCode.POLICY, 'slow consumer: send buffer over its bound')
      return false
    }
    writeShared(socket, packet)
    return true
  }

  async leave (room: string): Promise<boolean> {
    return await this.hub.leave(this, room)
  }

  async publish (room: string, event: string, data: object, options: Omit<PublishOptions, 'except'> = {}): Promise<number | undefined> {
    return await this.hub.publish(room, event, data, { ...options, except: this.id })
  }

  async presence (room: string): Promise<PresenceSnapshot> {
    return await this.hub.presence(this.user, room)
  }

  ping (): void {
    if (this.#socket.readyState === OPEN) this.#socket.ping()
  }

  /** Starts the closing handshake; ws destroys the socket if the peer does not answer within its closeTimeout. */
  close (code: CloseCode, reason: string): void {
    if (this.#socket.readyState !== OPEN) return
    this.closedWith = code
    this.#socket.close(code, reason)
  }

  expire (): void {
    this.close(CloseCode.TOKEN_EXPIRED, 'access token expired')
  }

  /** Drops the connection without a handshake (dead peer, or one that ignored the close). */
  terminate (): void {
    this.closedWith ??= 1006
    this.#socket.terminate()
  }
}
