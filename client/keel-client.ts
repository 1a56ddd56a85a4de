// The typed client of Keel's WebSocket protocol (contract §4) for browsers and Node alike: only the
// standard WebSocket API, no Node imports, no framework. Acks as promises with a timeout, reconnect
// with full-jitter backoff, rooms resumed with `since` after a reconnect, duplicates dropped by `seq`.
// It never logs: the token travels in the URL, so neither the URL nor the token goes into a message.

import { backoffDelay } from '../outbound/backoff.ts'

// ---- Protocol types (extend KeelPushes / KeelRequests by declaration merging for your own events) ----

/** The user a connection speaks for, as `connection:ready` reports it. */
export interface ReadyData {
  connectionId: string
  user: { sub: string, scopes: string[], exp: number }
}

export interface RoomMessage { room: string, from: string, payload: unknown, seq: number }
export interface ItemsChanged { room: 'items', seq: number, id: string, op: 'created' | 'updated' | 'deleted' }
export interface PresenceChange { room: string, user: string, count: number }
export interface TypingChange { room: string, user: string, typing: boolean }
export interface PresenceSnapshot { room: string, users: string[], count: number }

export interface JoinAck {
  room: string
  /** False when this connection was already a member. */
  joined: boolean
  /** The room's latest `seq` when the join completed (0 before any message). */
  seq?: number
  /** Only when `since` was sent: true = every message after `since` came before this ack; false = refetch. */
  recovered?: boolean
}
export interface PublishAck { room: string, seq: number }

/** What the server pushes, by event name. Data with `room` and `seq` is sequenced (deduplicated). */
export interface KeelPushes {
  'room:message': RoomMessage
  'items:changed': ItemsChanged
  'presence:join': PresenceChange
  'presence:leave': PresenceChange
  'room:typing': TypingChange
}

/** What a client may ask, by event name: the `data` it sends and the `data` of the ack. */
export interface KeelRequests {
  'room:join': { data: { room: string, since?: number }, ack: JoinAck }
  'room:leave': { data: { room: string }, ack: { room: string, left: boolean } }
  'room:publish': { data: { room: string, payload: unknown }, ack: PublishAck }
  'room:typing': { data: { room: string, typing: boolean }, ack: { room: string } }
  'presence:list': { data: { room: string }, ack: PresenceSnapshot }
  ping: { data: unknown, ack: { time: number } }
}

/** The client's own events: its connection's life and the state of its rooms. */
export interface KeelLifecycle {
  /** A connection is ready (the first one or after a reconnect). */
  open: ReadyData
  /** A ready connection closed, or the client gave up; `reconnect` tells whether an attempt follows. */
  close: { code: number, reason: string, reconnect: boolean }
  /** The next connection attempt starts after `delayMs` (attempt 1 is the first after a loss). */
  reconnecting: { attempt: number, delayMs: number }
  /** A room was joined again after a reconnect. `recovered: false` = messages may be missing: refetch. */
  resumed: { room: string, recovered: boolean, seq: number | undefined }
  /** Messages of a room between `after` and `seq` (both excluded) never arrived (e.g. dropped for a slow consumer). */
  gap: { room: string, after: number, seq: number }
  /** Re-joining a room after a reconnect was refused; the client no longer counts itself a member. */
  'room:lost': { room: string, error: KeelClientError }
  /** An `error` frame that answers no request (e.g. INVALID_MESSAGE, RATE_LIMITED for a frame without id). */
  error: KeelClientError
}

export interface KeelEvents extends KeelPushes, KeelLifecycle {}

export type RequestName = keyof KeelRequests & string
export type RequestData<E extends RequestName> = KeelRequests[E]['data']
export type AckData<E extends RequestName> = KeelRequests[E]['ack']
/** `data` may be left out when the event's data may be undefined (e.g. `ping`). */
type DataArgs<T> = undefined extends T ? [data?: T] : [data: T]

// ---- Errors ----

/** The client's own error codes; a request refused by the server carries the server's code instead. */
export const KeelClientErrorCode = {
  /** No ack or error arrived within `ackTimeoutMs` while the connection stayed up. */
  ACK_TIMEOUT: 'ACK_TIMEOUT',
  /** The request was made while no connection was ready. */
  NOT_CONNECTED: 'NOT_CONNECTED',
  /** The connection closed before the answer came (or `close()` was called). */
  CLOSED: 'CLOSED'
} as const
export type KeelClientErrorCode = typeof KeelClientErrorCode[keyof typeof KeelClientErrorCode]

