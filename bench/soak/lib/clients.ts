// Load clients for the reliability runs: HTTP/1.1 keep-alive and HTTP/2 clients that record, per request,
// when it was issued, written, answered and finished (or how it failed) instead of throwing, and a steady
// load of sequential workers over them. Every request and every load is bounded (count, time).

import { Agent, request as httpsRequest } from 'node:https'
import { request as httpRequest, Agent as HttpAgent, type IncomingMessage } from 'node:http'
import { connect as h2connect, type ClientHttp2Session } from 'node:http2'
import { once } from 'node:events'
import { performance } from 'node:perf_hooks'

/** A listening server: a started Keel (`startKeel`) or anything with a URL and the CA to trust. */
export interface Target { url: string, ca?: Buffer }

export interface Exchange {
  protocol: 'http/1.1' | 'h2'
  /** performance.now() when the client issued it. */
  issuedAt: number
  /**
   * When the whole request had been written to the connection: HTTP/1.1 the request's 'finish'; HTTP/2
   * the check phase after the stream was opened, by when node:http2 has flushed its frames (it writes
   * them from a native immediate that runs before the JavaScript ones).
   */
  writtenAt?: number
  /** HTTP/2: the stream id (compare with the last stream id of a GOAWAY). */
  streamId?: number
  /** When the response headers arrived. */
  startedAt?: number
  /** When the whole response was read. */
  endedAt?: number
  status?: number
  /** Transport failure (reset, refused stream, hang-up…); undefined when the response completed. */
  error?: string
}

export interface HttpClient {
  protocol: Exchange['protocol']
  /** One GET; never rejects — the outcome is in the Exchange. Fails after `timeoutMs` (default 10 s). */
  get: (path: string, timeoutMs?: number) => Promise<Exchange>
  close: () => void
}

export interface H2Client extends HttpClient {
  session: ClientHttp2Session
  /** The GOAWAY the server sent, if any. */
  goaway: () => { code: number, lastStreamId: number, at: number } | undefined
}

const DEFAULT_TIMEOUT_MS = 10_000

function describe (err: unknown): string {
  const e = err as NodeJS.ErrnoException
  return e.code !== undefined ? `${e.code}: ${e.message}` : e.message
}

/** Reads a response body to its end; resolves with its size. */
async function readBody (stream: NodeJS.ReadableStream): Promise<number> {
  let bytes = 0
  for await (const chunk of stream) bytes += (chunk as Buffer).length
  return bytes
}

/** Runs `work` on the exchange; a failure or the timeout is recorded as its `error`. */
async function settle (exchange: Exchange, timeoutMs: number, work: (signal: AbortSignal) => Promise<void>): Promise<Exchange> {
  const abort = new AbortController()
  const timer = setTimeout(() => abort.abort(new Error(`no complete response within ${timeoutMs} ms`)), timeoutMs)
  try {
    await work(abort.signal)
    exchange.endedAt = performance.now()
  } catch (err) {
    exchange.error = describe(abort.signal.aborted ? abort.signal.reason : err)
  } finally {
    clearTimeout(timer)
  }
  return exchange
}

/** HTTP/1.1 over keep-alive connections (at most `connections`; TLS for an https URL, ALPN http/1.1). */
export function h1Client (target: Target, connections = 1): HttpClient {
  const tls = target.url.startsWith('https:')
  const agentOptions = { keepAlive: true, maxSockets: connections, ca: target.ca, servername: 'localhost', ALPNProtocols: ['http/1.1'] }
  const agent = tls ? new Agent(agentOptions) : new HttpAgent(agentOptions)
  const send = tls ? httpsRequest : httpRequest
  return {
    protocol: 'http/1.1',
    get: async (path, timeoutMs = DEFAULT_TIMEOUT_MS) => {
      const exchange: Exchange = { protocol: 'http/1.1', issuedAt: performance.now() }
      return await settle(exchange, timeoutMs, async (signal) => {
        const req = send(new URL(path, target.url), { agent, signal })
        // Errors after the response started must not go unhandled: the body read below reports them.
        req.on('error', () => {})
        req.once('finish', () => { exchange.writtenAt = performance.now() })
        req.end()
        const [res] = await once(req, 'response') as [IncomingMessage]
        exchange.startedAt = performance.now()
        exchange.status = res.statusCode
        await readBody(res)
        // A response cut short (the connection closed mid-body) ends without `complete`.
        if (!res.complete) throw new Error('response ended before its body was complete')
      })
    },
    close: () => agent.destroy()
  }
}

