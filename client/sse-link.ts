// The SSE fallback's connection: one `GET /sse?room=…` read with fetch and the event-stream parser
// (fetch, unlike EventSource, sends the token as a header, reads a refusal's status, and sets
// Last-Event-ID itself), and `POST /events?stream=<connectionId>` for what a WebSocket would send,
// each answered by its own HTTP response. The stream's room set is fixed: joining or leaving opens a
// new link. A stream needs a room, so a link without one has no stream: the handshake probe checks
// token and Origin, and its events go without `?stream=` (those that need no room still work).
// Standard fetch and streams only, as in browsers and Node.

import { KeelClientError, problemError } from './errors.ts'
import { EventStreamParser } from './event-stream.ts'
import { isRecord, type Envelope } from './frames.ts'
import { httpUrl, probeHandshake, type FetchLike } from './handshake-probe.ts'
import { ABNORMAL_CLOSURE, TOKEN_EXPIRED } from './transport.ts'

/** The data of the stream's first event. */
export interface StreamReady {
  /** Empty for a link without a stream (no room). */
  connectionId: string
  rooms: string[]
  /** Per room resumed from Last-Event-ID: true = everything after the cursor follows. */
  recovered?: Record<string, boolean>
  user?: { sub: string, scopes: string[], exp: number }
}

export interface SseLinkHandlers {
  ready: (data: StreamReady) => void
  /** A pushed event (a room's message, an app's feed event…), its data parsed. */
  event: (event: string, data: unknown) => void
  /** The server answered the stream's request with a refusal. */
  refused: (err: KeelClientError) => void
  /** The stream ended or broke, as a WebSocket close code: 4001 when the token expired, else 1006. */
  lost: (code: number, reason: string) => void
}

export interface SseLinkOptions {
  /** The `/ws` URL the SSE endpoints sit next to. */
  url: string
  token: string
  rooms: readonly string[]
  /** Last seq seen per room, sent as Last-Event-ID so the server replays what came after. */
  cursor: Readonly<Record<string, number>>
  fetch: FetchLike
  handlers: SseLinkHandlers
}

async function readJson (response: Response): Promise<unknown> {
  try {
    return await response.json()
  } catch {
    return undefined
  }
}

export class SseLink {
  readonly #options: SseLinkOptions
  readonly #abort = new AbortController()
  #connectionId: string | undefined
  /** The stream's `error` event (the token expired) that explains its end. */
  #endedFor: { code: number, reason: string } | undefined
  #finished = false

  constructor (options: SseLinkOptions) {
    this.#options = options
  }

