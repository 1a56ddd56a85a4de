// The WebSocket event protocol, free of any transport (handlers see the app only as `ctx.app`): parses a client frame's envelope
// `{event, data?, id?}`, finds the event's definition, validates `data` with its compiled TypeBox
// schema, checks its authorization, runs its handler, and answers exactly once — `ack` or `error` —
// when the client gave an `id`. No error here closes the connection; limits live in the transport,
// except one every event shares: how deeply its data may nest (see MAX_DATA_DEPTH). Each frame is a
// span (`ws room:publish`) with its room and outcome, recorded while tracing runs.

import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api'
import { type Static, type TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import type { AuthUser } from '../../auth/access-token.ts'
import { AppError, ErrorCode } from '../../core/errors.ts'
import type { JoinOptions, JoinResult, PresenceSnapshot, PublishOptions, RoomHub } from '../hub/room-hub.ts'
import type { ErrorData, FieldError } from './pushes.ts'

/** The `code` of an `error` event. Stable: clients branch on it. */
export const WsErrorCode = {
  /** The frame is not JSON, or not an envelope `{event: string, data?, id?: string}`. */
  INVALID_MESSAGE: 'INVALID_MESSAGE',
  UNKNOWN_EVENT: 'UNKNOWN_EVENT',
  VALIDATION: ErrorCode.VALIDATION,
  FORBIDDEN: ErrorCode.FORBIDDEN,
  RATE_LIMITED: ErrorCode.RATE_LIMITED,
  /** The handler failed unexpectedly; details are logged, never sent. */
  INTERNAL: ErrorCode.INTERNAL
} as const
export type WsErrorCode = typeof WsErrorCode[keyof typeof WsErrorCode]
/** A handler may also throw any `AppError`; its code is sent as is. */
export type ErrorEventCode = WsErrorCode | ErrorCode

/** What an event handler can do: who is asking, the operations on this connection, and the app's services. */
export interface EventContext {
  /** The app (the Fastify instance): its decorators are the services a handler may use (`ctx.app.items`…). */
  readonly app: FastifyInstance
  readonly connectionId: string
  readonly user: AuthUser
  /** The rooms this connection is in. */
  readonly rooms: ReadonlySet<string>
  readonly hub: RoomHub
  /** Sends `{event, data}` to this connection only. */
  send: (event: string, data?: unknown) => void
  /** Joins a room the room policies let this user into (replaying after `since`); throws FORBIDDEN otherwise. */
  join: (room: string, options?: JoinOptions) => Promise<JoinResult>
  leave: (room: string) => Promise<boolean>
  /** Publishes to a room's members except this connection; resolves to the message's `seq`. */
  publish: (room: string, event: string, data: object, options?: Omit<PublishOptions, 'except'>) => Promise<number | undefined>
  /** Who is in a room this user may join; throws FORBIDDEN otherwise. */
  presence: (room: string) => Promise<PresenceSnapshot>
}

/** About the frame being handled. */
export interface MessageInfo {
  /** The client's envelope `id`, when it asked for an ack (a client retrying a lost ack sends the same id). */
  readonly id: string | undefined
}

/** The connection as the router needs it: a context plus a way to send an already-serialized reply. */
export interface RouterSession extends EventContext {
  /** Sends a serialized envelope; `event` names it for accounting (`ack`, `error`…). */
  sendText: (text: string, event: string) => void
}

/**
 * One event a client may send: the schema of its `data`, the schema of its ack's `data`, an optional
 * authorization, its handler, and the words the AsyncAPI document shows for it (realtime/asyncapi.ts).
 */
export interface EventDefinition<S extends TSchema = TSchema, A extends TSchema = TSchema> {
  readonly event: string
  readonly data: S
  /** The `data` of the `ack` the handler's result becomes: the handler must return this type. */
  readonly ack: A
  /** One line for the document; the first line of `description` otherwise. */
  readonly summary?: string
  readonly description?: string
  // Method syntax on purpose: a definition for one schema must be usable where any definition is expected.
  /** False → `FORBIDDEN` (the handler does not run). Throwing an `AppError` sends its code instead. */
  authorize?(data: Static<S>, ctx: EventContext): boolean | Promise<boolean>
  /** What it resolves to is the `ack`'s `data`. Throw an `AppError` to answer with its code and message. */
  handle(data: Static<S>, ctx: EventContext, message: MessageInfo): Static<A> | Promise<Static<A>>
}

/** Declares an event with its types inferred from its schemas. An event file default-exports this. */
export function defineEvent<S extends TSchema, A extends TSchema> (definition: EventDefinition<S, A>): EventDefinition<S, A> {
  return definition
}

const isSchema = (value: unknown): boolean => typeof value === 'object' && value !== null

/** True when `value` has the shape of an `EventDefinition` (used when loading event files). */
export function isEventDefinition (value: unknown): value is EventDefinition {
  const v = value as Partial<EventDefinition> | null
  return typeof v === 'object' && v !== null && typeof v.event === 'string' && v.event !== '' &&
    isSchema(v.data) && isSchema(v.ack) && typeof v.handle === 'function' &&
    (v.authorize === undefined || typeof v.authorize === 'function') &&
    (v.summary === undefined || typeof v.summary === 'string') && (v.description === undefined || typeof v.description === 'string')
}

/** Module files of an events directory: `*.ts`/`*.js`, not tests, declarations or `_`-prefixed helpers. */
const EVENT_FILE = /^[^_.][^/]*(?<!\.d|\.test)\.(ts|js|mjs)$/

/**
 * Loads every event file of `dir` (sorted by name): each default-exports `defineEvent({...})`.
 * Adding an event is adding a file; a file with another default export stops the start, naming it.
 */
export async function loadEventDirectory (dir: string): Promise<EventDefinition[]> {
  const files = (await readdir(dir)).filter((name) => EVENT_FILE.test(name)).sort()
  const definitions: EventDefinition[] = []
  for (const file of files) {
    const module = await import(pathToFileURL(join(dir, file)).href) as { default?: unknown }
    if (!isEventDefinition(module.default)) throw new TypeError(`${join(dir, file)}: the default export must be defineEvent({ event, data, ack, handle })`)
    definitions.push(module.default)
  }
  return definitions
}

export interface EventRouterOptions {
  /** A handler threw something other than an `AppError`: log it (the client gets `INTERNAL`). */
  onHandlerError?: (err: unknown, event: string) => void
  /** Each inbound frame, by event name (`(invalid)` / `(unknown)` otherwise), for metrics. */
  onReceived?: (event: string) => void
  /** Each error sent, by code, for metrics. */
  onErrorSent?: (code: ErrorEventCode) => void
}

interface CompiledEvent {
  readonly definition: EventDefinition
  readonly check: TypeCheck<TSchema>
}

interface Envelope { event: string, data: unknown, id: string | undefined }

const MAX_EVENT_NAME = 128
const MAX_ID = 128
const MAX_REPORTED_ERRORS = 10
// JSON.parse reads any nesting, but JSON.stringify and recursive schema checks recurse per level: a
// 10 KB frame of 5,000 nested arrays overflows the stack when a handler re-serializes it. Real event
// data nests a handful of levels; 32 leaves room for documents and costs nothing to check.
export const MAX_DATA_DEPTH = 32
export const INVALID_EVENT_LABEL = '(invalid)'
export const UNKNOWN_EVENT_LABEL = '(unknown)'

const tracer = trace.getTracer('keel.realtime')

/** Names the frame's span after its event, with the room its data names (`data.room`), if any. */
function describeSpan (span: Span, event: string, data: unknown): void {
  if (!span.isRecording()) return
  span.updateName(`ws ${event}`)
  span.setAttribute('keel.event', event)
  const room = (data as { room?: unknown } | null)?.room
  if (typeof room === 'string') span.setAttribute('keel.room', room)
}

/** The envelope's fields, or a reason it is not one. */
function readEnvelope (raw: string): Envelope | { problem: string, id?: string } {
  let value: unknown
  try {
    value = JSON.parse(raw)
  } catch {
    return { problem: 'the frame is not valid JSON' }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { problem: 'the frame must be a JSON object {event, data?, id?}' }
  const { event, data, id } = value as Record<string, unknown>
  if (id !== undefined && (typeof id !== 'string' || id === '' || id.length > MAX_ID)) {
    return { problem: `id must be a non-empty string of at most ${MAX_ID} characters` }
  }
  if (typeof event !== 'string' || event === '' || event.length > MAX_EVENT_NAME) {
    return { problem: `event must be a non-empty string of at most ${MAX_EVENT_NAME} characters`, id }
  }
  return { event, data, id }
}

/** Whether `value` nests arrays or objects more than `levels` deep (it looks no deeper than that). */
function nestsDeeper (value: unknown, levels: number): boolean {
  if (typeof value !== 'object' || value === null) return false
  if (levels === 0) return true
  if (Array.isArray(value)) {
    for (const item of value) if (nestsDeeper(item, levels - 1)) return true
    return false
  }
  for (const key in value) if (nestsDeeper((value as Record<string, unknown>)[key], levels - 1)) return true
  return false
}

function errorText (code: ErrorEventCode, message: string, id: string | undefined, errors?: FieldError[]): string {
  const data: ErrorData = errors === undefined ? { code, message } : { code, message, errors }
  return JSON.stringify(id === undefined ? { event: 'error', data } : { event: 'error', id, data })
}

export class EventRouter {
  readonly #events = new Map<string, CompiledEvent>()
  readonly #options: EventRouterOptions

  constructor (definitions: readonly EventDefinition[], options: EventRouterOptions = {}) {
    for (const definition of definitions) {
      if (!isEventDefinition(definition)) throw new TypeError('an event definition needs event (string), data and ack (TypeBox schemas) and handle (a function)')
      if (this.#events.has(definition.event)) throw new Error(`the WebSocket event "${definition.event}" is defined twice`)
      this.#events.set(definition.event, { definition, check: TypeCompiler.Compile(definition.data) })
    }
    this.#options = options
  }

  /** The events clients may send, sorted. */
  get events (): string[] {
    return [...this.#events.keys()].sort()
  }

  /**
   * Handles one client frame inside its span (see `#handle`): `keel.outcome` is `ok` or the error code
   * sent. Each frame starts a trace of its own: a connection lives for hours, its frames are requests.
   */
  dispatch (session: RouterSession, raw: Buffer | string, isBinary = false): Promise<void> {
    const options = { kind: SpanKind.SERVER, root: true, attributes: { 'keel.connection.id': session.connectionId, 'keel.outcome': 'ok' } }
    return tracer.startActiveSpan(`ws ${INVALID_EVENT_LABEL}`, options, async (span) => {
      try {
        await this.#handle(session, raw, isBinary, span)
      } finally {
        span.end()
      }
    })
  }

  /**
   * Handles one client frame. Never throws: every failure becomes an `error` event (with the
   * client's `id` when it gave one); success with an `id` becomes one `ack`.
   */
  async #handle (session: RouterSession, raw: Buffer | string, isBinary: boolean, span: Span): Promise<void> {
    if (isBinary) {
      this.#options.onReceived?.(INVALID_EVENT_LABEL)
      this.#fail(session, WsErrorCode.INVALID_MESSAGE, 'frames must be UTF-8 JSON text, not binary', undefined)
      return
    }
    const envelope = readEnvelope(typeof raw === 'string' ? raw : raw.toString('utf8'))
    if ('problem' in envelope) {
      this.#options.onReceived?.(INVALID_EVENT_LABEL)
      this.#fail(session, WsErrorCode.INVALID_MESSAGE, envelope.problem, envelope.id)
      return
    }
    const { event, data, id } = envelope
    const compiled = this.#events.get(event)
    if (compiled === undefined) {
      this.#options.onReceived?.(UNKNOWN_EVENT_LABEL)
      this.#fail(session, WsErrorCode.UNKNOWN_EVENT, `unknown event "${event.slice(0, 64).replace(/[^\x20-\x7e]/g, '?')}"`, id)
      return
    }
    this.#options.onReceived?.(event)
    describeSpan(span, event, data)
    if (nestsDeeper(data, MAX_DATA_DEPTH)) {
      const error = { path: '/data', message: `nests deeper than ${MAX_DATA_DEPTH} levels` }
      this.#fail(session, WsErrorCode.VALIDATION, `invalid data for "${event}": ${error.path} ${error.message}`, id, [error])
      return
    }
    if (!compiled.check.Check(data)) {
      const errors = []
      for (const error of compiled.check.Errors(data)) {
        errors.push({ path: `/data${error.path}`, message: error.message })
        if (errors.length === MAX_REPORTED_ERRORS) break
      }
      this.#fail(session, WsErrorCode.VALIDATION, `invalid data for "${event}": ${errors[0]?.path ?? '/data'} ${errors[0]?.message ?? 'is invalid'}`, id, errors)
      return
    }
    const { definition } = compiled
    let result: unknown
    try {
      if (definition.authorize !== undefined && !(await definition.authorize(data, session))) {
        this.#fail(session, WsErrorCode.FORBIDDEN, `you may not send "${event}" with this data`, id)
        return
      }
      result = await definition.handle(data, session, { id })
    } catch (err) {
      if (err instanceof AppError) {
        this.#fail(session, err.code, err.message, id)
      } else {
        this.#options.onHandlerError?.(err, event)
        this.#fail(session, WsErrorCode.INTERNAL, 'the server failed to handle this event', id)
      }
      return
    }
    if (id !== undefined) session.sendText(JSON.stringify({ event: 'ack', id, data: result ?? null }), 'ack')
  }

  /**
   * Answers a frame the transport refused before dispatch (over the rate limit), echoing its `id`
   * when the frame is readable, so a client waiting on that id is not left hanging.
   */
  refuse (session: RouterSession, raw: Buffer | string, code: WsErrorCode, message: string): void {
    const envelope = readEnvelope(typeof raw === 'string' ? raw : raw.toString('utf8'))
    this.#fail(session, code, message, envelope.id)
  }

  #fail (session: RouterSession, code: ErrorEventCode, message: string, id: string | undefined, errors?: FieldError[]): void {
    this.#options.onErrorSent?.(code)
    const span = trace.getActiveSpan()
    if (span?.isRecording() === true) {
      span.setAttribute('keel.outcome', code)
      span.setStatus({ code: SpanStatusCode.ERROR, message })
    }
    session.sendText(errorText(code, message, id, errors), 'error')
  }
}
