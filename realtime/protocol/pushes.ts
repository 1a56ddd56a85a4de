// What the server sends that a client did not define: the pushes (`connection:ready`, `room:message`,
// presence, SSE's `stream:ready`), the `ack` and `error` envelopes of its answers, and the WebSocket close
// codes, as TypeBox schemas and data. realtime/asyncapi.ts documents these very schemas. The router's
// errors and the event files' publishes are typed with their `Static<>`; what the hub and the transports
// build is held to them by test/realtime/asyncapi.test.ts, and the client's types by
// test/client/protocol.test.ts. A resource's feeds declare their own pushes (`fastify.realtime.feed`).

import { Type, type Static, type TComposite, type TObject, type TSchema } from '@sinclair/typebox'
import { ErrorCode } from '../../core/errors.ts'
import type { CloseCode } from '../transports/ws-connection.ts'
import { WsErrorCode } from './event-router.ts'
import { RoomName } from './rooms.ts'

/** A room's sequence number: 1 for its first numbered message, one more for each. */
export const Seq = Type.Integer({ minimum: 1, description: 'the room\'s sequence number of this message: a client that sees it jump has missed messages (a gap)' })

/** The members the hub adds to a numbered room push's data: the room and the message's `seq`. */
export const RoomSequence = Type.Object({ room: RoomName, seq: Seq })

/** The data of a numbered room push: what was published plus `room` and `seq`. */
export function roomPush<T extends TObject> (data: T, options: { description?: string } = {}): TComposite<[T, typeof RoomSequence]> {
  return Type.Composite([data, RoomSequence], options)
}

/** What server code publishes to a room for a push of data `T`: the hub adds `room` (and `seq` when numbered). */
export type Published<T> = Omit<T, 'room' | 'seq'>

export const ConnectionReady = Type.Object({
  connectionId: Type.String({ description: 'this connection\'s id (in the server\'s logs)' }),
  user: Type.Object({
    sub: Type.String({ description: 'the token\'s subject' }),
    scopes: Type.Array(Type.String()),
    exp: Type.Integer({ description: 'when the token expires (seconds since the epoch): the server closes with 4001 then' })
  })
}, { description: 'the first frame of every WebSocket connection: who it speaks for' })
export type ConnectionReady = Static<typeof ConnectionReady>

export const RoomMessage = roomPush(Type.Object({
  from: Type.String({ description: 'the publisher\'s subject' }),
  payload: Type.Unknown({ description: 'what the publisher sent, as it sent it' })
}), { description: 'a member\'s `room:publish`, to every other member' })
export type RoomMessage = Static<typeof RoomMessage>

export const PresenceChange = Type.Object({
  user: Type.String({ description: 'the subject who joined or left (first tab in, last tab out)' }),
  count: Type.Integer({ minimum: 0, description: 'users in the room now' }),
  room: RoomName
})
export type PresenceChange = Static<typeof PresenceChange>

export const TypingChange = Type.Object({ user: Type.String(), typing: Type.Boolean(), room: RoomName })
export type TypingChange = Static<typeof TypingChange>

export const FieldError = Type.Object({
  path: Type.String({ description: 'a JSON pointer into the frame, e.g. `/data/room`' }),
  message: Type.String()
})
export type FieldError = Static<typeof FieldError>

// Every code an error may carry: the router's own, and any AppError's (a handler may throw one).
export const errorCodes: readonly string[] = [...new Set([...Object.values(WsErrorCode), ...Object.values(ErrorCode)])]

export const ErrorData = Type.Object({
  // A string (a client must accept codes added later), listed for the document.
  code: Type.String({ enum: errorCodes, description: 'stable: clients branch on it' }),
  message: Type.String({ description: 'for people; never parse it' }),
  errors: Type.Optional(Type.Array(FieldError, { description: 'the field-level problems of a VALIDATION error' }))
})
export type ErrorData = Static<typeof ErrorData>

export const StreamReady = Type.Object({
  rooms: Type.Array(RoomName, { description: 'the rooms the stream delivers' }),
  recovered: Type.Optional(Type.Record(Type.String(), Type.Boolean(), {
    description: 'only when resuming with Last-Event-ID: per resumed room, true when every message after the id follows; false = refetch the room\'s state'
  }))
}, { description: 'the first event of every SSE stream, after its joins' })
export type StreamReady = Static<typeof StreamReady>

