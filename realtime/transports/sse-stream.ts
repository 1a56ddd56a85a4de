// One SSE stream as the hub sees it (the SSE counterpart of ws-connection.ts): the rooms' sequenced
// messages framed as `text/event-stream` events whose `id:` lets EventSource resume, held back until
// the stream is live, never doubled at the seam between replay and live delivery, and ended when the
// client stops reading (its unsent data over the bound) or its token expires.

import { randomUUID } from 'node:crypto'
import type { FastifyReply } from 'fastify'
import type { AuthUser } from '../../auth/access-token.ts'
import { ErrorCode } from '../../core/errors.ts'
import type { HubPacket, RoomHub } from '../hub/room-hub.ts'
import { HubSession } from './session.ts'

/** Where a stream stands: the last `seq` sent per room. */
export type Cursor = Map<string, number>

export const PING = ': ping\n\n'
/** Per packet, its `event:` and `data:` lines: built once whatever the number of SSE recipients. */
const frames = new WeakMap<HubPacket, string>()

/** The `event:`/`data:` lines of a hub packet; `data` is the envelope's data, cut out of its JSON text. */
function frameOf (packet: HubPacket): string {
  let frame = frames.get(packet)
  if (frame === undefined) {
    // The hub writes `{"event":<event>,"data":<data>}`: the data starts after the event's JSON string.
    const data = packet.text.slice('{"event":'.length + JSON.stringify(packet.event).length + ',"data":'.length, -1)
    frame = `event: ${packet.event}\ndata: ${data}\n\n`
    frames.set(packet, frame)
  }
  return frame
}

/** An event of the stream itself (`stream:ready`, `error`), not of a room. */
export function streamEvent (event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
}

/**
 * The `id:` of an event. One room: its `seq`. Several: a JSON object of the last `seq` sent in each
 * room, since EventSource sends back only the last id it saw and every room must resume.
 */
function idOf (cursor: Cursor, single: boolean): string {
  if (single) return String(cursor.values().next().value)
  return JSON.stringify(Object.fromEntries(cursor))
}

export interface SseStreamOptions {
  /** Unsent bytes the stream may hold; over it the stream is ended (the client resumes with Last-Event-ID). */
  maxBufferedBytes: number
  /** Called when the stream is ended for that (metrics). */
  onSlow: () => void
}

export class SseStream extends HubSession {
  readonly cursor: Cursor = new Map()
  readonly #reply: FastifyReply
  readonly #single: boolean
  readonly #options: SseStreamOptions
  /** Until the stream is live, packets wait here so none is lost or doubled at the seam. */
  #pending: HubPacket[] | undefined = []
  #open = true

  constructor (user: AuthUser, hub: RoomHub, reply: FastifyReply, rooms: number, options: SseStreamOptions) {
    super(randomUUID(), user, hub)
    this.#reply = reply
    this.#single = rooms === 1
    this.#options = options
  }

  get isOpen (): boolean { return this.#open }

  deliver (packet: HubPacket): boolean {
    // Only the rooms' sequenced messages: presence and other transient events are for WebSockets.
    if (!this.#open || packet.target !== 'room' || packet.seq === undefined) return false
    if (this.#pending !== undefined) {
      this.#pending.push(packet)
      return true
    }
    return this.#send(packet)
  }

  /** Sends the packets held back so far (a replay first, then live ones), each once; from now on, live. */
  startLive (): void {
    const pending = this.#pending ?? []
    this.#pending = undefined
    for (const packet of pending) this.#send(packet)
  }

  write (chunk: string): void {
    if (!this.#open) return
    if (this.#reply.raw.writableLength > this.#options.maxBufferedBytes) {
      this.#options.onSlow()
      this.end()
      return
    }
    this.#reply.raw.write(chunk)
  }

  end (): void {
    if (!this.#open) return
    this.#open = false
    this.#reply.raw.end()
  }

  /** Tells the client why (an `error` event), then ends the stream. */
  expire (): void {
    this.write(streamEvent('error', { code: ErrorCode.UNAUTHORIZED, message: 'access token expired' }))
    this.end()
  }

  markClosed (): void { this.#open = false }

  #send (packet: HubPacket): boolean {
    const room = packet.to
    // A packet at or before the cursor was already sent (replay and live overlap at the seam).
    if (packet.seq! <= (this.cursor.get(room) ?? 0)) return false
    this.cursor.set(room, packet.seq!)
    this.write(`id: ${idOf(this.cursor, this.#single)}\n${frameOf(packet)}`)
    return this.#open
  }
}
