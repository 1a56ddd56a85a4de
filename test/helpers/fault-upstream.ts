// A fault-injecting upstream for tests and demos: a real node:http server on 127.0.0.1 that answers
// each request from a script (200, 5xx, 503 + Retry-After, 429, slow headers, slow body, connection
// reset, invalid JSON), counts requests and records their headers, arrival times and whether the
// caller abandoned them. Beside it, an upstream that is not HTTP at all (a raw TCP server answering garbage).

import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net'
import { once } from 'node:events'
import { performance } from 'node:perf_hooks'

type Body = unknown | ((request: RecordedRequest) => unknown)

export type Fault =
  | { kind: 'json', status: number, body: Body, headers?: Record<string, string> }
  | { kind: 'slow-headers', delayMs: number, then: Fault }
  | { kind: 'slow-body', delayMs: number, body: Body }
  | { kind: 'reset' }
  | { kind: 'invalid-json' }

/** A quote for the symbol in the request path (`/quotes/:symbol`). */
export const quoteFor = (request: RecordedRequest) => ({
  symbol: decodeURIComponent(request.url.split('/').pop() ?? ''),
  price: 101.25,
  currency: 'USD',
  asOf: '2026-01-02T03:04:05Z'
})

export const fault = {
  ok: (body: Body = quoteFor): Fault => ({ kind: 'json', status: 200, body }),
  status: (status: number, headers?: Record<string, string>): Fault => ({ kind: 'json', status, body: { error: `status ${status}` }, headers }),
  /** 503, with `Retry-After` when given (seconds or an HTTP date). */
  unavailable: (retryAfter?: string): Fault => fault.status(503, retryAfter === undefined ? undefined : { 'retry-after': retryAfter }),
  tooManyRequests: (retryAfter?: string): Fault => fault.status(429, retryAfter === undefined ? undefined : { 'retry-after': retryAfter }),
  /** Waits `delayMs` before sending anything, then answers `then`. */
  slowHeaders: (delayMs: number, then: Fault = fault.ok()): Fault => ({ kind: 'slow-headers', delayMs, then }),
  /** Sends 200 headers and half the body, stalls `delayMs`, then sends the rest. */
  slowBody: (delayMs: number, body: Body = quoteFor): Fault => ({ kind: 'slow-body', delayMs, body }),
  /** Resets the TCP connection (RST) as soon as the request arrives. */
  reset: (): Fault => ({ kind: 'reset' }),
  /** 200 with `content-type: application/json` and a body that is not JSON. */
  invalidJson: (): Fault => ({ kind: 'invalid-json' })
}

export interface RecordedRequest {
  method: string
  url: string
  headers: IncomingHttpHeaders
  /** performance.now() at arrival. */
  at: number
  /** The caller closed the connection before the answer was complete (e.g. it aborted the call). */
  abandoned: boolean
}

export interface FaultUpstream {
  url: string
  requests: RecordedRequest[]
  readonly count: number
  /** Answers the next requests with these, in order; afterwards with the `otherwise` fault. */
  script: (...faults: Fault[]) => void
  /** What requests beyond the script get. */
  otherwise: (fault: Fault) => void
  /** Resolves once `n` requests in total have arrived; rejects after `timeoutMs`. */
  waitForRequests: (n: number, timeoutMs?: number) => Promise<void>
  /** Resolves once `n` requests have been abandoned by the caller; rejects after `timeoutMs`. */
  waitForAbandoned: (n: number, timeoutMs?: number) => Promise<void>
  close: () => Promise<void>
}

interface Teardown { teardown: (fn: () => unknown) => void }

export async function startFaultUpstream (t: Teardown, otherwise: Fault = fault.ok()): Promise<FaultUpstream> {
  const queue: Fault[] = []
  let fallback = otherwise
  const requests: RecordedRequest[] = []
  const timers = new Set<NodeJS.Timeout>()
  // Waiters for the next arrival or abandonment.
  const changes: Array<() => void> = []

  function later (ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      timers.delete(timer)
      fn()
    }, ms)
    timers.add(timer)
  }

  const bodyOf = (body: Body, request: RecordedRequest): string =>
    JSON.stringify(typeof body === 'function' ? (body as (r: RecordedRequest) => unknown)(request) : body)

  function answer (f: Fault, req: IncomingMessage, res: ServerResponse, request: RecordedRequest): void {
    if (res.destroyed) return
    switch (f.kind) {
      case 'json': {
        const text = bodyOf(f.body, request)
        res.writeHead(f.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...f.headers })
        res.end(text)
        return
      }
      case 'slow-headers':
        later(f.delayMs, () => answer(f.then, req, res, request))
        return
      case 'slow-body': {
        const text = bodyOf(f.body, request)
        const half = Math.floor(text.length / 2)
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
        res.write(text.slice(0, half))
        later(f.delayMs, () => { if (!res.destroyed) res.end(text.slice(half)) })
        return
      }
      case 'reset':
        req.socket.resetAndDestroy()
        return
      case 'invalid-json': {
        const text = '{"symbol": "X", "price": oops'
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
        res.end(text)
      }
    }
  }

  const server = createServer((req, res) => {
    const request: RecordedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, at: performance.now(), abandoned: false }
    requests.push(request)
    res.on('close', () => {
      if (res.writableFinished) return
      request.abandoned = true
      for (const notify of changes.splice(0)) notify()
    })
    for (const notify of changes.splice(0)) notify()
    // Drain the request body before answering, so every fault is about the response.
    req.resume()
    req.on('end', () => answer(queue.shift() ?? fallback, req, res, request))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo

  /** Resolves once `count()` reaches `n`, re-checked on every arrival or abandonment; rejects after `timeoutMs`. */
  async function waitUntil (count: () => number, n: number, what: string, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs
    while (count() < n) {
      const left = deadline - performance.now()
      if (left <= 0) throw new Error(`fault upstream saw ${count()} ${what}, expected ${n}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        changes.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  let closed = false
  async function close (): Promise<void> {
    if (closed) return
    closed = true
    for (const timer of timers) clearTimeout(timer)
    server.closeAllConnections()
    server.close()
    await once(server, 'close')
  }
  t.teardown(close)

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    get count () { return requests.length },
    script: (...faults) => { queue.push(...faults) },
    otherwise: (f) => { fallback = f },
    waitForRequests: (n, timeoutMs = 5000) => waitUntil(() => requests.length, n, 'requests', timeoutMs),
    waitForAbandoned: (n, timeoutMs = 5000) => waitUntil(() => requests.filter((r) => r.abandoned).length, n, 'abandoned requests', timeoutMs),
    close
  }
}

export interface NonHttpUpstream {
  url: string
  /** Connections that sent something and got the garbage back. */
  readonly count: number
  close: () => Promise<void>
}

/**
 * A raw TCP server on 127.0.0.1 that answers whatever arrives with bytes that are not HTTP (an SSH
 * banner by default, as when an upstream URL points at the wrong port), then closes the connection.
 */
export async function startNonHttpUpstream (t: Teardown, reply = 'SSH-2.0-OpenSSH_9.6\r\nProtocol mismatch.\r\n'): Promise<NonHttpUpstream> {
  let count = 0
  const sockets = new Set<Socket>()
  const server = createTcpServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    socket.once('data', () => {
      count++
      socket.end(reply)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  let closed = false
  async function close (): Promise<void> {
    if (closed) return
    closed = true
    for (const socket of sockets) socket.destroy()
    server.close()
    await once(server, 'close')
  }
  t.teardown(close)
  return { url: `http://127.0.0.1:${port}`, get count () { return count }, close }
}
