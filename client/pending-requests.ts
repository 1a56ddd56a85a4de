// The requests waiting for their ack: each with its envelope id, its frame and its one timer (the ack
// timeout while sent, the retry window while waiting for a connection). Each is answered exactly once.
// Sending is the client's job; this table only knows ids, timers and answers.

import { KeelClientError, KeelClientErrorCode } from './errors.ts'
import { encodeFrame, isRecord } from './frames.ts'
import type { KeelClock } from './transport.ts'

/** Called once, synchronously with the frame that answers (so nothing runs in between). */
export type Answer = (err: KeelClientError | undefined, data?: unknown) => void

export interface PendingRequest {
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
  readonly done: Answer
}

export interface PendingRequestsOptions {
  clock: KeelClock
  /** Prefix of every envelope id, unique per client. */
  idPrefix: string
  ackTimeoutMs: number
  publishRetryMs: number
}

export class PendingRequests {
  readonly #byId = new Map<string, PendingRequest>()
  readonly #options: PendingRequestsOptions
  #nextId = 0

  constructor (options: PendingRequestsOptions) {
    this.#options = options
  }

  get ackTimeoutMs (): number {
    return this.#options.ackTimeoutMs
  }

  /** A new request with a fresh id, not sent yet. A `room:publish` keeps its id across reconnects. */
  add (event: string, data: unknown, done: Answer): PendingRequest {
    const id = `${this.#options.idPrefix}${++this.#nextId}`
    const retry = event === 'room:publish'
    const room = retry && isRecord(data) && typeof data.room === 'string' ? data.room : undefined
    const request: PendingRequest = {
      id, event, frame: encodeFrame(event, data, id), room, retry, firstSentAt: this.#options.clock.now(), timer: undefined, sent: false, done
    }
    this.#byId.set(id, request)
    return request
  }

  get (id: string): PendingRequest | undefined {
    return this.#byId.get(id)
  }

  /** False once answered (e.g. a listener called close() meanwhile). */
  isPending (request: PendingRequest): boolean {
    return this.#byId.get(request.id) === request
  }

  /** Snapshot, oldest first: answering one while iterating is safe. */
  all (): PendingRequest[] {
    return [...this.#byId.values()]
  }

  /** Those waiting for a connection (or for their room to be joined again), oldest first. */
  unsent (room?: string): PendingRequest[] {
    return this.all().filter((request) => !request.sent && (room === undefined || request.room === room))
  }

  /** The frame went out: the ack is due within `ackTimeoutMs`. */
  markSent (request: PendingRequest): void {
    this.#options.clock.clearTimeout(request.timer)
    request.sent = true
    request.timer = this.#options.clock.setTimeout(() => {
      this.settle(request, new KeelClientError(KeelClientErrorCode.ACK_TIMEOUT, `no answer to "${request.event}" within ${this.#options.ackTimeoutMs} ms`))
    }, this.#options.ackTimeoutMs)
  }

  /**
   * The connection was lost: a publish still inside its retry window waits for the next connection
   * (at most until the window ends); anything else fails with `lost`.
   */
  holdOrFail (request: PendingRequest, lost: KeelClientError): void {
    const { clock, publishRetryMs } = this.#options
    const left = publishRetryMs - (clock.now() - request.firstSentAt)
    if (!request.retry || left <= 0) {
      this.settle(request, lost)
      return
    }
    clock.clearTimeout(request.timer)
    request.sent = false
    request.timer = clock.setTimeout(() => {
      this.settle(request, new KeelClientError(KeelClientErrorCode.CLOSED, `"${request.event}" was not acknowledged within ${publishRetryMs} ms across reconnects`))
    }, left)
  }

  /** Answers a request once; later answers (a late ack after a timeout) are ignored. */
  settle (request: PendingRequest, err: KeelClientError | undefined, data?: unknown): void {
    if (!this.isPending(request)) return
    this.#byId.delete(request.id)
    this.#options.clock.clearTimeout(request.timer)
    request.done(err, data)
  }
}
