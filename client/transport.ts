// What the client needs from its surroundings: a socket with the standard WebSocket API (the
// browser's, Node's global one, or `ws`) and a clock. Both are injectable, so tests can script the
// server and drive time; the defaults use only what browsers and Node have in common.

/** Handler slots typed with method syntax (bivariant), so the DOM's and `ws`'s socket types both fit. */
type Handler<E> = { bivariant (event: E): void }['bivariant']

/** The part of the standard WebSocket this client uses. */
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

/** The standard `readyState` of an open socket. */
export const OPEN = 1
/** The close code of a socket that died without a close frame (the client uses it for its own give-ups too). */
export const ABNORMAL_CLOSURE = 1006
/** The server's close code for an access token that expired while connected. */
export const TOKEN_EXPIRED = 4001

export const systemClock: KeelClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => { clearTimeout(handle as Parameters<typeof clearTimeout>[0]) }
}

/** The global WebSocket (browsers, Node 22+). */
export function openGlobalWebSocket (url: string): WebSocketLike {
  return new globalThis.WebSocket(url)
}
