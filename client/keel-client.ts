// The typed client of Keel's realtime protocol for browsers and Node alike: only the standard
// WebSocket and fetch APIs, no Node imports, no framework. Acks as promises with a timeout, reconnect
// with full-jitter backoff, rooms resumed with `since` after a reconnect, duplicates dropped by `seq`.
// A refusal retrying cannot fix (token, Origin) stops it with a typed error; where WebSockets cannot
// be opened it falls back to SSE (sse-link.ts) behind the same API. It never logs: the token travels
// in the URL, so neither the URL nor the token goes into a message.

import { KeelClientError, KeelClientErrorCode, serverError } from './errors.ts'
import { decodeFrame, encodeFrame, isRecord } from './frames.ts'
import { probeHandshake, type FetchLike, type ProbeVerdict } from './handshake-probe.ts'
import { PendingRequests, type Answer, type PendingRequest } from './pending-requests.ts'
import type { AckData, JoinAck, KeelPushes, LeaveAck, PresenceSnapshot, PublishAck, ReadyData, RequestData, RequestName } from './protocol.ts'
import { reconnectDelay, resolveReconnectPolicy, type ReconnectPolicy, type ResolvedReconnectPolicy } from './reconnect-policy.ts'
import { RoomSequence } from './room-sequence.ts'
import { SseLink, tokenUser, type StreamReady } from './sse-link.ts'
import { ABNORMAL_CLOSURE, OPEN, openGlobalWebSocket, systemClock, TOKEN_EXPIRED, type KeelClock, type WebSocketLike } from './transport.ts'

export * from './protocol.ts'
export { KeelClientError, KeelClientErrorCode } from './errors.ts'
export type { FetchLike } from './handshake-probe.ts'
export type { ReconnectPolicy } from './reconnect-policy.ts'
export type { KeelClock, WebSocketLike } from './transport.ts'

/** The client's own events: its connection's life and the state of its rooms. */
export interface KeelLifecycle {
  /** A connection is ready (the first one or after a reconnect). */
  open: ReadyData
  /**
   * A ready connection closed, or the client gave up; `reconnect` tells whether an attempt follows.
   * `error`: the refusal that stopped the client (`UNAUTHORIZED`, `ORIGIN_REFUSED`, `REFUSED`).
   */
  close: { code: number, reason: string, reconnect: boolean, error?: KeelClientError }
  /** A WebSocket could not be opened although the server answers: the client goes on over SSE. */
  fallback: { transport: 'sse', reason: string }
  /** The next connection attempt starts after `delayMs` (attempt 1 is the first after a loss). */
  reconnecting: { attempt: number, delayMs: number }
  /**
   * A room was joined again after a reconnect (over SSE also after another room's join or leave
   * reopened the stream, when not recovered). `recovered: false` = messages may be missing: refetch.
   * `seq`: the room's seq after the replay (over SSE: the seq the replay starts after, 0 for none).
   */
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

/** `auto`: WebSocket, falling back to SSE when one cannot be opened; `websocket`: never SSE; `sse`: SSE only. */
export type KeelTransportChoice = 'auto' | 'websocket' | 'sse'
export type KeelTransport = 'websocket' | 'sse'

export interface KeelClientOptions {
  /**
   * The `/ws` endpoint, `wss://host/ws`. The token is added as `?access_token=` (browsers cannot set
   * headers). The SSE fallback's endpoints sit next to it: `https://host/sse`, `https://host/events`.
   */
  url: string
  /**
   * The access token, or a function called before every connection attempt (to refresh an expired
   * one). A refused token (401) makes the client call the function once more; a static token, or a
   * second refusal in a row, stops the client with `UNAUTHORIZED`.
   */
  token: string | (() => string | Promise<string>)
  /** Opens a socket; default `new WebSocket(url)` (the global one). Node tests pass a `ws` socket with a CA. */
  createSocket?: (url: string) => WebSocketLike
  /**
   * HTTP requests: the probe that tells why a WebSocket did not open, and the SSE fallback. Default the
   * global `fetch`.
   */
  fetch?: FetchLike
  /** Default `auto`: the SSE fallback is taken when the server answers but WebSockets cannot be opened. */
  transport?: KeelTransportChoice
  /** How long a request waits for its ack or error on a live connection. Default 10 s. */
  ackTimeoutMs?: number
  /** From opening a socket to `connection:ready`; past it the attempt counts as failed. Default 10 s. */
  connectTimeoutMs?: number
  /**
   * How long the plain GET that asks why a WebSocket did not open may take; past it the attempt counts
   * as failed and is retried. Default 5 s.
   */
  probeTimeoutMs?: number
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

/** Upgrades refused in a row, with the server answering, before the client falls back to SSE. */
const BLOCKED_UPGRADES_BEFORE_FALLBACK = 2

const notConnected = (event: string, why = 'not connected'): KeelClientError =>
  new KeelClientError(KeelClientErrorCode.NOT_CONNECTED, `cannot send "${event}": ${why}`)

export class KeelClient {
  readonly #url: string
  readonly #token: KeelClientOptions['token']
  readonly #createSocket: (url: string) => WebSocketLike
  readonly #connectTimeoutMs: number
  readonly #probeTimeoutMs: number
  readonly #reconnect: ResolvedReconnectPolicy
  readonly #random: () => number
  readonly #clock: KeelClock
  readonly #onListenerError: (err: unknown, event: string) => void
  readonly #requests: PendingRequests
  readonly #fetch: FetchLike
  readonly #transportChoice: KeelTransportChoice

