// An SSE test client: opens GET /sse on a listening test app (real TLS, HTTP/2 or HTTP/1.1), parses the
// stream incrementally, and waits (bounded) for the next event matching a predicate or for the end.

import { once } from 'node:events'
import { connect as h2connect, type ClientHttp2Session, type OutgoingHttpHeaders } from 'node:http2'
import { request as httpsRequest } from 'node:https'
import type { IncomingMessage } from 'node:http'
import type { Listening } from './app.ts'
import { testToken } from './tokens.ts'

interface Teardown { teardown: (fn: () => unknown) => void }

/** One parsed SSE block: an event, or a comment (`: ping`). */
export interface SseEvent { id?: string, event?: string, data?: string, comment?: string }

export interface SseClient {
  status: number
  headers: Record<string, unknown>
  /** The whole body, for refusals (problem+json). */
  body: () => Promise<string>
  /** The next unread block matching `predicate`, waiting at most `timeoutMs`. */
  next: (predicate: (e: SseEvent) => boolean, timeoutMs?: number) => Promise<SseEvent>
  /** Resolves when the server ends the stream. */
  ended: (timeoutMs?: number) => Promise<void>
  close: () => void
  /** Stops reading (the server's writes back up), and reads again. */
  pause: () => void
  resume: () => void
}

function parseBlock (block: string): SseEvent {
  const e: SseEvent = {}
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) e.comment = line.slice(1).trim()
    else {
      const i = line.indexOf(':')
      const field = line.slice(0, i)
      const value = line.slice(i + 1).replace(/^ /, '')
      if (field === 'id' || field === 'event' || field === 'data') e[field] = value
    }
  }
  return e
}

export interface SseOpenOptions { path?: string, token?: string | null, headers?: Record<string, string>, h1?: boolean }

/** Opens /sse (HTTP/2 unless `h1`) and parses the stream incrementally as it arrives. */
export async function openSse (t: Teardown, server: Pick<Listening, 'url' | 'ca'>, options: SseOpenOptions = {}): Promise<SseClient> {
  const path = options.path ?? '/sse?room=lobby'
  const token = options.token === undefined ? testToken({ sub: 'user-1' }) : options.token
  const headers: Record<string, string> = { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...options.headers }
  let stream: NodeJS.ReadableStream & { destroy: () => void }
  let status: number
  let responseHeaders: Record<string, unknown>
  if (options.h1 === true) {
    const req = httpsRequest(`${server.url}${path}`, { ca: server.ca, servername: 'localhost', ALPNProtocols: ['http/1.1'], agent: false, headers } as never)
    req.on('error', () => {})
    req.end()
    const [res] = await once(req, 'response') as [IncomingMessage]
    t.teardown(() => req.destroy())
    stream = res
    status = res.statusCode ?? 0
    responseHeaders = res.headers
  } else {
    const session: ClientHttp2Session = h2connect(server.url, { ca: server.ca, servername: 'localhost', ALPNProtocols: ['h2'] })
    session.on('error', () => {})
    t.teardown(() => session.destroy())
    const req = session.request({ ':path': path, ...headers } as OutgoingHttpHeaders)
    req.on('error', () => {})
    const [h] = await once(req, 'response') as [Record<string, unknown>]
    stream = req
    status = Number(h[':status'])
    responseHeaders = h
  }
  stream.setEncoding('utf8')
  let buffer = ''
  let raw = ''
  let ended = false
  const inbox: SseEvent[] = []
  const waiters = new Set<() => void>()
  const wake = (): void => { for (const w of [...waiters]) w() }
  stream.on('data', (chunk: string) => {
    raw += chunk
    buffer += chunk
    let i
    while ((i = buffer.indexOf('\n\n')) >= 0) {
      inbox.push(parseBlock(buffer.slice(0, i)))
      buffer = buffer.slice(i + 2)
    }
    wake()
  })
  stream.on('end', () => { ended = true; wake() })
  stream.on('close', () => { ended = true; wake() })

  async function waitFor (check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (check()) return
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { waiters.delete(waiter); reject(new Error(`${what} within ${timeoutMs} ms (unread: ${JSON.stringify(inbox).slice(0, 400)})`)) }, timeoutMs)
      const waiter = (): void => { if (check()) { clearTimeout(timer); waiters.delete(waiter); resolve() } }
      waiters.add(waiter)
    })
  }
  return {
    status,
    headers: responseHeaders,
    async body () { await waitFor(() => ended, 3000, 'no end of body'); return raw },
    async next (predicate, timeoutMs = 3000) {
      let found: SseEvent | undefined
      await waitFor(() => {
        const i = inbox.findIndex(predicate)
        if (i >= 0) found = inbox.splice(i, 1)[0]
        return found !== undefined
      }, timeoutMs, 'no matching SSE event')
      return found!
    },
    async ended (timeoutMs = 3000) { await waitFor(() => ended, timeoutMs, 'stream not ended') },
    close: () => stream.destroy(),
    pause: () => { stream.pause() },
    resume: () => { stream.resume() }
  }
}

/** A predicate for `next`: the event named `name`. */
export const isEvent = (name: string) => (e: SseEvent) => e.event === name
