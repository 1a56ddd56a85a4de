// WebSockets over HTTP/2 (RFC 8441): on the HTTPS server the WebSocket route also accepts an extended
// CONNECT (`:protocol: websocket`) on an HTTP/2 stream. Node reports a CONNECT through the server's
// 'connect' event, never as a request, so this hands it to Fastify's routing itself: it then meets
// every edge policy and the route's stream handshake (handshake.ts) as the HTTP/1.1 upgrade does, and
// a refusal is the same problem+json. Accepted, the stream answers 200 and carries a WebSocket built
// with the upgrade server's own options (ws-server.ts), handed to the same sessions (ws-sessions.ts).
// The SETTINGS flag that advertises extended CONNECT is raised here and only here, with the handler in
// place: a browser that sees it opens its WebSockets this way, and would fail where nothing answers.

import type { IncomingMessage, ServerResponse } from 'node:http'
import { Http2ServerRequest, type Http2SecureServer, type Http2ServerResponse, type ServerHttp2Stream } from 'node:http2'
import type { Duplex } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchema, onRequestHookHandler } from 'fastify'
import WebSocket from 'ws'
import { AppError, ErrorCode } from '../../core/errors.ts'
import type { StreamHandshake } from './handshake.ts'

export interface ExtendedConnectOptions {
  /** The WebSocket route's path. */
  url: string
  /** The stream handshake: the hooks the upgrade route runs, in the same order. */
  handshake: StreamHandshake
  /** Takes the open socket over, as the upgrade route's handler does; `request.user` is set. */
  accept: (socket: WebSocket, request: FastifyRequest) => void
}

/** The WebSocket version ws speaks; RFC 8441 keeps the header. */
const WEBSOCKET_VERSION = '13'
const NO_HEAD = Buffer.alloc(0)

/** ws's own way to run a socket over a connection it did not open: what its server does after an upgrade. */
type ServerSideSocket = WebSocket & { setSocket: (socket: Duplex, head: Buffer, options: object) => void }
const ServerSideSocket = WebSocket as unknown as new (address: null, protocols: undefined, options: object) => ServerSideSocket

/**
 * Node's compatibility request and response stay referenced from their stream for its whole life, and
 * through them Fastify's request and reply, its logger and the request's headers (the token with
 * them): a WebSocket's stream lets them go, as the upgrade route detaches its request (ws-sessions.ts).
 * Values, not deletions, keep the stream's shape; Node's own listeners read an absent request or
 * response as gone, and a null socket proxy as closed.
 */
function detachCompatibilityObjects (stream: ServerHttp2Stream): void {
  const fields = stream as unknown as Record<symbol, unknown>
  for (const key of Object.getOwnPropertySymbols(stream)) {
    if (key.description === 'request' || key.description === 'response') fields[key] = undefined
    else if (key.description === 'proxySocket') fields[key] = null
  }
}

/** The CONNECT must ask for the WebSocket protocol, in the version the server speaks. */
async function requireWebSocketProtocol (request: FastifyRequest): Promise<void> {
  if (request.headers[':protocol'] !== 'websocket') {
    throw new AppError(ErrorCode.BAD_REQUEST, 'this path serves CONNECT with :protocol websocket only')
  }
  if (request.headers['sec-websocket-version'] !== WEBSOCKET_VERSION) {
    throw new AppError(ErrorCode.BAD_REQUEST, `sec-websocket-version must be ${WEBSOCKET_VERSION}`, { headers: { 'sec-websocket-version': WEBSOCKET_VERSION } })
  }
}

/**
 * Adds the extended CONNECT route beside the upgrade route (`fastify` must be the root or a plugin
 * that shares its server, with @fastify/websocket registered) and starts advertising it.
 */
export function acceptWebSocketsOverHttp2 (fastify: FastifyInstance, options: ExtendedConnectOptions): void {
  const server = fastify.server as unknown as Http2SecureServer
  const socketOptions = fastify.websocketServer.options

  function openOverStream (request: FastifyRequest, reply: FastifyReply): void {
    reply.hijack()
    const stream = (request.raw as unknown as Http2ServerRequest).stream
    // Reset while the handshake ran: nothing to open, and nothing was admitted.
    if (stream.destroyed || stream.closed) return
    stream.respond({ ':status': 200 })
    const socket = new ServerSideSocket(null, undefined, socketOptions)
    socket.setSocket(stream, NO_HEAD, socketOptions)
    options.accept(socket, request)
    detachCompatibilityObjects(stream)
  }

  fastify.addHttpMethod('CONNECT')
  fastify.route({
    method: 'CONNECT',
    url: options.url,
    // The handshake authenticates (it accepts ?access_token=, as the upgrade does).
    config: { auth: false },
    onRequest: [requireWebSocketProtocol as onRequestHookHandler, ...options.handshake.onRequest],
    onSend: options.handshake.onSend,
    schema: { hide: true } as FastifySchema,
    handler: openOverStream
  })

  server.on('connect', function routeConnect (request: Http2ServerRequest | IncomingMessage, response: Http2ServerResponse | Duplex) {
    if (!(request instanceof Http2ServerRequest)) {
      // An HTTP/1.1 CONNECT asks for a tunnel: dropped, as Node does when nobody listens for one.
      (response as Duplex).destroy()
      return
    }
    // A CONNECT without :protocol asks for a tunnel too and names no path: it matches no route.
    if (request.headers[':protocol'] === undefined) request.url = '*'
    // The app is typed as an HTTP/1.1 one (core/server-options.ts); Fastify's routing takes either kind.
    fastify.routing(request as unknown as IncomingMessage, response as unknown as ServerResponse)
  })
  server.updateSettings({ enableConnectProtocol: true })
}
