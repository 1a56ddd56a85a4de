// WebSocket test clients: open an authenticated socket to a listening test app (real TLS), wait for
// the next message matching a predicate with a bounded timeout, send with an id and await its
// ack/error, await the close code, and read the HTTP status of a refused upgrade. The same reading
// serves sockets over HTTP/2 streams (ws-h2.ts).

import { once } from 'node:events'
import type { ConnectionOptions } from 'node:tls'
import WebSocket, { type ClientOptions as WsClientOptions } from 'ws'
import type { Listening } from './app.ts'
import { testToken } from './tokens.ts'

interface Teardown { teardown: (fn: () => unknown) => void }

/** ws passes TLS options through to `tls.connect`; its types omit some. */
type ClientOptions = WsClientOptions & Pick<ConnectionOptions, 'servername' | 'ALPNProtocols'>

/** A listening server: a test app (`listen`) or a spawned one (`spawnServer`) with its certificate. */
export type WsTarget = Pick<Listening, 'url' | 'ca'>

export interface Message {
  event: string
  id?: string
  data?: any
}

export interface TestSocket {
  ws: WebSocket
  /** The `connection:ready` message the server sent on open. */
  ready: Message
  /** Resolves with the next message (already received and unread, or later) matching `predicate`. */
  next: (predicate: (m: Message) => boolean, timeoutMs?: number) => Promise<Message>
  /** Resolves with the matching message, or null when none arrives within `timeoutMs`. */
  maybeNext: (predicate: (m: Message) => boolean, timeoutMs: number) => Promise<Message | null>
  /** Sends `{event, data, id}` with a fresh id and resolves with the server's ack or error for it. */
  request: (event: string, data?: unknown, timeoutMs?: number) => Promise<Message>
  send: (message: unknown) => void
  /** Resolves with the close code and reason (once closed). */
  closed: (timeoutMs?: number) => Promise<{ code: number, reason: string }>
}

export interface OpenOptions {
  /** Bearer token for the Authorization header; default a valid token for `sub`. */
  token?: string
  sub?: string
  /** Put the token in `?access_token=` instead of the header. */
  queryToken?: boolean
  headers?: Record<string, string>
  /** Extra `ws` client options (e.g. `autoPong: false`). */
  client?: ClientOptions
}

function wsUrl (server: WsTarget): string {
  return server.url.replace(/^http/, 'ws') + '/ws'
}

/** Where the options put the token: `?access_token=` (`query`, with its `?`, or empty) or the Authorization header. */
export function credentialsOf (options: OpenOptions): { query: string, headers: Record<string, string> } {
  const token = options.token ?? testToken({ sub: options.sub ?? 'user-1' })
  const query = options.queryToken === true ? `?access_token=${encodeURIComponent(token)}` : ''
  const headers = { ...(options.queryToken === true ? {} : { authorization: `Bearer ${token}` }), ...options.headers }
  return { query, headers }
}

function clientOptions (server: WsTarget, options: OpenOptions): { url: string, opts: ClientOptions } {
  const { query, headers } = credentialsOf(options)
  return { url: wsUrl(server) + query, opts: { ca: server.ca, servername: 'localhost', headers, ...options.client } }
}

/** Opens a socket and waits for `connection:ready`; closed (terminated) when the test ends. */
export async function openSocket (t: Teardown, server: WsTarget, options: OpenOptions = {}): Promise<TestSocket> {
  const { url, opts } = clientOptions(server, options)
  const ws = new WebSocket(url, opts)
  const socket = followSocket(t, ws)
  await Promise.race([
    once(ws, 'open'),
    once(ws, 'unexpected-response').then(([, res]) => { throw new Error(`upgrade refused with HTTP ${(res as { statusCode: number }).statusCode}`) })
  ])
  const ready = await socket.next((m) => m.event === 'connection:ready')
  return { ...socket, ready }
}

/**
 * Reads an open (or opening) client socket's messages, whatever carries it (an upgraded connection, an
 * HTTP/2 stream): the inbox, the waits, requests with ids and the close. Terminated when the test ends.
 */
export function followSocket (t: Teardown, ws: WebSocket): Omit<TestSocket, 'ready'> {
  t.teardown(() => ws.terminate())
  const inbox: Message[] = []
  const waiters: Array<{ predicate: (m: Message) => boolean, resolve: (m: Message) => void }> = []
  let closeInfo: { code: number, reason: string } | undefined
  // Transport errors (resets) surface as the close code.
  ws.on('error', () => {})
  ws.on('close', (code, reason) => { closeInfo = { code, reason: reason.toString() } })
  ws.on('message', (raw) => {
    const message = JSON.parse(raw.toString()) as Message
    const i = waiters.findIndex((w) => w.predicate(message))
    if (i >= 0) waiters.splice(i, 1)[0]!.resolve(message)
    else inbox.push(message)
  })

  async function maybeNext (predicate: (m: Message) => boolean, timeoutMs: number): Promise<Message | null> {
    const i = inbox.findIndex(predicate)
    if (i >= 0) return inbox.splice(i, 1)[0]!
    return await new Promise((resolve) => {
      const waiter = { predicate, resolve: (m: Message | null) => { clearTimeout(timer); resolve(m) } }
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(waiter), 1)
        resolve(null)
      }, timeoutMs)
      waiters.push(waiter)
    })
  }
  async function next (predicate: (m: Message) => boolean, timeoutMs = 3000): Promise<Message> {
    const message = await maybeNext(predicate, timeoutMs)
    if (message === null) throw new Error(`no matching WebSocket message within ${timeoutMs} ms (unread: ${JSON.stringify(inbox).slice(0, 500)})`)
    return message
  }
  let ids = 0
  const send = (message: unknown) => ws.send(JSON.stringify(message))
  async function request (event: string, data?: unknown, timeoutMs?: number): Promise<Message> {
    const id = `r${++ids}`
    send({ event, data, id })
    return await next((m) => m.id === id, timeoutMs)
  }
  async function closed (timeoutMs = 5000): Promise<{ code: number, reason: string }> {
    if (closeInfo !== undefined) return closeInfo
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`socket not closed within ${timeoutMs} ms`)), timeoutMs)
      ws.once('close', (code, reason) => { clearTimeout(timer); resolve({ code, reason: reason.toString() }) })
    })
  }
  return { ws, next, maybeNext, request, send, closed }
}

/** Attempts an upgrade and resolves with the HTTP status: 101 when it opened, else the refusal's status and body. */
export async function upgradeStatus (server: WsTarget, options: OpenOptions & { anonymous?: boolean } = {}): Promise<{ status: number, body: string, headers: Record<string, unknown> }> {
  const { url, opts } = clientOptions(server, options)
  if (options.anonymous === true) delete (opts.headers as Record<string, string>).authorization
  const ws = new WebSocket(options.anonymous === true ? wsUrl(server) : url, opts)
  ws.on('error', () => {})
  return await new Promise((resolve) => {
    ws.once('open', () => { ws.terminate(); resolve({ status: 101, body: '', headers: {} }) })
    ws.once('unexpected-response', (_req, res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }))
      res.on('error', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }))
    })
  })
}
