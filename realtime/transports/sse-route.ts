// The SSE transport, GET /sse?room=a&room=b (README "Server-sent events"): the same stream handshake
// as /ws (handshake.ts: Origin, token — `?access_token=` for EventSource — and admission), each room's
// join policy, then the rooms' sequenced messages as `text/event-stream` (sse-stream.ts), resuming from
// `Last-Event-ID` out of the hub's history, with comment heartbeats; ended at its token's expiry and on
// shutdown. `stream:ready` names the stream's connectionId, by which POST /events (http-events.ts) finds
// it in `fastify.sseStreams` to send events on its behalf.

import type { OutgoingHttpHeaders } from 'node:http'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifySchema } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import type { Config } from '../../core/config.ts'
import { AppError, ErrorCode } from '../../core/errors.ts'
import { ROOM_NAME_PATTERN } from '../hub/room-hub.ts'
import { sseMetrics } from '../metrics.ts'
import { streamHandshake, type HandshakeOptions } from './handshake.ts'
import { PING, SseStream, streamEvent, type Cursor } from './sse-stream.ts'
import { armExpiry } from './session.ts'

export interface SseTransportOptions extends HandshakeOptions {
  sse: Config['sse']
}

/** The live streams of this instance. */
export interface SseStreams {
  /** The open stream with this connectionId (the one its `stream:ready` named), on this instance. */
  get: (connectionId: string) => SseStream | undefined
  readonly size: number
}

declare module 'fastify' {
  interface FastifyInstance {
    sseStreams: SseStreams
  }
}

// Tells EventSource to wait 2 s before reconnecting after the stream ends (the default is ~3 s).
const RETRY = 'retry: 2000\n\n'

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

/**
 * Joins the rooms; a room the client resumes (`Last-Event-ID`) replays what it missed into the stream's
 * held-back packets. Resolves with each resumed room's `recovered`: false when the history no longer
 * reaches back or the id is ahead of the room (a restart without Redis) — the stream then carries on
 * from the room's current seq, so live messages are never mistaken for ones already sent.
 */
async function joinAll (stream: SseStream, rooms: readonly string[], resume: Cursor | undefined): Promise<Record<string, boolean> | undefined> {
  const recovered: Record<string, boolean> = {}
  for (const room of rooms) {
    // The client left: joining the rest would only be undone.
    if (!stream.isOpen) break
    const since = resume?.get(room)
    const joined = await stream.join(room, { since })
    if (since === undefined) continue
    recovered[room] = joined.recovered === true
    stream.cursor.set(room, joined.recovered === true ? since : joined.seq)
  }
  return resume === undefined ? undefined : recovered
}

const SseQuery = Type.Object({
  room: Type.Array(Type.String({ pattern: ROOM_NAME_PATTERN }), { minItems: 1, description: 'rooms to subscribe to (repeat the parameter)' }),
  access_token: Type.Optional(Type.String({ description: 'the access token, for EventSource (which cannot send headers)' }))
})

async function sseTransport (fastify: FastifyInstance, options: SseTransportOptions): Promise<void> {
  const { hub } = fastify.realtime
  const limits = options.sse
  const streams = new Map<string, SseStream>()
  const metrics = sseMetrics(fastify.metrics)
  const streamOptions = { maxBufferedBytes: limits.maxBufferedBytes, onSlow: () => { metrics.slowClosed.inc() } }

  const heartbeat = setInterval(() => { for (const stream of streams.values()) stream.write(PING) }, limits.heartbeatMs)
  heartbeat.unref()

  // Shutdown: end every stream so app.close() does not wait on them; clients reconnect elsewhere.
  fastify.addHook('preClose', async () => {
    clearInterval(heartbeat)
    for (const stream of streams.values()) stream.end()
  })

  fastify.decorate('sseStreams', {
    get: (connectionId: string) => streams.get(connectionId),
    get size () { return streams.size }
  })

  fastify.route<{ Querystring: Static<typeof SseQuery> }>({
    method: 'GET',
    url: '/sse',
    // The route authenticates itself (in the handshake hooks) to accept ?access_token=.
    config: { auth: false },
    ...streamHandshake(fastify, options, 'event streams'),
    // A stream, not an HTTP API: kept out of the OpenAPI document like /ws (README "Server-sent events").
    schema: { querystring: SseQuery, hide: true } as FastifySchema,
    handler: async (request, reply) => {
      const user = request.user!
      const rooms = [...new Set(request.query.room)]
      if (rooms.length > limits.maxRooms) throw new AppError(ErrorCode.BAD_REQUEST, `a stream may subscribe to at most ${limits.maxRooms} rooms`)
      for (const room of rooms) {
        if (!hub.canJoin(user, room)) throw new AppError(ErrorCode.FORBIDDEN, `you may not join room "${room.slice(0, 64)}"`)
      }
      const lastEventId = request.headers['last-event-id']
      const resume = typeof lastEventId === 'string' && lastEventId !== '' ? parseLastEventId(lastEventId, rooms) : undefined

      // Again, with nothing awaited until the stream counts (hub.add): the same user's streams that passed the handshake meanwhile may have filled its slots.
      fastify.realtime.admit(user)
      const stream = new SseStream(user, hub, reply, rooms.length, streamOptions)
      const raw = reply.raw
      // Listening before the joins: a client gone while they run leaves the hub once they have settled.
      raw.on('close', () => {
        stream.markClosed()
        if (streams.delete(stream.id)) metrics.open.dec()
        stream.release().catch((err: unknown) => request.log.error({ err }, 'removing an SSE stream from the hub failed'))
      })
      raw.on('error', () => {})
      hub.add(stream)
      let recovered: Record<string, boolean> | undefined
      try {
        recovered = await joinAll(stream, rooms, resume)
      } catch (err) {
        await stream.release()
        throw err
      }

      // Written by hand from here: the compression and caching hooks never see this response.
      reply.hijack()
      if (!stream.isOpen) return
      raw.writeHead(200, {
        ...reply.getHeaders() as OutgoingHttpHeaders,
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        // nginx would otherwise buffer the stream.
        'x-accel-buffering': 'no'
      })
      streams.set(stream.id, stream)
      metrics.open.inc()
      stream.write(RETRY)
      // Ends with an `error` event at the token's exp, as a WebSocket closes with 4001.
      armExpiry(stream)
      stream.write(streamEvent('stream:ready', { connectionId: stream.id, rooms, ...(recovered === undefined ? {} : { recovered }) }))
      // What the client missed, then what arrived meanwhile (both held back until now), then live.
      stream.startLive()
    }
  })
}

export default fp(sseTransport, { name: 'keel-sse', dependencies: ['keel-realtime', 'keel-auth'] })
