// Real-socket HTTP clients for tests: HTTP/2 and HTTP/1.1 over TLS (node's own clients), reporting
// the negotiated ALPN protocol, TLS version and peer certificate alongside the response.

import { connect as h2connect, type ClientHttp2Session, type OutgoingHttpHeaders } from 'node:http2'
import { request as httpsRequest, type RequestOptions } from 'node:https'
import { request as httpRequest } from 'node:http'
import type { TLSSocket } from 'node:tls'
import { once } from 'node:events'

export interface Response {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
  alpn?: string | false
  tlsVersion?: string | null
  peerFingerprint?: string
}

export interface TlsClientOptions { ca?: Buffer | string | Array<Buffer | string>, cert?: string, key?: string }

/** Opens an HTTP/2 session (closed by the caller or by `h2request` when `session` is not passed). */
export async function h2session (url: string, tls: TlsClientOptions = {}): Promise<ClientHttp2Session> {
  const session = h2connect(url, { ...tls, ALPNProtocols: ['h2'], servername: 'localhost' })
  session.on('error', () => {})
  await once(session, 'connect')
  return session
}

export async function h2request (session: ClientHttp2Session, path: string, headers: OutgoingHttpHeaders = {}, body?: string): Promise<Response> {
  const stream = session.request({ ':path': path, ...headers }, { endStream: body === undefined })
  if (body !== undefined) stream.end(body)
  const [responseHeaders] = await once(stream, 'response') as [Record<string, string>]
  let text = ''
  stream.setEncoding('utf8')
  for await (const chunk of stream) text += chunk
  const socket = session.socket as TLSSocket
  return {
    status: Number(responseHeaders[':status']),
    headers: responseHeaders,
    body: text,
    alpn: session.alpnProtocol,
    tlsVersion: socket.getProtocol?.() ?? null,
    peerFingerprint: socket.getPeerCertificate?.().fingerprint256
  }
}

/** One HTTP/1.1 request (TLS when the URL is https), on a fresh connection. */
export async function h1request (url: string, options: RequestOptions & TlsClientOptions & { body?: string } = {}): Promise<Response> {
  const u = new URL(url)
  const send = u.protocol === 'https:' ? httpsRequest : httpRequest
  const req = send(u, { ALPNProtocols: ['http/1.1'], servername: 'localhost', agent: false, ...options } as RequestOptions)
  req.end(options.body)
  const [res] = await once(req, 'response') as [import('node:http').IncomingMessage]
  // Read the connection facts now: a keep-alive agent takes the socket back once the body is read.
  const socket = res.socket as TLSSocket
  const facts = {
    alpn: socket.alpnProtocol ?? undefined,
    tlsVersion: socket.getProtocol?.() ?? null,
    peerFingerprint: socket.getPeerCertificate?.().fingerprint256
  }
  let text = ''
  res.setEncoding('utf8')
  for await (const chunk of res) text += chunk
  return { status: res.statusCode ?? 0, headers: res.headers, body: text, ...facts }
}
