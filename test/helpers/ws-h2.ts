// WebSocket-over-HTTP/2 test clients (RFC 8441) on Node's own http2 client: a session that has read
// the server's SETTINGS, an extended CONNECT on /ws whose status, headers and body a test reads when
// it is refused, and, when it answers 200, a `ws` client on the stream, read like any socket (ws.ts).

import { connect, type ClientHttp2Session, type ClientHttp2Stream, type ClientSessionOptions, type IncomingHttpHeaders } from 'node:http2'
import { once } from 'node:events'
import type { Duplex } from 'node:stream'
import WebSocket from 'ws'
import { credentialsOf, followSocket, type OpenOptions, type TestSocket, type WsTarget } from './ws.ts'

interface Teardown { teardown: (fn: () => unknown) => void }

/** An HTTP/2 session to the server, once its SETTINGS arrived (extended CONNECT needs them); destroyed when the test ends. */
export async function h2WebSocketSession (t: Teardown, server: WsTarget, options: ClientSessionOptions = {}): Promise<ClientHttp2Session> {
  const session = connect(server.url, { ca: server.ca, servername: 'localhost', ALPNProtocols: ['h2'], ...options })
  session.on('error', () => {})
  t.teardown(() => session.destroy())
  await once(session, 'remoteSettings')
  return session
}

export interface ConnectOptions extends OpenOptions {
  /** `:protocol`; websocket by default. */
  protocol?: string
  /** `:path` before any query token; /ws by default. */
  path?: string
  /** No token at all. */
  anonymous?: boolean
}

export interface ConnectAnswer {
  status: number
  headers: IncomingHttpHeaders
  stream: ClientHttp2Stream
}

/** Sends an extended CONNECT as a browser does (token and Origin as `options` say) and resolves with the response head. */
export async function extendedConnect (session: ClientHttp2Session, server: WsTarget, options: ConnectOptions = {}): Promise<ConnectAnswer> {
  const { query, headers } = options.anonymous === true ? { query: '', headers: options.headers } : credentialsOf(options)
  const stream = session.request({
    ':method': 'CONNECT',
    ':protocol': options.protocol ?? 'websocket',
    ':scheme': 'https',
    ':path': (options.path ?? '/ws') + query,
    ':authority': new URL(server.url).host,
    'sec-websocket-version': '13',
    ...headers
  }, { endStream: false })
  stream.on('error', () => {})
  const [response] = await once(stream, 'response') as [IncomingHttpHeaders]
  return { status: Number(response[':status']), headers: response, stream }
}

/** The answer to an extended CONNECT: 200 when it opened (the stream is then closed), else the refusal's status, headers and body. */
export async function connectStatus (session: ClientHttp2Session, server: WsTarget, options: ConnectOptions = {}): Promise<{ status: number, headers: IncomingHttpHeaders, body: string }> {
  const { status, headers, stream } = await extendedConnect(session, server, options)
  if (status === 200) {
    stream.close()
    return { status, headers, body: '' }
  }
  let body = ''
  stream.setEncoding('utf8')
  for await (const chunk of stream) body += chunk as string
  return { status, headers, body }
}

/** A `ws` client on an HTTP/2 stream: the client role (its frames masked), answering the server's pings. */
export function clientSocketOn (stream: Duplex): WebSocket {
  const Socket = WebSocket as unknown as new (address: null, protocols: undefined, options: object) => WebSocket
  const ws = new Socket(null, undefined, { autoPong: true })
  const internals = ws as unknown as { _isServer: boolean, setSocket: (socket: Duplex, head: Buffer, options: object) => void }
  internals._isServer = false
  internals.setSocket(stream, Buffer.alloc(0), { maxPayload: 0 })
  return ws
}

/** Opens a WebSocket on a stream of `session` and waits for `connection:ready`; terminated when the test ends. */
export async function openH2Socket (t: Teardown, session: ClientHttp2Session, server: WsTarget, options: ConnectOptions = {}): Promise<TestSocket & { stream: ClientHttp2Stream }> {
  const { status, stream } = await extendedConnect(session, server, options)
  if (status !== 200) throw new Error(`extended CONNECT refused with HTTP ${status}`)
  const socket = followSocket(t, clientSocketOn(stream))
  const ready = await socket.next((m) => m.event === 'connection:ready')
  return { ...socket, ready, stream }
}
