// Stand-ins for unit tests of WebSocket clients: a socket the test drives frame by frame (the server's
// side scripted, the client's frames recorded) and a clock whose timers run only when the test advances it.

import type { KeelClock, WebSocketLike } from '../../client/keel-client.ts'

type Handler<E> = ((event: E) => void) | null

export interface SentFrame {
  event: string
  data?: any
  id?: string
}

export class FakeSocket implements WebSocketLike {
  readonly url: string
  readyState = 0
  onopen: Handler<unknown> = null
  onmessage: Handler<{ data: unknown }> = null
  onclose: Handler<{ code: number, reason: string }> = null
  onerror: Handler<unknown> = null
  /** What the client sent, parsed. */
  readonly sent: SentFrame[] = []
  /** Set when the client closed this socket. */
  closedByClient: { code?: number, reason?: string } | undefined

  constructor (url: string) {
    this.url = url
  }

  send (data: string): void {
    if (this.readyState !== 1) throw new Error(`send in readyState ${this.readyState}`)
    this.sent.push(JSON.parse(data) as SentFrame)
  }

  close (code?: number, reason?: string): void {
    this.closedByClient = { code, reason }
    this.readyState = 3
  }

  /** The upgrade succeeded and the server said `connection:ready`. */
  accept (connectionId = 'conn-1', sub = 'user-1'): void {
    this.readyState = 1
    this.onopen?.({})
    this.receive({ event: 'connection:ready', data: { connectionId, user: { sub, scopes: [], exp: 0 } } })
  }

  /** A frame from the server. */
  receive (message: unknown): void {
    this.onmessage?.({ data: JSON.stringify(message) })
  }

  /** Answers the client's last frame of `event` with an ack (or an error when `error` is given). */
  answer (event: string, data: unknown, error?: { code: string, message: string }): SentFrame {
    const frame = this.sent.findLast((f) => f.event === event)
    if (frame === undefined) throw new Error(`the client sent no "${event}"`)
    this.receive(error === undefined ? { event: 'ack', id: frame.id, data } : { event: 'error', id: frame.id, data: error })
    return frame
  }

  /** The connection ended from the server's or the network's side (1006: no close frame). */
  drop (code = 1006, reason = ''): void {
    this.readyState = 3
    this.onerror?.({})
    this.onclose?.({ code, reason })
  }
}

/** A socket factory that keeps every socket it made, newest last. */
export function fakeSockets (): { createSocket: (url: string) => FakeSocket, sockets: FakeSocket[], last: () => FakeSocket } {
  const sockets: FakeSocket[] = []
  return {
    sockets,
    createSocket: (url) => {
      const socket = new FakeSocket(url)
      sockets.push(socket)
      return socket
    },
    last: () => {
      const socket = sockets.at(-1)
      if (socket === undefined) throw new Error('no socket was created')
      return socket
    }
  }
}

interface Timer { id: number, at: number, fn: () => void }

export class FakeClock implements KeelClock {
  #now = 0
  #nextId = 0
  #timers: Timer[] = []
  /** Every delay ever passed to setTimeout, in order. */
  readonly delays: number[] = []

  now = (): number => this.#now

  setTimeout = (fn: () => void, ms: number): unknown => {
    const timer = { id: ++this.#nextId, at: this.#now + ms, fn }
    this.#timers.push(timer)
    this.delays.push(ms)
    return timer.id
  }

  clearTimeout = (handle: unknown): void => {
    this.#timers = this.#timers.filter((t) => t.id !== handle)
  }

  /** Timers still waiting. */
  get pending (): number {
    return this.#timers.length
  }

  /** Moves time forward, running each timer that comes due (in order, including ones they set). */
  advance (ms: number): void {
    const end = this.#now + ms
    for (let guard = 0; guard < 10_000; guard++) {
      const due = this.#timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0]
      if (due === undefined) break
      this.#timers = this.#timers.filter((t) => t !== due)
      this.#now = due.at
      due.fn()
    }
    this.#now = end
  }
}

/** Lets promise callbacks (an async token, an awaited ack) run; no timer, no waiting on the clock. */
export async function flushMicrotasks (): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve()
}