/** One HTTP/2 session (TLS, ALPN h2) that records the server's GOAWAY. */
export async function h2Client (target: Target, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<H2Client> {
  const session = h2connect(target.url, { ca: target.ca, servername: 'localhost' })
  let goaway: { code: number, lastStreamId: number, at: number } | undefined
  session.on('error', () => {})
  session.on('goaway', (code, lastStreamId) => { goaway = { code, lastStreamId, at: performance.now() } })
  const timer = setTimeout(() => session.destroy(new Error(`no HTTP/2 session within ${timeoutMs} ms`)), timeoutMs)
  try {
    await once(session, 'connect')
  } finally {
    clearTimeout(timer)
  }
  return {
    protocol: 'h2',
    session,
    goaway: () => goaway,
    get: async (path, requestTimeoutMs = DEFAULT_TIMEOUT_MS) => {
      const exchange: Exchange = { protocol: 'h2', issuedAt: performance.now() }
      return await settle(exchange, requestTimeoutMs, async (signal) => {
        const stream = session.request({ ':path': path }, { signal })
        stream.on('error', () => {})
        setImmediate(() => { exchange.writtenAt = performance.now() })
        stream.once('ready', () => { exchange.streamId = stream.id })
        const [headers] = await once(stream, 'response') as [Record<string, string>]
        exchange.startedAt = performance.now()
        exchange.status = Number(headers[':status'])
        await readBody(stream)
        if (stream.rstCode !== undefined && stream.rstCode !== 0) throw new Error(`stream reset with code ${stream.rstCode}`)
      })
    },
    close: () => session.destroy()
  }
}

/** `client.get(path)` as a status-returning call that throws on a transport failure (for `probeSequentially`). */
export function statusOf (client: HttpClient, path: string): () => Promise<number> {
  return async () => {
    const exchange = await client.get(path)
    if (exchange.error !== undefined) throw new Error(exchange.error)
    return exchange.status!
  }
}

export interface SteadyLoadOptions {
  path: string
  /** Sequential workers per client (HTTP/1.1: match its connections; HTTP/2: streams in flight). */
  workersPerClient: number
  /** Stop issuing after this many requests in all. */
  maxRequests: number
  /** Stop issuing after this long. */
  maxMs: number
}

export interface SteadyLoad {
  /** Every request settled so far, in the order they settled. */
  exchanges: Exchange[]
  /** Resolves once `count` requests have settled (or the load has finished). */
  reached: (count: number) => Promise<void>
  /** Resolves when every worker has stopped (budget spent, `stop()` called, or each hit a failure). */
  finished: Promise<void>
  /** Stop issuing; resolves once the requests in flight have settled. */
  stop: () => Promise<void>
}

/**
 * Sequential workers over the clients, each sending its next GET when the previous one settled. A worker
 * stops at its first failure, as a real client whose connection died would stop using it.
 */
export function steadyLoad (clients: readonly HttpClient[], options: SteadyLoadOptions): SteadyLoad {
  const exchanges: Exchange[] = []
  const waiters: Array<{ count: number, resolve: () => void }> = []
  const state = { stopped: false }
  const deadline = performance.now() + options.maxMs
  const worker = async (client: HttpClient): Promise<void> => {
    while (!state.stopped && exchanges.length < options.maxRequests && performance.now() < deadline) {
      const exchange = await client.get(options.path)
      exchanges.push(exchange)
      for (const w of waiters.filter((w) => exchanges.length >= w.count)) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve()
      }
      if (exchange.error !== undefined) return
    }
  }
  const finished = Promise.all(clients.flatMap((c) => Array.from({ length: options.workersPerClient }, async () => await worker(c)))).then(() => {})
  let over = false
  finished.then(() => {
    over = true
    for (const w of waiters.splice(0)) w.resolve()
  }, () => {})
  return {
    exchanges,
    finished,
    reached: async (count) => {
      if (over || exchanges.length >= count) return
      await new Promise<void>((resolve) => waiters.push({ count, resolve }))
    },
    stop: async () => {
      state.stopped = true
      await finished
    }
  }
}