export interface FieldError { path: string, message: string }

export class KeelClientError extends Error {
  /** A `KeelClientErrorCode`, or the server's code (`VALIDATION`, `FORBIDDEN`, `RATE_LIMITED`…). */
  readonly code: string
  /** Field-level problems of a `VALIDATION` error. */
  readonly errors?: FieldError[]
  /** For `CLOSED`: the close code of the connection that was lost. */
  readonly closeCode?: number

  constructor (code: string, message: string, details: { errors?: FieldError[], closeCode?: number } = {}) {
    super(message)
    this.name = 'KeelClientError'
    this.code = code
    if (details.errors !== undefined) this.errors = details.errors
    if (details.closeCode !== undefined) this.closeCode = details.closeCode
  }
}

// ---- Transport and options ----

/** Handler slots typed with method syntax (bivariant), so the DOM's and `ws`'s socket types both fit. */
type Handler<E> = { bivariant (event: E): void }['bivariant']

/** The part of the standard WebSocket this client uses: the browser's, Node's global one, or `ws`. */
export interface WebSocketLike {
  readonly readyState: number
  onopen: Handler<unknown> | null
  onmessage: Handler<{ data: unknown }> | null
  onclose: Handler<{ code: number, reason: string }> | null
  onerror: Handler<unknown> | null
  send: (data: string) => void
  close: (code?: number, reason?: string) => void
}

/** Time as the client sees it; injectable so tests drive backoff and timeouts without real timers. */
export interface KeelClock {
  now: () => number
  setTimeout: (fn: () => void, ms: number) => unknown
  clearTimeout: (handle: unknown) => void
}

export interface ReconnectPolicy {
  /** Ceiling of the first retry's delay. Default 500 ms. */
  baseMs?: number
  /** No delay exceeds this. Default 30 s. */
  capMs?: number
  /** Consecutive failed attempts before giving up (`close` with `reconnect: false`). Default unlimited; 0 = never reconnect. */
  maxAttempts?: number
}

export interface KeelClientOptions {
  /** The `/ws` endpoint, `wss://host/ws`. The token is added as `?access_token=` (browsers cannot set headers). */
  url: string
  /** The access token, or a function called before every connection attempt (to refresh an expired one). */
  token: string | (() => string | Promise<string>)
  /** Opens a socket; default `new WebSocket(url)` (the global one). Node tests pass a `ws` socket with a CA. */
  createSocket?: (url: string) => WebSocketLike
  /** How long a request waits for its ack or error on a live connection. Default 10 s. */
  ackTimeoutMs?: number
  /** From opening a socket to `connection:ready`; past it the attempt counts as failed. Default 10 s. */
  connectTimeoutMs?: number
  /**
   * How long an unacknowledged `room:publish` is kept to be re-sent, with the same envelope id, after
   * a reconnect (the server acknowledges a repeated id again without publishing twice). Keep it below
   * the server's dedup window. Default 30 s.
   */
  publishRetryMs?: number
  reconnect?: ReconnectPolicy
  /** Jitter source in [0, 1). Default `Math.random`. */
  random?: () => number
  clock?: KeelClock
  /** Prefix of envelope ids; default a random UUID, so two tabs of one user never share an id. */
  idPrefix?: string
  /** A listener threw; default: rethrown out of band (an uncaught error), never inside the client's bookkeeping. */
  onListenerError?: (err: unknown, event: string) => void
}

export type KeelClientState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed'

const OPEN = 1
const TOKEN_EXPIRED = 4001
// The code a socket reports when it died without a close frame (also used for our own give-ups).
const ABNORMAL = 1006

const systemClock: KeelClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => { clearTimeout(handle as Parameters<typeof clearTimeout>[0]) }
}

const ignore = (): void => {}
const rethrowLater = (err: unknown): void => { queueMicrotask(() => { throw err }) }

