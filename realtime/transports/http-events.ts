// POST /events?stream=<connectionId>: the client events of the WebSocket protocol over HTTP, for a
// client whose only connection is an SSE stream (a proxy or a policy refuses WebSocket upgrades). The
// body is a WebSocket frame's envelope `{event, data?, id?}`; it runs through the event router (the same
// event files, validation, authorization and handlers) with a context whose user is the request's token's
// and whose connection is the stream the query names: a publish needs the stream in the room and skips
// it on delivery, and the stream's events spend a WebSocket's message budget. The answer is the ack
// (200) or the router's error as problem+json. A stream's rooms are its `room` parameters, so joining or
// leaving over HTTP is a 400. The stream must be served by this instance: a client's requests go where
// its stream is (sticky routing), as for any streaming fallback; the room's members may be anywhere.

import { randomUUID } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import type { AuthUser } from '../../auth/access-token.ts'
import type { Config } from '../../core/config.ts'
import { AppError, ErrorCode, type FieldError } from '../../core/errors.ts'
import type { JoinResult, PresenceSnapshot, PublishOptions, RoomHub } from '../hub/room-hub.ts'
import { EventRouter, type EventDefinition, type RouterSession } from '../protocol/event-router.ts'
import { TokenBucket } from '../protocol/token-bucket.ts'
import { streamEvent, type SseStream } from './sse-stream.ts'

export interface HttpEventsOptions {
  /** The message budget (WS_MESSAGE_RATE, WS_MESSAGE_BURST) and the body limit (WS_MAX_PAYLOAD_BYTES). */
  ws: Config['ws']
}

const Envelope = Type.Object({
  event: Type.String({ minLength: 1, maxLength: 128, description: 'the event\'s name, as in a WebSocket frame' }),
  data: Type.Optional(Type.Unknown({ description: 'the event\'s data, checked against its schema' })),
  id: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'echoed in the ack; a room:publish retried with the same id is not sent twice' }))
}, { description: 'A client event: the envelope of a WebSocket frame' })

const Ack = Type.Object({
  event: Type.Literal('ack'),
  id: Type.Optional(Type.String({ description: 'the envelope\'s id, when it had one' })),
  data: Type.Unknown({ description: 'what the event\'s handler answered (its ack data over a WebSocket)' })
}, { description: 'The event was handled' })

const EventsQuery = Type.Object({
  stream: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'the connectionId your SSE stream announced in stream:ready: the connection the event acts through' }))
})

const NO_ROOMS: ReadonlySet<string> = new Set()
const KNOWN_CODES = new Set<string>(Object.values(ErrorCode))

/** One POST /events as the event router sees it: the token's user, acting through an SSE stream or through none. */
class HttpEventSession implements RouterSession {
  readonly app: FastifyInstance
  readonly user: AuthUser
  readonly hub: RoomHub
  readonly connectionId: string
  readonly #stream: SseStream | undefined
  /** The router's `error` envelope, when it refused. */
  refusal: string | undefined
  /** What the handler resolved to: the ack's data. */
  result: unknown

  constructor (app: FastifyInstance, user: AuthUser, stream: SseStream | undefined) {
    this.app = app
    this.user = user
    this.hub = app.realtime.hub
    // Without a stream, an id no connection has: a publish then skips no one.
    this.connectionId = stream?.id ?? randomUUID()
    this.#stream = stream
  }

  get rooms (): ReadonlySet<string> {
    return this.#stream?.rooms ?? NO_ROOMS
  }

  /** To this connection only: an event on the stream (none without one). */
  send (event: string, data?: unknown): void {
    this.#stream?.write(streamEvent(event, data ?? null))
  }

  sendText (text: string, event: string): void {
    if (event === 'error') this.refusal = text
  }

  async join (): Promise<JoinResult> {
    throw this.#roomsAreFixed()
  }

  async leave (): Promise<boolean> {
    throw this.#roomsAreFixed()
  }

  async publish (room: string, event: string, data: object, options: Omit<PublishOptions, 'except'> = {}): Promise<number | undefined> {
    return await this.hub.publish(room, event, data, { ...options, except: this.connectionId })
  }

  async presence (room: string): Promise<PresenceSnapshot> {
    return await this.hub.presence(this.user, room)
  }

  #roomsAreFixed (): AppError {
    return new AppError(ErrorCode.BAD_REQUEST, this.#stream === undefined
      ? 'joining or leaving a room needs a connection: open an SSE stream with room parameters, or a WebSocket'
      : 'an SSE stream\'s rooms are chosen by its room parameters: to change them, reconnect the stream with the rooms you want and Last-Event-ID, so nothing is missed')
  }
}

