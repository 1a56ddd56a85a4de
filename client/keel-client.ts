// The typed client of Keel's WebSocket protocol for browsers and Node alike: only the standard
// WebSocket API, no Node imports, no framework. Acks as promises with a timeout, reconnect with
// full-jitter backoff, rooms resumed with `since` after a reconnect, duplicates dropped by `seq`.
// It never logs: the token travels in the URL, so neither the URL nor the token goes into a message.

import { KeelClientError, KeelClientErrorCode, serverError } from './errors.ts'
import { decodeFrame, encodeFrame, isRecord } from './frames.ts'
import { PendingRequests, type Answer, type PendingRequest } from './pending-requests.ts'
import type { AckData, JoinAck, KeelPushes, LeaveAck, PresenceSnapshot, PublishAck, ReadyData, RequestData, RequestName } from './protocol.ts'
import { reconnectDelay, resolveReconnectPolicy, type ReconnectPolicy, type ResolvedReconnectPolicy } from './reconnect-policy.ts'
import { RoomSequence } from './room-sequence.ts'
import { ABNORMAL_CLOSURE, OPEN, openGlobalWebSocket, systemClock, TOKEN_EXPIRED, type KeelClock, type WebSocketLike } from './transport.ts'

export * from './protocol.ts'
export { KeelClientError, KeelClientErrorCode } from './errors.ts'
export type { ReconnectPolicy } from './reconnect-policy.ts'
export type { KeelClock, WebSocketLike } from './transport.ts'

/** The client's own events: its connection's life and the state of its rooms. */
export interface KeelLifecycle {
  /** A connection is ready (the first one or after a reconnect). */
  open: ReadyData
  /** A ready connection closed, or the client gave up; `reconnect` tells whether an attempt follows. */
  close: { code: number, reason: string, reconnect: boolean }
  /** The next connection attempt starts after `delayMs` (attempt 1 is the first after a loss). */
  reconnecting: { attempt: number, delayMs: number }
  /** A room was joined again after a reconnect. `recovered: false` = messages may be missing: refetch. */
  resumed: { room: string, recovered: boolean, seq: number }
  /** Messages of a room between `after` and `seq` (both excluded) never arrived (e.g. dropped for a slow consumer). */
  gap: { room: string, after: number, seq: number }
  /** Re-joining a room after a reconnect was refused; the client no longer counts itself a member. */
  'room:lost': { room: string, error: KeelClientError }
  /** An `error` frame that answers no request (e.g. INVALID_MESSAGE, RATE_LIMITED for a frame without id). */
  error: KeelClientError
}

/** Everything `on()` accepts: the server's pushes and the client's own events. */
export interface KeelEvents extends KeelPushes, KeelLifecycle {}
export type KeelEventName = keyof KeelEvents & string

/** `data` may be left out when the event's data may be undefined (e.g. `ping`). */
type DataArgs<T> = undefined extends T ? [data?: T] : [data: T]

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

const ignore = (): void => {}
const rethrowLater = (err: unknown): void => { queueMicrotask(() => { throw err }) }

function randomPrefix (): string {
  const uuid = globalThis.crypto?.randomUUID?.()
  return uuid ?? Math.random().toString(36).slice(2)
}

const notConnected = (event: string, why = 'not connected'): KeelClientError =>
  new KeelClientError(KeelClientErrorCode.NOT_CONNECTED, `cannot send "${event}": ${why}`)

export class KeelClient {
  readonly #url: string
  readonly #token: KeelClientOptions['token']
  readonly #createSocket: (url: string) => WebSocketLike
  readonly #connectTimeoutMs: number
  readonly #reconnect: ResolvedReconnectPolicy
  readonly #random: () => number
  readonly #clock: KeelClock
  readonly #onListenerError: (err: unknown, event: string) => void
  readonly #requests: PendingRequests

  #state: KeelClientState = 'idle'
  #socket: WebSocketLike | undefined
  #ready: ReadyData | undefined
  /** Reconnect attempts since the last ready connection. */
  #attempts = 0
  /** Bumped by every attempt and by close(): a token that resolves for an older epoch is dropped. */
  #epoch = 0
  #reconnectTimer: unknown
  #connectTimer: unknown
  readonly #rooms = new Map<string, RoomSequence>()
  readonly #listeners = new Map<string, Set<(data: never) => void>>()
  #connectWaiters: Array<{ resolve: (ready: ReadyData) => void, reject: (err: KeelClientError) => void }> = []