  #state: KeelClientState = 'idle'
  #transport: KeelTransport
  #socket: WebSocketLike | undefined
  /** The current socket fired `open`: a close before it is a refused or blocked upgrade. */
  #socketOpened = false
  #sse: SseLink | undefined
  /** The token of the current connection (an SSE join or leave reopens the stream with it). */
  #currentToken = ''
  /** A 401 made the client ask the token function again; a second one in a row stops it. */
  #tokenRetried = false
  /** Attempts in a row whose upgrade was refused while the server answered (see #onProbe). */
  #blockedUpgrades = 0
  /** SSE joins and leaves, one at a time: each reopens the stream with the room set before it. */
  #membership: Promise<unknown> = Promise.resolve()
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
    this.#probeTimeoutMs = options.probeTimeoutMs ?? 5000
    this.#reconnect = resolveReconnectPolicy(options.reconnect)
    this.#random = options.random ?? Math.random
    this.#clock = options.clock ?? systemClock
    this.#onListenerError = options.onListenerError ?? rethrowLater
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init))
    this.#transportChoice = options.transport ?? 'auto'
    this.#transport = this.#transportChoice === 'sse' ? 'sse' : 'websocket'
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

  /** What the connection runs over (`sse` after a fallback); undefined while not connected. */
  get transport (): KeelTransport | undefined {
    return this.#state === 'open' ? this.#transport : undefined
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
   * the client gives up or `close()` is called first, and at once with `UNAUTHORIZED` or
   * `ORIGIN_REFUSED` when the server refuses the token or the page's Origin. Calling it again while
   * connecting or open is harmless.
   */
  async connect (): Promise<ReadyData> {
    if (this.#state === 'open') return this.#ready!
    const ready = new Promise<ReadyData>((resolve, reject) => { this.#connectWaiters.push({ resolve, reject }) })
    if (this.#state === 'idle' || this.#state === 'closed') {
      this.#state = 'connecting'
      this.#attempts = 0
      this.#tokenRetried = false
      this.#blockedUpgrades = 0
      this.#transport = this.#transportChoice === 'sse' ? 'sse' : 'websocket'
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
    const sse = this.#sse
    if (this.#state === 'open' && sse !== undefined) {
      sse.post(encodeFrame(event, args[0])).then((answer) => {
        if (answer.event === 'error') this.#emit('error', serverError(answer.data))
      }, ignore)
      return
    }
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
    // Over SSE a member is in the stream already: nothing to reopen.
    if (this.#sse !== undefined && existing?.joined === true) return { room, joined: false, seq: existing.lastSeq ?? 0 }
    const sequence = existing ?? new RoomSequence()
    if (existing === undefined) this.#rooms.set(room, sequence)
    try {
      const ack = this.#sse === undefined ? await this.request('room:join', { room }) : await this.#reopenSse(room, 'join')
      if (this.#rooms.get(room) === sequence && !sequence.joined) sequence.joinedAt(ack.seq)
      return ack
    } catch (err) {
      if (this.#rooms.get(room) === sequence && !sequence.joined) this.#rooms.delete(room)
      throw err
    }
  }

  /** Leaves a room; it is forgotten at once, so a reconnect never re-joins it. */
  async leave (room: string): Promise<LeaveAck> {
    const member = this.#rooms.get(room)?.joined === true
    this.#rooms.delete(room)
    if (this.#sse === undefined) return await this.request('room:leave', { room })
    if (!member) return { room, left: false }
    await this.#reopenSse(room, 'leave')
    return { room, left: true }
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
    this.#dropLink('client closed')
    this.#state = 'closed'
    this.#ready = undefined
    this.#rooms.clear()
    this.#failAll(new KeelClientError(KeelClientErrorCode.CLOSED, 'the client was closed', { closeCode: 1000 }))
    if (wasActive) this.#emit('close', { code: 1000, reason: 'client closed', reconnect: false })
  }

  // ---- Connection life ----

  /** One connection attempt: token, socket (or stream), `connection:ready`, all within `connectTimeoutMs`. */
  #attempt (): void {
    const epoch = ++this.#epoch
    this.#clock.clearTimeout(this.#connectTimer)
    this.#connectTimer = this.#clock.setTimeout(() => {
      this.#epoch++
      const neverOpened = this.#socket !== undefined && !this.#socketOpened
      this.#dropLink('no connection:ready in time')
      // A socket that never opened may be held by something that refuses WebSockets: ask why.
      const reason = `no connection:ready within ${this.#connectTimeoutMs} ms`
      if (neverOpened) this.#probe(this.#currentToken, this.#epoch, ABNORMAL_CLOSURE, reason)
      else this.#attemptFailed(ABNORMAL_CLOSURE, reason)
    }, this.#connectTimeoutMs)
    const token = this.#token
    if (typeof token === 'string') {
      this.#open(token)
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
      if (epoch === this.#epoch) this.#open(value)
    }, () => {
      if (epoch === this.#epoch) this.#attemptFailed(ABNORMAL_CLOSURE, 'the token function failed')
    })
  }

  #open (token: string): void {
    this.#currentToken = token
    if (this.#transport === 'sse') this.#openSse(token)
    else this.#openSocket(token)
  }

  #socketUrl (token: string): string {
    const url = new URL(this.#url)
    url.searchParams.set('access_token', token)
    return url.href
  }

  #openSocket (token: string): void {
    let socket: WebSocketLike
    try {
      socket = this.#createSocket(this.#socketUrl(token))
    } catch {
      this.#attemptFailed(ABNORMAL_CLOSURE, 'the socket could not be created')
      return
    }
    this.#socket = socket
    this.#socketOpened = false
    // Every error is followed by a close event, which is where the client acts.
    socket.onerror = ignore
    socket.onopen = () => { if (this.#socket === socket) this.#socketOpened = true }
    socket.onmessage = (event) => { if (this.#socket === socket) this.#onFrame(event.data) }
    socket.onclose = (event) => { if (this.#socket === socket) this.#onSocketClosed(event.code, event.reason) }
  }

  /** Opens an SSE stream for every joined room, resuming each from its last seq. */
  #openSse (token: string): void {
    const rooms = this.rooms
    const link: SseLink = new SseLink({
      url: this.#url,
      token,
      rooms,
      cursor: this.#cursor(rooms),
      fetch: this.#fetch,
      handlers: {
        ready: (data) => { if (this.#sse === link) this.#onReady({ connectionId: data.connectionId, user: data.user ?? tokenUser(token) }, data) },
        event: (event, data) => { if (this.#sse === link) this.#onPush(event, data) },
        refused: (err) => { if (this.#sse === link) this.#onStreamRefused(err, rooms) },
        lost: (code, reason) => { if (this.#sse === link) this.#onSocketClosed(code, reason) }
      }
    })
    this.#sse = link
    link.open()
  }

  /** Last seq seen per room, for the rooms that have one (Last-Event-ID). */
  #cursor (rooms: readonly string[]): Record<string, number> {
    const cursor: Record<string, number> = {}
    for (const room of rooms) {
      const seq = this.#rooms.get(room)?.lastSeq
      if (seq !== undefined) cursor[room] = seq
    }
    return cursor
  }

  /** Stops listening to the current socket or stream (never null `onerror`: `ws` throws an error nobody listens to). */
  #detach (): void {
    this.#sse?.close()
    this.#sse = undefined
    const socket = this.#socket
    if (socket === undefined) return
    this.#socket = undefined
    socket.onmessage = ignore
    socket.onclose = ignore
    socket.onopen = ignore
  }

  /** Detaches the current socket or stream and closes it from our side. */
  #dropLink (reason: string): void {
    const socket = this.#socket
    this.#detach()
    try {
      socket?.close(1000, reason)
    } catch {
      // Already closing, or gone: nothing more to do for it.
    }
  }

  /** `connection:ready` (or the SSE stream's ready event, with the rooms it resumed). */
  #onReady (data: ReadyData, stream?: StreamReady): void {
    this.#clock.clearTimeout(this.#connectTimer)
    this.#state = 'open'
    this.#ready = data
    this.#attempts = 0
    this.#tokenRetried = false
    this.#blockedUpgrades = 0
    const waiters = this.#connectWaiters
    this.#connectWaiters = []
    // Re-join before anything else goes out, so the app's first frames find the rooms joined.
    const resuming = new Set<string>()
    for (const [room, sequence] of this.#rooms) {
      if (!sequence.joined) continue
      if (stream !== undefined) {
        this.#resumedOverSse(room, sequence, stream)
        continue
      }
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

  /**
   * A room the new stream carries again: recovered when the server replayed from our cursor (a room
   * with no seq seen yet had no cursor and cannot be). A room missing from the stream is lost.
   */
  #resumedOverSse (room: string, sequence: RoomSequence, stream: StreamReady, quiet = false): void {
    if (!stream.rooms.includes(room)) {
      this.#rooms.delete(room)
      this.#emit('room:lost', { room, error: new KeelClientError(KeelClientErrorCode.CLOSED, `the event stream no longer carries room "${room}"`) })
      return
    }
    const seq = sequence.lastSeq
    const recovered = seq !== undefined && stream.recovered?.[room] === true
    // Not recovered: the stream goes on from the room's current seq, which it does not name; the next message sets the baseline.
    sequence.resumedAt(recovered ? seq : undefined, recovered)
    if (!(quiet && recovered)) this.#emit('resumed', { room, recovered, seq: seq ?? 0 })
  }

  #onSocketClosed (code: number, reason: string): void {
    const neverOpened = this.#socket !== undefined && !this.#socketOpened
    this.#detach()
    const wasOpen = this.#state === 'open'
    this.#ready = undefined
    this.#clock.clearTimeout(this.#connectTimer)
    if (code === TOKEN_EXPIRED && typeof this.#token === 'string') {
      this.#stop(new KeelClientError(KeelClientErrorCode.UNAUTHORIZED, 'the access token expired and the client has no way to get a new one', { closeCode: code }), code, reason)
      return
    }
    const lost = new KeelClientError(KeelClientErrorCode.CLOSED, `the connection closed (${code}) before the answer came`, { closeCode: code })
    for (const request of this.#requests.all()) this.#requests.holdOrFail(request, lost)
    if (!wasOpen) {
      // A browser tells nothing about a refused upgrade: ask the server over plain HTTP.
      if (neverOpened) this.#probe(this.#currentToken, this.#epoch, code, reason)
      else this.#attemptFailed(code, reason)
      return
    }
    const reconnect = this.#mayReconnect()
    this.#emit('close', { code, reason, reconnect })
    if (reconnect) this.#scheduleReconnect()
    else this.#giveUp(code, reason, false)
  }

  /** Asks why the socket did not open (handshake-probe.ts), within `probeTimeoutMs`, and acts on it; `code` and `reason` are the socket's. */
  #probe (token: string, epoch: number, code: number, reason: string): void {
    const abort = new AbortController()
    const timer = this.#clock.setTimeout(() => { abort.abort() }, this.#probeTimeoutMs)
    probeHandshake(this.#fetch, this.#socketUrl(token), abort.signal).then((verdict) => {
      this.#clock.clearTimeout(timer)
      if (epoch === this.#epoch) this.#onProbe(verdict, code, reason)
    }, ignore)
  }

  #onProbe (verdict: ProbeVerdict, code: number, reason: string): void {
    if (verdict === 'unauthorized') this.#tokenRefused()
    else if (verdict === 'origin-refused') this.#originRefused()
    else if (verdict === 'upgrade-blocked' && this.#transportChoice === 'auto') {
      // Once may be a race (the socket met a server still starting that the probe then found up):
      // the WebSocket is tried again at once, and only a second refusal in a row means it is blocked.
      if (++this.#blockedUpgrades < BLOCKED_UPGRADES_BEFORE_FALLBACK) {
        this.#attempt()
        return
      }
      this.#transport = 'sse'
      this.#emit('fallback', { transport: 'sse', reason: 'the server answers, but a WebSocket upgrade to it is refused' })
      this.#attempt()
    } else this.#attemptFailed(code, verdict === 'upgrade-blocked' ? 'the WebSocket upgrade was refused' : reason)
  }

  /** The SSE stream's request was answered with a refusal (its HTTP status says why). */
  #onStreamRefused (err: KeelClientError, rooms: readonly string[]): void {
    this.#detach()
    const status = err.status ?? 0
    if (status === 401) this.#tokenRefused()
    else if (status === 403 && rooms.length > 0) {
      // The same 403 names a refused room or a refused Origin: without the rooms, the next attempt tells which.
      for (const room of rooms) {
        this.#rooms.delete(room)
        this.#emit('room:lost', { room, error: new KeelClientError('FORBIDDEN', err.message, { status }) })
      }
      this.#attempt()
    } else if (status === 403) this.#originRefused()
    else if (status === 408 || status === 429 || status >= 500) this.#attemptFailed(ABNORMAL_CLOSURE, err.message)
    else this.#stop(new KeelClientError(KeelClientErrorCode.REFUSED, err.message, { status }), ABNORMAL_CLOSURE, err.message)
  }

  /** 401: the token function is asked once more (a refreshed token); a static token or a second 401 stops the client. */
  #tokenRefused (): void {
    if (typeof this.#token === 'function' && !this.#tokenRetried) {
      this.#tokenRetried = true
      this.#attempt()
      return
    }
    this.#stop(new KeelClientError(KeelClientErrorCode.UNAUTHORIZED, 'the server refused the access token (401)', { status: 401 }), ABNORMAL_CLOSURE, 'access token refused')
  }

  #originRefused (): void {
    const message = 'the server refused this page\'s Origin (403): add it to the server\'s CORS_ORIGINS'
    this.#stop(new KeelClientError(KeelClientErrorCode.ORIGIN_REFUSED, message, { status: 403 }), ABNORMAL_CLOSURE, 'Origin refused')
  }

  /** An attempt that never reached `connection:ready` and was not refused for good. */
  #attemptFailed (code: number, reason: string): void {
    this.#clock.clearTimeout(this.#connectTimer)
    if (this.#mayReconnect()) this.#scheduleReconnect()
    else this.#giveUp(code, reason, true)
  }

  #mayReconnect (): boolean {
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

  /** A refusal retrying cannot fix: everything pending and connect() reject with `err`; rooms are kept for a later connect(). */
  #stop (err: KeelClientError, code: number, reason: string): void {
    this.#clock.clearTimeout(this.#connectTimer)
    this.#dropLink(reason)
    this.#state = 'closed'
    this.#ready = undefined
    this.#epoch++
    this.#failAll(err)
    this.#emit('close', { code, reason, reconnect: false, error: err })
  }

  #failAll (err: KeelClientError): void {
    for (const request of this.#requests.all()) this.#requests.settle(request, err)
    const waiters = this.#connectWaiters
    this.#connectWaiters = []
    for (const waiter of waiters) waiter.reject(err)
  }

  // ---- SSE rooms ----

  /**
   * Joins or leaves `room` over SSE: a new stream with the new room set, resuming the others from
   * their cursor, replaces the current one once it is ready (both run meanwhile; seqs drop the
   * doubles). One change at a time, so each builds on the room set the one before left.
   */
  async #reopenSse (room: string, change: 'join' | 'leave'): Promise<JoinAck> {
    const run = this.#membership.then(async () => await this.#swapStream(room, change))
    this.#membership = run.catch(ignore)
    return await run
  }

  async #swapStream (room: string, change: 'join' | 'leave'): Promise<JoinAck> {
    const event = change === 'join' ? 'room:join' : 'room:leave'
    if (this.#state !== 'open' || this.#sse === undefined) throw notConnected(event)
    const sequence = this.#rooms.get(room)
    const rooms = this.rooms.filter((r) => r !== room)
    if (change === 'join') rooms.push(room)
    const stream = await this.#openStream(event, rooms)
    if (change === 'join' && this.#rooms.get(room) === sequence && sequence !== undefined && !sequence.joined) sequence.joinedAt(undefined)
    // The others resumed from their cursor: one that was not recovered lost messages meanwhile.
    for (const [other, s] of this.#rooms) if (other !== room && s.joined) this.#resumedOverSse(other, s, stream, true)
    return { room, joined: true, seq: sequence?.lastSeq ?? 0 }
  }

  /** Opens a stream for `rooms` beside the current one; once ready it becomes the current one. */
  async #openStream (event: string, rooms: string[]): Promise<StreamReady> {
    const previous = this.#sse
    return await new Promise((resolve, reject) => {
      const timer = this.#clock.setTimeout(() => {
        link.close()
        reject(new KeelClientError(KeelClientErrorCode.ACK_TIMEOUT, `no event stream for "${event}" within the ack timeout`))
      }, this.#requests.ackTimeoutMs)
      const settle = (err: KeelClientError | undefined, data?: StreamReady): void => {
        this.#clock.clearTimeout(timer)
        if (err === undefined && this.#sse === previous && this.#state === 'open') {
          this.#sse = link
          previous?.close()
          this.#ready = { ...this.#ready!, connectionId: data!.connectionId }
          resolve(data!)
          return
        }
        link.close()
        reject(err ?? new KeelClientError(KeelClientErrorCode.CLOSED, 'the connection closed before the stream was ready'))
      }
      const link: SseLink = new SseLink({
        url: this.#url,
        token: this.#currentToken,
        rooms,
        cursor: this.#cursor(rooms),
        fetch: this.#fetch,
        handlers: {
          ready: (data) => { settle(undefined, data) },
          event: (name, data) => { if (this.#sse === link) this.#onPush(name, data) },
          refused: (err) => { settle(err.status === 403 ? new KeelClientError('FORBIDDEN', err.message, { status: 403 }) : err) },
          lost: (code, reason) => {
            if (this.#sse === link) this.#onSocketClosed(code, reason)
            else settle(new KeelClientError(KeelClientErrorCode.CLOSED, `the event stream closed (${code}) before it was ready`, { closeCode: code }))
          }
        }
      })
      link.open()
    })
  }

  // ---- Requests ----

  #send (event: string, data: unknown, done: Answer): void {
    this.#transmit(this.#requests.add(event, data, done))
  }

  /** Sends (again) on the ready socket, or as a POST beside the SSE stream, and arms the ack timeout. */
  #transmit (request: PendingRequest): void {
    if (!this.#requests.isPending(request)) return // answered meanwhile (e.g. a listener called close())
    const sse = this.#sse
    if (sse !== undefined) {
      this.#requests.markSent(request)
      sse.post(request.frame).then((answer) => { this.#onAnswer(answer.event === 'error' ? 'error' : 'ack', answer.data, answer.id) }, () => {
        // No answer at all: the connection is as good as lost (a publish waits for the next one).
        if (this.#sse === sse) this.#onSocketClosed(ABNORMAL_CLOSURE, 'a POST /events got no answer')
        else this.#requests.holdOrFail(request, notConnected(request.event, 'the request got no answer'))
      })
      return
    }
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
    this.#onPush(event, data)
  }

  /** A server push (over either transport): sequenced ones are checked against their room's seq. */
  #onPush (event: string, data: unknown): void {
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