interface Pending {
  readonly id: string
  readonly event: string
  readonly frame: string
  /** The room of a `room:publish`: re-sent only once that room is joined again. */
  readonly room: string | undefined
  /** Re-sent with the same id after a reconnect instead of failing (publishes). */
  readonly retry: boolean
  readonly firstSentAt: number
  /** The ack timer while sent; the retry-window timer while waiting for a connection. */
  timer: unknown
  sent: boolean
  /** Called once, synchronously with the frame that answers (so nothing runs in between). */
  readonly done: Answer
}

type Answer = (err: KeelClientError | undefined, data?: unknown) => void

interface RoomState {
  /** False while the first join is in flight: not re-joined after a reconnect. */
  joined: boolean
  /** The highest `seq` seen (or acknowledged to our own publish) in this room. */
  lastSeq: number | undefined
  /** Seqs of our own publishes above `lastSeq`: the server does not echo them live. */
  readonly ownSeqs: Set<number>
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function serverError (data: unknown): KeelClientError {
  const d = isRecord(data) ? data : {}
  const code = typeof d.code === 'string' ? d.code : 'UNKNOWN'
  const message = typeof d.message === 'string' ? d.message : 'the server refused the request'
  return new KeelClientError(code, message, Array.isArray(d.errors) ? { errors: d.errors as FieldError[] } : {})
}

function defaultSocket (url: string): WebSocketLike {
  return new globalThis.WebSocket(url)
}

function randomPrefix (): string {
  const uuid = globalThis.crypto?.randomUUID?.()
  return uuid ?? Math.random().toString(36).slice(2)
}

export class KeelClient {
  readonly #url: string
  readonly #token: KeelClientOptions['token']
  readonly #createSocket: (url: string) => WebSocketLike
  readonly #ackTimeoutMs: number
  readonly #connectTimeoutMs: number
  readonly #publishRetryMs: number
  readonly #backoff: { baseMs: number, maxMs: number }
  readonly #maxAttempts: number
  readonly #random: () => number
  readonly #clock: KeelClock
  readonly #idPrefix: string
  readonly #onListenerError: (err: unknown, event: string) => void

  #state: KeelClientState = 'idle'
  #socket: WebSocketLike | undefined
  #ready: ReadyData | undefined
  /** Reconnect attempts since the last ready connection. */
  #attempts = 0
  /** Bumped by every attempt and by close(): a token that resolves for an older epoch is dropped. */
  #epoch = 0
  #reconnectTimer: unknown
  #connectTimer: unknown
  #nextId = 0
  readonly #pending = new Map<string, Pending>()
  readonly #rooms = new Map<string, RoomState>()
  readonly #listeners = new Map<string, Set<(data: never) => void>>()
  #connectWaiters: Array<{ resolve: (ready: ReadyData) => void, reject: (err: KeelClientError) => void }> = []

  constructor (options: KeelClientOptions) {
    this.#url = options.url
    this.#token = options.token
    this.#createSocket = options.createSocket ?? defaultSocket
    this.#ackTimeoutMs = options.ackTimeoutMs ?? 10_000
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 10_000
    this.#publishRetryMs = options.publishRetryMs ?? 30_000
    this.#backoff = { baseMs: options.reconnect?.baseMs ?? 500, maxMs: options.reconnect?.capMs ?? 30_000 }
    this.#maxAttempts = options.reconnect?.maxAttempts ?? Infinity
    this.#random = options.random ?? Math.random
    this.#clock = options.clock ?? systemClock
    this.#idPrefix = `${options.idPrefix ?? randomPrefix()}:`
    this.#onListenerError = options.onListenerError ?? rethrowLater
  }

  get state (): KeelClientState {
    return this.#state
  }

  /** The ready connection's id and user; undefined while not connected. */
  get ready (): ReadyData | undefined {
    return this.#ready
  }