  constructor (options: KeelClientOptions) {
    this.#url = options.url
    this.#token = options.token
    this.#createSocket = options.createSocket ?? openGlobalWebSocket
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 10_000
    this.#reconnect = resolveReconnectPolicy(options.reconnect)
    this.#random = options.random ?? Math.random
    this.#clock = options.clock ?? systemClock
    this.#onListenerError = options.onListenerError ?? rethrowLater
    this.#requests = new PendingRequests({
      clock: this.#clock,
      idPrefix: `${options.idPrefix ?? randomPrefix()}:`,
      ackTimeoutMs: options.ackTimeoutMs ?? 10_000,
      publishRetryMs: options.publishRetryMs ?? 30_000
    })
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
    return [...this.#rooms].filter(([, sequence]) => sequence.joined).map(([room]) => room)
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
    if (this.#state !== 'open') throw notConnected(event)
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
    if (this.#state !== 'open' || socket === undefined || socket.readyState !== OPEN) throw notConnected(event)
    try {
      socket.send(encodeFrame(event, args[0]))
    } catch {
      throw notConnected(event, 'the socket refused it')
    }
  }

  /** Joins a room; the client re-joins it after every reconnect until `leave(room)` or `close()`. */
  async join (room: string): Promise<JoinAck> {
    const existing = this.#rooms.get(room)
    const sequence = existing ?? new RoomSequence()
    if (existing === undefined) this.#rooms.set(room, sequence)
    try {
      const ack = await this.request('room:join', { room })
      if (this.#rooms.get(room) === sequence && !sequence.joined) sequence.joinedAt(ack.seq)
      return ack
    } catch (err) {
      if (this.#rooms.get(room) === sequence && !sequence.joined) this.#rooms.delete(room)
      throw err
    }
  }

  /** Leaves a room; it is forgotten at once, so a reconnect never re-joins it. */
  async leave (room: string): Promise<LeaveAck> {
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
  on<E extends KeelEventName> (event: E, listener: (data: KeelEvents[E]) => void): () => void {
    let set = this.#listeners.get(event)
    if (set === undefined) this.#listeners.set(event, set = new Set())
    set.add(listener)
    return () => this.off(event, listener)
  }

  off<E extends KeelEventName> (event: E, listener: (data: KeelEvents[E]) => void): void {
    this.#listeners.get(event)?.delete(listener)
  }

  /** Closes for good (no reconnect), forgets the rooms, and rejects what is pending with `CLOSED`. */
  close (): void {
    const wasActive = this.#state !== 'idle' && this.#state !== 'closed'
    this.#epoch++
    this.#clock.clearTimeout(this.#reconnectTimer)
    this.#clock.clearTimeout(this.#connectTimer)
    this.#dropSocket('client closed')
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
      this.#dropSocket('no connection:ready in time')
      this.#attemptFailed(ABNORMAL_CLOSURE, `no connection:ready within ${this.#connectTimeoutMs} ms`)
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
      this.#attemptFailed(ABNORMAL_CLOSURE, 'the token function failed')
      return
    }
    fetched.then((value) => {
      if (epoch === this.#epoch) this.#openSocket(value)
    }, () => {
      if (epoch === this.#epoch) this.#attemptFailed(ABNORMAL_CLOSURE, 'the token function failed')
    })
  }

  #openSocket (token: string): void {
    const url = new URL(this.#url)
    url.searchParams.set('access_token', token)
    let socket: WebSocketLike
    try {
      socket = this.#createSocket(url.href)
    } catch {
      this.#attemptFailed(ABNORMAL_CLOSURE, 'the socket could not be created')
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

  /** Detaches the current socket and closes it from our side. */
  #dropSocket (reason: string): void {
    const socket = this.#socket
    this.#detach()
    try {
      socket?.close(1000, reason)
    } catch {
      // Already closing, or gone: nothing more to do for it.
    }
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
    for (const [room, sequence] of this.#rooms) {
      if (!sequence.joined) continue
      resuming.add(room)
      this.#resume(room, sequence)
    }
    for (const request of this.#requests.unsent()) {
      if (request.room === undefined || !resuming.has(request.room)) this.#transmit(request)
    }
    for (const waiter of waiters) waiter.resolve(data)
    this.#emit('open', data)
  }

  #resume (room: string, sequence: RoomSequence): void {
    const since = sequence.lastSeq
    this.#send('room:join', since === undefined ? { room } : { room, since }, (err, data) => {
      if (this.#rooms.get(room) !== sequence) return
      if (err === undefined) {
        const ack = data as JoinAck
        const recovered = ack.recovered === true
        sequence.resumedAt(ack.seq, recovered)
        this.#emit('resumed', { room, recovered, seq: ack.seq })
        for (const request of this.#requests.unsent(room)) this.#transmit(request)
        return
      }
      // A lost connection re-joins on the next one; a refusal (or no answer) loses the room.
      if (err.code === KeelClientErrorCode.CLOSED) return
      this.#rooms.delete(room)
      for (const request of this.#requests.unsent(room)) this.#requests.settle(request, err)
      this.#emit('room:lost', { room, error: err })
    })
  }

  #onSocketClosed (code: number, reason: string): void {
    this.#detach()
    const wasOpen = this.#state === 'open'
    this.#ready = undefined
    this.#clock.clearTimeout(this.#connectTimer)
    const lost = new KeelClientError(KeelClientErrorCode.CLOSED, `the connection closed (${code}) before the answer came`, { closeCode: code })
    for (const request of this.#requests.all()) this.#requests.holdOrFail(request, lost)
    if (!wasOpen) {
      this.#attemptFailed(code, reason)
      return
    }
    const reconnect = this.#mayReconnect(code)
    this.#emit('close', { code, reason, reconnect })
    if (reconnect) this.#scheduleReconnect()
    else this.#giveUp(code, reason, false)
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
    return this.#attempts < this.#reconnect.maxAttempts
  }

  #scheduleReconnect (): void {
    this.#state = 'reconnecting'
    const attempt = ++this.#attempts
    const delayMs = reconnectDelay(attempt, this.#reconnect, this.#random)
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
    for (const request of this.#requests.all()) this.#requests.settle(request, err)
    const waiters = this.#connectWaiters
    this.#connectWaiters = []
    for (const waiter of waiters) waiter.reject(err)
  }

  // ---- Requests ----

  #send (event: string, data: unknown, done: Answer): void {
    this.#transmit(this.#requests.add(event, data, done))
  }

  /** Sends (again) on the ready socket and arms the ack timeout. */
  #transmit (request: PendingRequest): void {
    if (!this.#requests.isPending(request)) return // answered meanwhile (e.g. a listener called close())
    const socket = this.#socket
    if (socket === undefined || socket.readyState !== OPEN) {
      this.#requests.settle(request, notConnected(request.event))
      return
    }
    try {
      socket.send(request.frame)
    } catch {
      this.#requests.settle(request, notConnected(request.event, 'the socket refused it'))
      return
    }
    this.#requests.markSent(request)
  }

  // ---- Inbound frames ----

  #onFrame (raw: unknown): void {
    const frame = decodeFrame(raw)
    if (frame === undefined) return
    const { event, data, id } = frame
    if (event === 'ack' || event === 'error') {
      this.#onAnswer(event, data, id)
      return
    }
    if (event === 'connection:ready') {
      if (this.#state !== 'open' && isRecord(data)) this.#onReady(data as unknown as ReadyData)
      return
    }
    if (isRecord(data) && typeof data.room === 'string' && typeof data.seq === 'number' && !this.#acceptSeq(data.room, data.seq)) return
    this.#emit(event, data)
  }

  #onAnswer (event: 'ack' | 'error', data: unknown, id: unknown): void {
    const request = typeof id === 'string' ? this.#requests.get(id) : undefined
    if (request === undefined) {
      // A late answer to a request that timed out is dropped; an error about no request is reported.
      if (event === 'error' && id === undefined) this.#emit('error', serverError(data))
      return
    }
    if (event === 'error') {
      this.#requests.settle(request, serverError(data))
      return
    }
    if (request.event === 'room:publish') this.#noteOwnSeq(data)
    this.#requests.settle(request, undefined, data)
  }

  /** False for a message already seen (or our own, replayed); reports a gap before the message that ends it. */
  #acceptSeq (room: string, seq: number): boolean {
    const sequence = this.#rooms.get(room)
    if (sequence === undefined) return true
    const { deliver, gapAfter } = sequence.receive(seq)
    if (gapAfter !== undefined) this.#emit('gap', { room, after: gapAfter, seq })
    return deliver
  }

  /** Our publish took a `seq` in its room: it counts as seen there. */
  #noteOwnSeq (ack: unknown): void {
    if (!isRecord(ack) || typeof ack.room !== 'string' || typeof ack.seq !== 'number') return
    this.#rooms.get(ack.room)?.published(ack.seq)
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