  get connectionId (): string | undefined { return this.#connectionId }

  /** Opens the stream; the handlers say how it went. */
  open (): void {
    const { url, token, rooms, cursor } = this.#options
    if (rooms.length === 0) {
      this.#openWithoutStream()
      return
    }
    const stream = httpUrl(url, 'sse')
    for (const room of rooms) stream.searchParams.append('room', room)
    const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'text/event-stream' }
    if (Object.keys(cursor).length > 0) headers['last-event-id'] = JSON.stringify(cursor)
    this.#options.fetch(stream.href, { headers, credentials: 'omit', cache: 'no-store', signal: this.#abort.signal })
      .then(async (response) => { await this.#read(response) })
      .catch(() => { this.#lost(ABNORMAL_CLOSURE, 'the event stream broke') })
  }

  /**
   * Sends one envelope as `POST /events?stream=`; resolves with the answering envelope (`ack`, or
   * `error` built from a problem+json refusal). Rejects when no answer came (the network).
   */
  async post (frame: string): Promise<Envelope> {
    const { url, token } = this.#options
    const events = httpUrl(url, 'events')
    if (this.#connectionId !== undefined && this.#connectionId !== '') events.searchParams.set('stream', this.#connectionId)
    const response = await this.#options.fetch(events.href, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: frame,
      credentials: 'omit',
      cache: 'no-store'
    })
    const body = await readJson(response)
    const id = (JSON.parse(frame) as { id?: unknown }).id
    if (response.ok) {
      if (isRecord(body) && typeof body.event === 'string') return { event: body.event, data: body.data, id: body.id }
      return { event: 'ack', data: undefined, id }
    }
    const err = problemError(response.status, body)
    return { event: 'error', data: { code: err.code, message: err.message, errors: err.errors }, id }
  }

  /** Stops reading; no handler is called from now on. */
  close (): void {
    this.#finished = true
    this.#abort.abort()
  }

  /** No room, no stream: the same handshake a stream would meet, asked at /ws (426 = it passed). */
  #openWithoutStream (): void {
    const { url, token, fetch, handlers } = this.#options
    const socketUrl = new URL(url)
    socketUrl.searchParams.set('access_token', token)
    probeHandshake(fetch, socketUrl.href, this.#abort.signal).then((verdict) => {
      if (verdict === 'upgrade-blocked') {
        this.#connectionId = ''
        if (!this.#finished) handlers.ready({ connectionId: '', rooms: [] })
        return
      }
      if (verdict === 'retry') {
        this.#lost(ABNORMAL_CLOSURE, 'the server did not answer')
        return
      }
      const status = verdict === 'unauthorized' ? 401 : 403
      if (this.#finish()) handlers.refused(new KeelClientError(verdict === 'unauthorized' ? 'UNAUTHORIZED' : 'FORBIDDEN', `the server answered ${status}`, { status }))
    }, () => {})
  }

  async #read (response: Response): Promise<void> {
    if (response.status !== 200 || response.body === null) {
      const body = await readJson(response)
      if (this.#finish()) this.#options.handlers.refused(problemError(response.status, body))
      return
    }
    const parser = new EventStreamParser()
    const decoder = new TextDecoder()
    const reader = response.body.getReader()
    for (;;) {
      const { done, value } = await reader.read()
      if (this.#finished) return
      if (done) break
      for (const event of parser.push(decoder.decode(value, { stream: true }))) this.#dispatch(event.event, event.data)
    }
    const why = this.#endedFor ?? { code: ABNORMAL_CLOSURE, reason: 'the event stream ended' }
    this.#lost(why.code, why.reason)
  }

  #dispatch (event: string, text: string): void {
    if (this.#finished) return
    let data: unknown
    try {
      data = JSON.parse(text)
    } catch {
      return
    }
    const { handlers } = this.#options
    if (event === 'stream:ready') {
      if (!isRecord(data) || typeof data.connectionId !== 'string') return
      this.#connectionId = data.connectionId
      handlers.ready(data as unknown as StreamReady)
      return
    }
    if (event === 'error') {
      // The stream's own error comes just before it ends: the token expired (as close 4001 on a WebSocket).
      const code = isRecord(data) && data.code === 'UNAUTHORIZED' ? TOKEN_EXPIRED : ABNORMAL_CLOSURE
      const reason = isRecord(data) && typeof data.message === 'string' ? data.message : 'the event stream failed'
      this.#endedFor = { code, reason }
      return
    }
    handlers.event(event, data)
  }

  #lost (code: number, reason: string): void {
    if (this.#finish()) this.#options.handlers.lost(code, reason)
  }

  /** True the first time: the link reports its end once. */
  #finish (): boolean {
    if (this.#finished) return false
    this.#finished = true
    return true
  }
}

/** A token's claims as `connection:ready` would report them (the stream's ready event names no user). Unverified: the client's own token. */
export function tokenUser (token: string): { sub: string, scopes: string[], exp: number } {
  let claims: Record<string, unknown> = {}
  try {
    const payload = token.split('.')[1] ?? ''
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(payload.length / 4) * 4, '='))
    const parsed: unknown = JSON.parse(json)
    if (isRecord(parsed)) claims = parsed
  } catch {
    // Not a JWT the client can read: the user stays unnamed.
  }
  const scopes = [claims.scope, claims.scp].flatMap((v) => typeof v === 'string' ? v.split(' ') : Array.isArray(v) ? v : []).filter((s): s is string => typeof s === 'string' && s !== '')
  return { sub: typeof claims.sub === 'string' ? claims.sub : '', scopes: [...new Set(scopes)], exp: typeof claims.exp === 'number' ? claims.exp : 0 }
}
