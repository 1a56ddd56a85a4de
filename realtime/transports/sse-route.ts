// GET /sse?room=a&room=b: server-sent events on the WebSocket rooms (contract §5, README "SSE").
// Same handshake as /ws (Origin, token — `?access_token=` for EventSource — and the per-user limit),
// each room's join policy, then the rooms' sequenced messages as `text/event-stream`, resuming from
// `Last-Event-ID` out of the hub's history, with comment heartbeats; ended on shutdown.

import { randomUUID } from 'node:crypto'
import type { OutgoingHttpHeaders } from 'node:http'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, FastifySchema } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import { Counter, Gauge } from 'prom-client'
import type { AuthUser } from '../../auth/access-token.ts'
import { AppError, ErrorCode } from '../../core/errors.ts'
import { ROOM_NAME_PATTERN, type HubConnection, type HubPacket } from '../hub/room-hub.ts'
import { originCheck, type WsRouteOptions } from './ws-route.ts'

export interface SseRouteOptions extends WsRouteOptions {
  /** Interval of the `: ping` comment that keeps proxies from closing an idle stream. */
  heartbeatMs: number
  /** Unsent bytes a stream may hold; a client over it is closed and resumes with Last-Event-ID. */
  maxBufferedBytes: number
  /** Rooms one stream may subscribe to (as for a WebSocket connection). */
  maxRooms: number
}

/** Where a stream stands: the last `seq` sent per room. */
type Cursor = Map<string, number>

const PING = ': ping\n\n'
// Tells EventSource to wait 2 s before reconnecting after the stream ends (the default is ~3 s).
const RETRY = 'retry: 2000\n\n'
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

/**
 * The `id:` of an event. One room: its `seq` (contract §5). Several: a JSON object of the last `seq`
 * sent in each room, since EventSource sends back only the last id it saw and every room must resume.
 */
function idOf (cursor: Cursor, single: boolean): string {
  if (single) return String(cursor.values().next().value)
  return JSON.stringify(Object.fromEntries(cursor))
}

/** Reads `Last-Event-ID` back into a cursor for the requested rooms; 400 when it is not one of ours. */
function parseLastEventId (header: string, rooms: readonly string[]): Cursor {
  const cursor: Cursor = new Map()
  const bad = new AppError(ErrorCode.BAD_REQUEST, 'Last-Event-ID is not an id this stream sent (a room seq, or a JSON object of room → seq)')
  if (/^\d{1,15}$/.test(header)) {
    if (rooms.length !== 1) throw bad
    cursor.set(rooms[0]!, Number(header))
    return cursor
  }
  let parsed: unknown
  try { parsed = JSON.parse(header) } catch { throw bad }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw bad
  const entries = parsed as Record<string, unknown>
  for (const room of rooms) {
    const seq = Object.hasOwn(entries, room) ? entries[room] : undefined
    if (seq === undefined) continue
    if (!Number.isSafeInteger(seq) || (seq as number) < 0) throw bad
    cursor.set(room, seq as number)
  }
  return cursor
}

const SseQuery = Type.Object({
  room: Type.Array(Type.String({ pattern: ROOM_NAME_PATTERN }), { minItems: 1, description: 'rooms to subscribe to (repeat the parameter)' }),
  access_token: Type.Optional(Type.String({ description: 'the access token, for EventSource (which cannot send headers)' }))
})

/** One open stream, as the hub sees it. */
class SseStream implements HubConnection {
  readonly id = randomUUID()
  readonly rooms = new Set<string>()
  readonly user: AuthUser
  readonly cursor: Cursor = new Map()
  readonly #reply: FastifyReply
  readonly #single: boolean
  readonly #maxBuffered: number
  /** While replaying, live packets wait here so none is lost or doubled at the seam. */
  #pending: HubPacket[] | undefined = []
  #open = true

  readonly #onSlow: () => void