  /** The rooms the client is in (and re-joins after a reconnect). */
  get rooms (): string[] {
    return [...this.#rooms].filter(([, state]) => state.joined).map(([room]) => room)
  }

  /** The highest `seq` seen in `room` (what a re-join sends as `since`). */
  lastSeq (room: string): number | undefined {
    return this.#rooms.get(room)?.lastSeq
  }

  /**
   * Connects (retrying with backoff) and resolves on `connection:ready`. Rejects with `CLOSED` when
   * the client gives up or `close()` is called first. Calling it again while connecting or open is harmless.
   */
  async connect (): Promise<ReadyData> {
    if (this.#state === 'open') return this.#ready!
    const ready = new Promise<ReadyData>((resolve, reject) => { this.#connectWaiters.push({ resolve, reject }) })
    if (this.#state === 'idle' || this.#state === 'closed') {
      this.#state = 'connecting'
      this.#attempts = 0
      this.#attempt()
    }
    return await ready
  }

  /** Sends `event` with an id and resolves with the ack's data; rejects with a `KeelClientError`. */
  async request<E extends RequestName> (event: E, ...args: DataArgs<RequestData<E>>): Promise<AckData<E>> {
    if (this.#state !== 'open') throw new KeelClientError(KeelClientErrorCode.NOT_CONNECTED, `cannot send "${event}": not connected`)
    return await new Promise((resolve, reject) => {
      this.#send(event, args[0], (err, data) => { if (err === undefined) resolve(data as AckData<E>); else reject(err) })
    })
  }

  /**
   * Sends `event` without an id (fire-and-forget): the server sends no ack, and a refusal comes back as
   * an `error` event. Nothing is kept: not re-sent after a reconnect, and a `room:publish` sent this
   * way is not known as our own, so in a room joined with `join()` the next message reports a `gap`
   * (use `publish()` there). Throws `NOT_CONNECTED` when no connection is ready or the socket refuses it.
   */
  send<E extends RequestName> (event: E, ...args: DataArgs<RequestData<E>>): void {
    const socket = this.#socket
    if (this.#state !== 'open' || socket === undefined || socket.readyState !== OPEN) {
      throw new KeelClientError(KeelClientErrorCode.NOT_CONNECTED, `cannot send "${event}": not connected`)
    }
    const data = args[0]
    try {
      socket.send(JSON.stringify(data === undefined ? { event } : { event, data }))
    } catch {
      throw new KeelClientError(KeelClientErrorCode.NOT_CONNECTED, `cannot send "${event}": the socket refused it`)
    }
  }

  /** Joins a room; the client re-joins it after every reconnect until `leave(room)` or `close()`. */
  async join (room: string): Promise<JoinAck> {
    const existing = this.#rooms.get(room)
    const state = existing ?? { joined: false, lastSeq: undefined, ownSeqs: new Set<number>() }
    if (existing === undefined) this.#rooms.set(room, state)
    try {
      const ack = await this.request('room:join', { room })
      if (this.#rooms.get(room) === state && !state.joined) {
        state.joined = true
        // Messages seen while joining already count; the ack's seq is the baseline for gaps and duplicates.
        if (typeof ack.seq === 'number') state.lastSeq = Math.max(state.lastSeq ?? 0, ack.seq)
      }
      return ack
    } catch (err) {
      if (this.#rooms.get(room) === state && !state.joined) this.#rooms.delete(room)
      throw err
    }
  }

  /** Leaves a room; it is forgotten at once, so a reconnect never re-joins it. */
  async leave (room: string): Promise<{ room: string, left: boolean }> {
    this.#rooms.delete(room)
    return await this.request('room:leave', { room })
  }

  /**
   * Publishes to a room the client is in; resolves with the message's `seq`. An unacknowledged
   * publish survives a reconnect: it is re-sent with the same id once the room is joined again.
   */
  async publish (room: string, payload: unknown): Promise<PublishAck> {
    return await this.request('room:publish', { room, payload })
  }

  /** Who is in a room (rooms with presence only). */
  async presence (room: string): Promise<PresenceSnapshot> {
    return await this.request('presence:list', { room })
  }

  /** Subscribes to a server push or a lifecycle event; returns the unsubscribe function. */
  on<E extends keyof KeelEvents & string> (event: E, listener: (data: KeelEvents[E]) => void): () => void {
    let set = this.#listeners.get(event)
    if (set === undefined) this.#listeners.set(event, set = new Set())
    set.add(listener)
    return () => this.off(event, listener)
  }

  off<E extends keyof KeelEvents & string> (event: E, listener: (data: KeelEvents[E]) => void): void {
    this.#listeners.get(event)?.delete(listener)
  }

  /** Closes for good (no reconnect), forgets the rooms, and rejects what is pending with `CLOSED`. */
  close (): void {
    const wasActive = this.#state !== 'idle' && this.#state !== 'closed'
    this.#epoch++
    this.#clock.clearTimeout(this.#reconnectTimer)
    this.#clock.clearTimeout(this.#connectTimer)
    const socket = this.#socket
    this.#detach()
    try {
      socket?.close(1000, 'client closed')
    } catch {
      // A socket that cannot even be closed is gone already.
    }
    this.#state = 'closed'
    this.#ready = undefined
    this.#rooms.clear()
    this.#failAll(new KeelClientError(KeelClientErrorCode.CLOSED, 'the client was closed', { closeCode: 1000 }))
    if (wasActive) this.#emit('close', { code: 1000, reason: 'client closed', reconnect: false })
  }

  // ---- Connection life ----

  /** One connection attempt: token, socket, `connection:ready`, all within `connectTimeoutMs`. */
  #attempt (): void {
    const epoch = ++this.#epoch
    this.#connectTimer = this.#clock.setTimeout(() => {
      this.#epoch++
      const socket = this.#socket
      this.#detach()
      try {
        socket?.close(1000, 'no connection:ready in time')
      } catch {
        // Already closing: nothing more to do for it.
      }
      this.#attemptFailed(ABNORMAL, `no connection:ready within ${this.#connectTimeoutMs} ms`)
    }, this.#connectTimeoutMs)
    const token = this.#token
    if (typeof token === 'string') {
      this.#openSocket(token)
      return
    }
    let fetched: Promise<string>
    try {
      fetched = Promise.resolve(token())
    } catch {
      this.#attemptFailed(ABNORMAL, 'the token function failed')
      return
    }
    fetched.then((value) => {
      if (epoch === this.#epoch) this.#openSocket(value)
    }, () => {
      if (epoch === this.#epoch) this.#attemptFailed(ABNORMAL, 'the token function failed')
    })
  }

  #openSocket (token: string): void {
    const url = new URL(this.#url)
    url.searchParams.set('access_token', token)
    let socket: WebSocketLike
    try {
      socket = this.#createSocket(url.href)
    } catch {
      this.#attemptFailed(ABNORMAL, 'the socket could not be created')
      return
    }
    this.#socket = socket
    // Every error is followed by a close event, which is where the client acts.
    socket.onerror = ignore
    socket.onopen = ignore
    socket.onmessage = (event) => { if (this.#socket === socket) this.#onFrame(event.data) }
    socket.onclose = (event) => { if (this.#socket === socket) this.#onSocketClosed(event.code, event.reason) }
  }

  /** Stops listening to the current socket (never null `onerror`: `ws` throws an error nobody listens to). */
  #detach (): void {
    const socket = this.#socket
    if (socket === undefined) return
    this.#socket = undefined
    socket.onmessage = ignore
    socket.onclose = ignore
    socket.onopen = ignore
  }

  #onReady (data: ReadyData): void {
    this.#clock.clearTimeout(this.#connectTimer)
    this.#state = 'open'
    this.#ready = data
    this.#attempts = 0
    const waiters = this.#connectWaiters
    this.#connectWaiters = []
    // Re-join before anything else goes out, so the app's first frames find the rooms joined.
    const resuming = new Set<string>()
    for (const [room, state] of this.#rooms) {
      if (!state.joined) continue
      resuming.add(room)
      this.#resume(room, state)
    }
    for (const pending of [...this.#pending.values()]) {
      if (!pending.sent && (pending.room === undefined || !resuming.has(pending.room))) this.#resend(pending)
    }
    for (const waiter of waiters) waiter.resolve(data)
    this.#emit('open', data)
  }

  #resume (room: string, state: RoomState): void {
    const since = state.lastSeq
    this.#send('room:join', since === undefined ? { room } : { room, since }, (err, data) => {
      if (err !== undefined) {
        // A lost connection re-joins on the next one; a refusal (or no answer) loses the room.
        if (err.code === KeelClientErrorCode.CLOSED || this.#rooms.get(room) !== state) return
        this.#rooms.delete(room)
        for (const pending of [...this.#pending.values()]) if (!pending.sent && pending.room === room) this.#settle(pending, err)
        this.#emit('room:lost', { room, error: err })
        return
      }
      if (this.#rooms.get(room) !== state) return
      const ack = data as JoinAck
      const recovered = ack.recovered === true
      // Recovered: the missed messages came before the ack. Not: a new baseline (a restarted server
      // counts from 1 again, and those messages must not be taken for duplicates).
      state.lastSeq = recovered ? Math.max(state.lastSeq ?? 0, ack.seq ?? 0) : ack.seq
      if (!recovered) state.ownSeqs.clear()
      this.#emit('resumed', { room, recovered, seq: ack.seq })
      for (const pending of [...this.#pending.values()]) if (!pending.sent && pending.room === room) this.#resend(pending)
    })
  }

  #onSocketClosed (code: number, reason: string): void {
    this.#detach()
    const wasOpen = this.#state === 'open'
    this.#ready = undefined
    this.#clock.clearTimeout(this.#connectTimer)
    const lost = new KeelClientError(KeelClientErrorCode.CLOSED, `the connection closed (${code}) before the answer came`, { closeCode: code })
    for (const pending of [...this.#pending.values()]) {
      if (pending.retry && this.#clock.now() - pending.firstSentAt < this.#publishRetryMs) this.#hold(pending)
      else this.#settle(pending, lost)
    }
    if (wasOpen) {
      const reconnect = this.#mayReconnect(code)
      this.#emit('close', { code, reason, reconnect })
      if (reconnect) this.#scheduleReconnect()
      else this.#giveUp(code, reason, false)
      return
    }
    this.#attemptFailed(code, reason)
  }

  /** An attempt that never reached `connection:ready` (a browser cannot tell a refused upgrade from a network error). */
  #attemptFailed (code: number, reason: string): void {
    this.#clock.clearTimeout(this.#connectTimer)
    if (this.#mayReconnect(code)) this.#scheduleReconnect()
    else this.#giveUp(code, reason, true)
  }

  #mayReconnect (code: number): boolean {
    // An expired or refused token comes back the same unless the app can fetch a new one.
    if (code === TOKEN_EXPIRED && typeof this.#token === 'string') return false
    return this.#attempts < this.#maxAttempts
  }

  #scheduleReconnect (): void {
    this.#state = 'reconnecting'
    const attempt = ++this.#attempts
    const delayMs = backoffDelay(attempt, this.#backoff, this.#random)
    this.#emit('reconnecting', { attempt, delayMs })
    this.#reconnectTimer = this.#clock.setTimeout(() => { this.#attempt() }, delayMs)
  }

  #giveUp (code: number, reason: string, announce: boolean): void {
    this.#state = 'closed'
    this.#epoch++
    const err = new KeelClientError(KeelClientErrorCode.CLOSED, `the connection closed (${code}) and the client stopped reconnecting`, { closeCode: code })
    this.#failAll(err)
    // Rooms are kept: a later connect() resumes them.
    if (announce) this.#emit('close', { code, reason, reconnect: false })
  }

  #failAll (err: KeelClientError): void {
    for (const pending of [...this.#pending.values()]) this.#settle(pending, err)
    const waiters = this.#connectWaiters
    this.#connectWaiters = []
    for (const waiter of waiters) waiter.reject(err)
  }

  // ---- Requests ----

  #send (event: string, data: unknown, done: Answer): void {
    const id = `${this.#idPrefix}${++this.#nextId}`
    const frame = JSON.stringify(data === undefined ? { event, id } : { event, data, id })
    const retry = event === 'room:publish'
    const room = retry && isRecord(data) && typeof data.room === 'string' ? data.room : undefined
    const pending: Pending = { id, event, frame, room, retry, firstSentAt: this.#clock.now(), timer: undefined, sent: false, done }
    this.#pending.set(id, pending)
    this.#resend(pending)
  }

  /** Sends (again) on the ready socket and arms the ack timeout. */
  #resend (pending: Pending): void {
    if (this.#pending.get(pending.id) !== pending) return // settled meanwhile (e.g. a listener called close())
    this.#clock.clearTimeout(pending.timer)
    const socket = this.#socket
    if (socket === undefined || socket.readyState !== OPEN) {
      this.#settle(pending, new KeelClientError(KeelClientErrorCode.NOT_CONNECTED, `cannot send "${pending.event}": not connected`))
      return
    }
    try {
      socket.send(pending.frame)
    } catch {
      this.#settle(pending, new KeelClientError(KeelClientErrorCode.NOT_CONNECTED, `cannot send "${pending.event}": the socket refused it`))
      return
    }
    pending.sent = true
    pending.timer = this.#clock.setTimeout(() => {
      this.#settle(pending, new KeelClientError(KeelClientErrorCode.ACK_TIMEOUT, `no answer to "${pending.event}" within ${this.#ackTimeoutMs} ms`))
    }, this.#ackTimeoutMs)
  }

  /** Keeps an unacknowledged publish for the next connection, at most until its retry window ends. */
  #hold (pending: Pending): void {
    this.#clock.clearTimeout(pending.timer)
    pending.sent = false
    const left = this.#publishRetryMs - (this.#clock.now() - pending.firstSentAt)
    pending.timer = this.#clock.setTimeout(() => {
      this.#settle(pending, new KeelClientError(KeelClientErrorCode.CLOSED, `"${pending.event}" was not acknowledged within ${this.#publishRetryMs} ms across reconnects`))
    }, left)
  }

  #settle (pending: Pending, err: KeelClientError | undefined, data?: unknown): void {
    if (this.#pending.get(pending.id) !== pending) return
    this.#pending.delete(pending.id)
    this.#clock.clearTimeout(pending.timer)
    pending.done(err, data)
  }

  // ---- Inbound frames ----

  #onFrame (raw: unknown): void {
    if (typeof raw !== 'string') return
    let message: unknown
    try {
      message = JSON.parse(raw)
    } catch {
      return
    }
    if (!isRecord(message) || typeof message.event !== 'string') return
    const { event, data, id } = message
    if (event === 'ack' || event === 'error') {
      const pending = typeof id === 'string' ? this.#pending.get(id) : undefined
      if (pending === undefined) {
        // A late answer to a request that timed out is dropped; an error about no request is reported.
        if (event === 'error' && id === undefined) this.#emit('error', serverError(data))
        return
      }
      if (event === 'error') {
        this.#settle(pending, serverError(data))
        return
      }
      if (pending.event === 'room:publish') this.#noteOwnSeq(data)
      this.#settle(pending, undefined, data)
      return
    }
    if (event === 'connection:ready') {
      if (this.#state !== 'open' && isRecord(data)) this.#onReady(data as unknown as ReadyData)
      return
    }
    if (isRecord(data) && typeof data.room === 'string' && typeof data.seq === 'number' && !this.#acceptSeq(data.room, data.seq)) return
    this.#emit(event, data)
  }

  /** False for a message already seen (or our own, replayed); reports a gap before the message that ends it. */
  #acceptSeq (room: string, seq: number): boolean {
    const state = this.#rooms.get(room)
    if (state === undefined) return true
    const last = state.lastSeq
    if (last !== undefined && seq <= last) return false
    let ownBetween = 0
    for (const s of state.ownSeqs) if (last !== undefined && s > last && s < seq) ownBetween++
    const own = state.ownSeqs.has(seq)
    this.#advance(state, seq)
    if (last !== undefined && seq > last + 1 + ownBetween) this.#emit('gap', { room, after: last, seq })
    return !own
  }

  /** Our publish took `seq`: the server sends it to everyone but us, so it counts as seen. */
  #noteOwnSeq (ack: unknown): void {
    if (!isRecord(ack) || typeof ack.room !== 'string' || typeof ack.seq !== 'number') return
    const state = this.#rooms.get(ack.room)
    if (state === undefined) return
    const last = state.lastSeq
    if (last === undefined || ack.seq === last + 1) this.#advance(state, ack.seq)
    else if (ack.seq > last) state.ownSeqs.add(ack.seq)
  }

  #advance (state: RoomState, seq: number): void {
    state.lastSeq = seq
    while (state.ownSeqs.delete(state.lastSeq + 1)) state.lastSeq++
    for (const s of state.ownSeqs) if (s <= state.lastSeq) state.ownSeqs.delete(s)
  }

  /** Listeners run in order; one that throws goes to `onListenerError` and never breaks the client. */
  #emit (event: string, data: unknown): void {
    const set = this.#listeners.get(event)
    if (set === undefined) return
    for (const listener of [...set]) {
      try {
        (listener as (data: unknown) => void)(data)
      } catch (err) {
        this.#onListenerError(err, event)
      }
    }
  }
}
