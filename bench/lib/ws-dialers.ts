// How the WebSocket load generator reaches a server that speaks the envelope protocol: cleartext ws://,
// wss:// over HTTP/1.1 (TLS, ALPN http/1.1), or an HTTP/2 extended CONNECT (RFC 8441) — many streams on
// each connection (as many as the server's SETTINGS allow), or one connection per socket. A dialer hands
// KeelClient a `ws` socket at once (the token moved from `?access_token=` to `Authorization: Bearer`, the
// handshake every server is measured with) and tells afterwards whether the server refused it, and why.

import { readFileSync } from 'node:fs'
import { connect as h2connect, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2'
import type { Duplex } from 'node:stream'
import { WebSocket } from 'ws'

/** ws:// (cleartext), wss:// over HTTP/1.1, or WebSockets on HTTP/2 streams: shared connections, or one each. */
export type WsTransport = 'ws' | 'wss' | 'h2' | 'h2-each'

export interface Dialed {
  socket: WebSocket
  /** The HTTP status the server refused the handshake with, once it has. */
  refusedStatus: () => number | undefined
  /** What went wrong underneath (a refused connection, a reset), once it has. */
  error: () => Error | undefined
}

export type Dialer = (clientUrl: string) => Dialed

/** Where KeelClient's URL points and the token it carries, for a handshake with the token in a header. */
function bearerTarget (clientUrl: string): { url: URL, token: string } {
  const url = new URL(clientUrl)
  const token = url.searchParams.get('access_token') ?? ''
  url.searchParams.delete('access_token')
  return { url, token }
}

/** An upgrade (ws:// or wss:// over HTTP/1.1). */
function upgradeDialer (ca: Buffer | undefined): Dialer {
  return (clientUrl) => {
    const { url, token } = bearerTarget(clientUrl)
    const tls = ca === undefined ? {} : { ca, servername: 'localhost', ALPNProtocols: ['http/1.1'] }
    const socket = new WebSocket(url.href, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false, skipUTF8Validation: true, ...tls })
    let refused: number | undefined
    let error: Error | undefined
    // Listening for it keeps ws from turning the status into an error; the handshake is then ours to end.
    socket.once('unexpected-response', (_req, res) => {
      refused = res.statusCode
      socket.terminate()
    })
    // KeelClient sees only a close (1006); this keeps the cause for the report.
    socket.once('error', (err) => { error = err })
    return { socket, refusedStatus: () => refused, error: () => error }
  }
}

/** ws's own way to run a client over a stream it did not open (its frames masked), and to end one that never opened. */
type StreamSocket = WebSocket & { _isServer: boolean, setSocket: (socket: Duplex, head: Buffer, options: object) => void, emitClose: () => void }
const StreamSocket = WebSocket as unknown as new (address: null, protocols: undefined, options: object) => StreamSocket
const NO_HEAD = Buffer.alloc(0)
// Connections tried in a row for one socket before giving up (each full or closed before its SETTINGS).
const MAX_CONNECTION_TRIES = 16

interface Connection { session: ClientHttp2Session, ready: Promise<void>, streams: number }

/** The status of an extended CONNECT's answer; rejects when the stream ends without one. */
async function responseStatus (stream: ClientHttp2Stream): Promise<number> {
  return await new Promise((resolve, reject) => {
    stream.once('response', (headers) => resolve(Number(headers[':status'])))
    stream.once('close', () => reject(new Error(`the CONNECT stream closed without an answer (code ${stream.rstCode})`)))
  })
}

/** Extended CONNECTs, `oneEach`: a connection per socket; else as many streams per connection as its SETTINGS allow. */
function h2Dialer (origin: string, ca: Buffer, oneEach: boolean): Dialer {
  let current: Connection | undefined

  function connect (): Connection {
    const session = h2connect(origin, { ca, servername: 'localhost', ALPNProtocols: ['h2'] })
    session.on('error', () => {})
    const ready = new Promise<void>((resolve, reject) => {
      session.once('remoteSettings', () => resolve())
      session.once('close', () => reject(new Error('the HTTP/2 connection closed before its SETTINGS arrived')))
    })
    ready.catch(() => {})
    return { session, ready, streams: 0 }
  }

  /** A connection with a free stream, counted as taken. */
  async function slot (): Promise<Connection> {
    for (let tries = 0; tries < MAX_CONNECTION_TRIES; tries++) {
      if (oneEach || current === undefined) current = connect()
      const conn = current
      await conn.ready
      const limit = oneEach ? 1 : conn.session.remoteSettings.maxConcurrentStreams ?? 100
      if (!conn.session.closed && !conn.session.destroyed && conn.streams < limit) {
        conn.streams++
        return conn
      }
      if (current === conn) current = undefined
    }
    throw new Error(`no HTTP/2 connection took a stream after ${MAX_CONNECTION_TRIES} tries`)
  }

  /** A stream ended: a connection left without streams is closed (idle connections would hold server memory). */
  function release (conn: Connection): void {
    if (--conn.streams > 0) return
    if (current === conn) current = undefined
    conn.session.close()
  }

  return (clientUrl) => {
    const { url, token } = bearerTarget(clientUrl)
    const socket = new StreamSocket(null, undefined, { autoPong: true })
    socket._isServer = false
    let refused: number | undefined
    let error: Error | undefined
    const open = async (): Promise<void> => {
      const conn = await slot()
      const stream = conn.session.request({
        ':method': 'CONNECT',
        ':protocol': 'websocket',
        ':scheme': 'https',
        ':path': url.pathname + url.search,
        ':authority': url.host,
        'sec-websocket-version': '13',
        authorization: `Bearer ${token}`
      }, { endStream: false })
      stream.once('close', () => release(conn))
      stream.on('error', (err) => { error ??= err })
      const status = await responseStatus(stream)
      if (status !== 200) {
        refused = status
        stream.close()
        socket.emitClose()
        return
      }
      socket.setSocket(stream, NO_HEAD, { maxPayload: 0, skipUTF8Validation: true })
    }
    open().catch((err: unknown) => {
      error ??= err as Error
      socket.emitClose()
    })
    return { socket, refusedStatus: () => refused, error: () => error }
  }
}

/** The dialer for `transport`; TLS ones trust the certificate in `caFile`. */
export function wsDialer (transport: WsTransport, url: string, caFile: string | undefined): Dialer {
  const ca = caFile === undefined ? undefined : readFileSync(caFile)
  if (transport === 'ws') return upgradeDialer(undefined)
  if (ca === undefined) throw new Error(`the ${transport} transport needs the server's certificate`)
  if (transport === 'wss') return upgradeDialer(ca)
  return h2Dialer(`https://${new URL(url).host}`, ca, transport === 'h2-each')
}