/** Where a push arrives: over WebSocket connections, SSE streams, or both. */
export type PushTransport = 'ws' | 'sse'

/** One event the server pushes: its data, where it goes and what a client should know. */
export interface PushDefinition {
  readonly event: string
  readonly data: TSchema
  readonly summary: string
  readonly description?: string
  readonly transports: readonly PushTransport[]
}

/**
 * The server's own pushes (a resource's feeds come on top, from `fastify.realtime.feeds`). Kept as
 * literal types, so a type can read each event's data schema (the client's types are checked against them).
 */
export const pushes = [
  { event: 'connection:ready', data: ConnectionReady, transports: ['ws'], summary: 'The connection is open and authenticated' },
  {
    event: 'room:message',
    data: RoomMessage,
    transports: ['ws', 'sse'],
    summary: 'A message published to a room',
    description: 'Numbered: kept in the room\'s history and replayed on resume (`room:join` with `since`, or SSE\'s Last-Event-ID), so a client drops a `seq` it has seen and treats a jump as a gap.'
  },
  { event: 'presence:join', data: PresenceChange, transports: ['ws'], summary: 'A user joined a room that tracks presence', description: 'Transient: not numbered, never replayed.' },
  { event: 'presence:leave', data: PresenceChange, transports: ['ws'], summary: 'A user left a room that tracks presence', description: 'Transient: not numbered, never replayed.' },
  { event: 'room:typing', data: TypingChange, transports: ['ws'], summary: 'A member started or stopped typing', description: 'Transient: not numbered, never replayed.' },
  {
    event: 'stream:ready',
    data: StreamReady,
    transports: ['sse'],
    summary: 'The SSE stream is open: the resumed rooms\' missed messages, then live ones, follow',
    description: 'Its `recovered` says, per room resumed from Last-Event-ID, whether nothing was missed.'
  },
  {
    event: 'error',
    data: ErrorData,
    transports: ['sse'],
    summary: 'The stream ends: its access token expired (code UNAUTHORIZED)',
    description: 'Reconnect with a fresh token and the last event id to resume.'
  }
] as const satisfies readonly PushDefinition[]

/** The `ack` envelope: the answer to a client frame that had an `id`. */
export function ackEnvelope (data: TSchema): TObject {
  return Type.Object({
    event: Type.Literal('ack'),
    id: Type.String({ description: 'the request\'s id' }),
    data
  })
}

/** The `error` envelope: a refused frame (with its `id` when it had one), or an error about the connection. */
export const ErrorEnvelope = Type.Object({
  event: Type.Literal('error'),
  id: Type.Optional(Type.String({ description: 'the refused request\'s id, when it had one and the frame was readable' })),
  data: ErrorData
})

/** A client frame: `{event, data?, id?}`. With an `id` the server answers exactly once: `ack` or `error`. */
export function requestEnvelope (event: string, data: TSchema): TObject {
  return Type.Object({
    event: Type.Literal(event),
    // An optional data schema (`ping`'s) stays optional in the envelope.
    data,
    id: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'asks for an ack; a retry after a lost ack re-sends the same id' }))
  })
}

/** A push's envelope: `{event, data}`. */
export function pushEnvelope (event: string, data: TSchema): TObject {
  return Type.Object({ event: Type.Literal(event), data })
}

/**
 * The WebSocket close codes a client may see, and what to do about each. Keyed by every code the
 * transport sends (ws-connection.ts `CloseCode`), so a new code cannot go undocumented, plus the ones
 * the WebSocket library sends on protocol errors.
 */
export const closeCodes: Readonly<Record<CloseCode | 1002 | 1007, string>> = {
  1001: 'the server is shutting down (or was refusing new sessions): reconnect, resuming with `since`',
  1002: 'a WebSocket protocol error',
  1007: 'a text frame that is not UTF-8',
  1008: 'policy: the connection could not keep up (its send buffer passed its bound in a room that closes slow consumers), or the user has all its sessions open',
  1009: 'a frame over the size limit',
  1011: 'reserved for an unexpected server error',
  4001: 'the access token expired: reconnect with a fresh one',
  4003: 'the message rate was exceeded again and again after RATE_LIMITED errors: slow down before reconnecting'
}