/**
 * The definitions, each keeping its handler's result on the session: the router acks only envelopes
 * with an id, and an HTTP request is answered with the result either way.
 */
function keepingResults (definitions: readonly EventDefinition[]): EventDefinition[] {
  return definitions.map((definition): EventDefinition => ({
    ...definition,
    authorize: definition.authorize?.bind(definition),
    async handle (data, ctx, message) {
      const result: unknown = await definition.handle(data, ctx, message)
      ;(ctx as HttpEventSession).result = result
      return result
    }
  }))
}

/** The router's `error` envelope as the AppError the error handler renders (its code and status). */
function refusalOf (text: string, throughStream: boolean): AppError {
  const { data } = JSON.parse(text) as { data: { code: string, message: string, errors?: FieldError[] } }
  const code = KNOWN_CODES.has(data.code) ? data.code as ErrorCode : ErrorCode.INTERNAL
  const hint = code === ErrorCode.FORBIDDEN && !throughStream ? '; without ?stream= this request is in no room' : ''
  return new AppError(code, `${data.message}${hint}`, { errors: data.errors })
}

async function httpEvents (fastify: FastifyInstance, options: HttpEventsOptions): Promise<void> {
  const { messageRate, messageBurst, maxPayloadBytes } = options.ws
  const router = new EventRouter(keepingResults(fastify.webSockets.definitions), {
    onHandlerError: (err, event) => fastify.log.error({ err, event }, 'event handler failed (POST /events)')
  })
  const budgets = new WeakMap<SseStream, TokenBucket>()
  const overBudget = `over this stream's message budget (${messageRate}/s, bursts of ${messageBurst}); slow down`
  const retryAfter = String(Math.max(1, Math.ceil(1 / messageRate)))

  /** The stream the query names: this instance's, open, of the same user. */
  function streamOf (connectionId: string | undefined, user: AuthUser): SseStream | undefined {
    if (connectionId === undefined) return undefined
    const stream = fastify.sseStreams.get(connectionId)
    if (stream === undefined || !stream.isOpen) {
      throw new AppError(ErrorCode.NOT_FOUND, 'no open SSE stream has this connectionId on this instance: it ended (reconnect and use the new stream\'s connectionId), or another instance serves it (send its events there)')
    }
    if (stream.user.sub !== user.sub) throw new AppError(ErrorCode.FORBIDDEN, 'this SSE stream belongs to another user')
    return stream
  }

  /** Counts one event against the stream's budget, as a WebSocket's frames count against its connection's. */
  function spend (stream: SseStream, now: number): void {
    let budget = budgets.get(stream)
    if (budget === undefined) budgets.set(stream, budget = new TokenBucket(messageRate, messageBurst, now))
    if (!budget.take(now)) throw new AppError(ErrorCode.RATE_LIMITED, overBudget, { headers: { 'retry-after': retryAfter } })
  }

  fastify.route<{ Querystring: Static<typeof EventsQuery>, Body: Static<typeof Envelope> }>({
    method: 'POST',
    url: '/events',
    bodyLimit: maxPayloadBytes,
    schema: {
      tags: ['realtime'],
      summary: 'Send a real-time event over HTTP',
      description: 'For a client whose only connection is an SSE stream: the WebSocket protocol\'s client events (room:publish, presence:list, ping…) with the same data, checks and acks. With `stream`, the event acts through that stream (same user, this instance): a publish needs the stream in the room and is not delivered back to it. room:join and room:leave are 400: a stream\'s rooms are its room parameters.',
      querystring: EventsQuery,
      body: Envelope,
      response: { 200: Ack }
    },
    handler: async (request) => {
      const user = request.user!
      const stream = streamOf(request.query.stream, user)
      if (stream !== undefined) spend(stream, Date.now())
      const session = new HttpEventSession(fastify, user, stream)
      await router.dispatch(session, JSON.stringify(request.body))
      if (session.refusal !== undefined) throw refusalOf(session.refusal, stream !== undefined)
      const { id } = request.body
      return id === undefined ? { event: 'ack' as const, data: session.result ?? null } : { event: 'ack' as const, id, data: session.result ?? null }
    }
  })
}

export default fp(httpEvents, { name: 'keel-http-events', dependencies: ['keel-realtime', 'keel-auth', 'keel-sse', 'keel-websocket'] })