  constructor (user: AuthUser, reply: FastifyReply, single: boolean, maxBuffered: number, onSlow: () => void) {
    this.user = user
    this.#reply = reply
    this.#single = single
    this.#maxBuffered = maxBuffered
    this.#onSlow = onSlow
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

  /** Sends the replayed packets, then the live ones that arrived meanwhile; from now on, live. */
  startLive (replayed: readonly HubPacket[]): void {
    for (const packet of replayed) this.#send(packet)
    const pending = this.#pending ?? []
    this.#pending = undefined
    for (const packet of pending) this.#send(packet)
  }

  write (chunk: string): void {
    if (!this.#open) return
    if (this.#reply.raw.writableLength > this.#maxBuffered) {
      this.#onSlow()
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

const sseRoutes: FastifyPluginAsync<SseRouteOptions> = async (fastify, options) => {
  const hub = fastify.roomHub
  const streams = new Set<SseStream>()
  const checkOrigin = originCheck(options, 'event streams')
  const registers = [fastify.metrics]
  const open = new Gauge({ name: 'sse_streams', help: 'Open SSE streams', registers })
  const slowClosed = new Counter({ name: 'sse_slow_consumer_closes_total', help: 'SSE streams ended because the client stopped reading (over WS_MAX_BUFFERED_BYTES unsent)', registers })
  const onSlow = () => { slowClosed.inc() }

  async function authenticate (request: FastifyRequest): Promise<void> {
    const user = await fastify.authenticate(request, { allowQueryToken: true })
    // The same per-user bound as WebSockets: SSE streams are hub connections too.
    fastify.webSockets.admit(user)
  }

  const heartbeat = setInterval(() => { for (const stream of streams) stream.write(PING) }, options.heartbeatMs)
  heartbeat.unref()

  // Shutdown: end every stream so app.close() does not wait on them; clients reconnect elsewhere.
  fastify.addHook('preClose', async () => {
    clearInterval(heartbeat)
    for (const stream of streams) stream.end()
  })

  fastify.route<{ Querystring: Static<typeof SseQuery> }>({
    method: 'GET',
    url: '/sse',
    // The route authenticates itself (in the onRequest hook below) to accept ?access_token=.
    config: { auth: false },
    onRequest: [checkOrigin, authenticate],
    // A stream, not an HTTP API: kept out of the OpenAPI document like /ws (README "Server-sent events").
    schema: { querystring: SseQuery, hide: true } as FastifySchema,
    handler: async (request, reply) => {
      const user = request.user!
      const rooms = [...new Set(request.query.room)]
      if (rooms.length > options.maxRooms) throw new AppError(ErrorCode.BAD_REQUEST, `a stream may subscribe to at most ${options.maxRooms} rooms`)
      for (const room of rooms) {
        if (!hub.canJoin(user, room)) throw new AppError(ErrorCode.FORBIDDEN, `you may not join room "${room.slice(0, 64)}"`)
      }
      const lastEventId = request.headers['last-event-id']
      const resume = typeof lastEventId === 'string' && lastEventId !== '' ? parseLastEventId(lastEventId, rooms) : undefined

      const stream = new SseStream(user, reply, rooms.length === 1, options.maxBufferedBytes, onSlow)
      const raw = reply.raw
      // Listening before the joins: a client gone while they ran still leaves the hub (remove is idempotent).
      raw.on('close', () => {
        stream.markClosed()
        if (streams.delete(stream)) open.dec()
        hub.remove(stream).catch((err: unknown) => request.log.error({ err }, 'removing an SSE stream from the hub failed'))
      })
      raw.on('error', () => {})
      hub.add(stream)
      try {
        for (const room of rooms) await hub.join(stream, room)
      } catch (err) {
        await hub.remove(stream)
        throw err
      }

      // Written by hand from here: the compression and caching hooks never see this response.
      reply.hijack()
      raw.writeHead(200, {
        ...reply.getHeaders() as OutgoingHttpHeaders,
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        // nginx would otherwise buffer the stream.
        'x-accel-buffering': 'no'
      })
      if (!stream.isOpen) return
      streams.add(stream)
      open.inc()
      stream.write(RETRY)

      // Replay what the client missed, then go live (packets that arrived meanwhile were held back).
      const replayed: HubPacket[] = []
      const recovered: Record<string, boolean> = {}
      for (const [room, seq] of resume ?? []) {
        stream.cursor.set(room, seq)
        const missed = await hub.replay(room, seq)
        recovered[room] = missed !== undefined
        if (missed !== undefined) replayed.push(...missed)
      }
      stream.write(`event: stream:ready\ndata: ${JSON.stringify({ rooms, ...(resume === undefined ? {} : { recovered }) })}\n\n`)
      stream.startLive(replayed)
    }
  })
}

export default sseRoutes
