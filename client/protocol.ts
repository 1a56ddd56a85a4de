// The wire protocol as the client sees it: what the server pushes, what a client may ask and what the
// answer carries. Types only. An app adds its own events to `KeelPushes` and `KeelRequests` by
// declaration merging; nothing here knows an app's resources.

/** The user a connection speaks for, as `connection:ready` reports it. */
export interface ReadyData {
  connectionId: string
  user: { sub: string, scopes: string[], exp: number }
}

/**
 * The data of a numbered room push: what the server published plus the room and its `seq`. The
 * client drops a repeated `seq` and reports a missing run as `gap`. E.g. an app's change feed:
 * `'items:changed': RoomPush<{ id: string, op: 'created' | 'updated' | 'deleted' }>`.
 */
export type RoomPush<T extends object> = T & { room: string, seq: number }

export interface RoomMessage { room: string, from: string, payload: unknown, seq: number }
export interface PresenceChange { room: string, user: string, count: number }
export interface TypingChange { room: string, user: string, typing: boolean }
export interface PresenceSnapshot { room: string, users: string[], count: number }

export interface JoinAck {
  room: string
  /** False when this connection was already a member. */
  joined: boolean
  /** The room's latest `seq` when the join completed (0 before any message). */
  seq: number
  /** Only when `since` was sent: true = every message after `since` came before this ack; false = refetch. */
  recovered?: boolean
}
export interface LeaveAck { room: string, left: boolean }
export interface PublishAck { room: string, seq: number }

export interface FieldError { path: string, message: string }

/** The data of an `error` frame: the answer to a refused request, or about a frame without an `id`. */
export interface ServerErrorData {
  /** Stable: `VALIDATION`, `FORBIDDEN`, `RATE_LIMITED`, `INVALID_MESSAGE`… or an app's own code. */
  code: string
  message: string
  /** Field-level problems of a `VALIDATION` error. */
  errors?: FieldError[]
}

/** What the server pushes, by event name. Data with `room` and `seq` is sequenced (deduplicated). */
export interface KeelPushes {
  'room:message': RoomMessage
  'presence:join': PresenceChange
  'presence:leave': PresenceChange
  'room:typing': TypingChange
}

/** What a client may ask, by event name: the `data` it sends and the `data` of the ack. */
export interface KeelRequests {
  'room:join': { data: { room: string, since?: number }, ack: JoinAck }
  'room:leave': { data: { room: string }, ack: LeaveAck }
  'room:publish': { data: { room: string, payload: unknown }, ack: PublishAck }
  'room:typing': { data: { room: string, typing: boolean }, ack: { room: string } }
  'presence:list': { data: { room: string }, ack: PresenceSnapshot }
  ping: { data: unknown, ack: { time: number } }
}

export type RequestName = keyof KeelRequests & string
export type RequestData<E extends RequestName> = KeelRequests[E]['data']
export type AckData<E extends RequestName> = KeelRequests[E]['ack']
