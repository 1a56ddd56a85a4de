// Graceful close for HTTP/1.1 connections. Fastify sends GOAWAY to HTTP/2 sessions on close, but
// on an HTTP/2 server with allowHTTP1 it cannot close idle HTTP/1.1 keep-alive sockets
// (`forceCloseConnections: 'idle'` needs closeIdleConnections, which Http2SecureServer lacks), and
// `server.close()` would wait for them until keepAliveTimeout. This plugin closes idle ones at once
// and lets busy ones finish their response with `Connection: close`.

import type { Socket } from 'node:net'
import { Server as TlsServer, type TLSSocket } from 'node:tls'
import fp from 'fastify-plugin'

export default fp(async function connections (fastify) {
  const inFlight = new Map<Socket, number>()
  let closing = false

  const track = (socket: Socket): void => {
    if ((socket as TLSSocket).alpnProtocol === 'h2') return
    inFlight.set(socket, 0)
    socket.once('close', () => inFlight.delete(socket))
  }
  // On a TLS server 'connection' carries the raw TCP socket under the TLSSocket: tracking it would
  // destroy every TLS connection (h2 sessions, upgraded WebSockets) as "idle" at close.
  if (fastify.server instanceof TlsServer) fastify.server.on('secureConnection', track)
  else fastify.server.on('connection', track)

  // Callback hooks, not async ones: these run on every request, and an async hook costs each a promise
  // and a microtask turn. HTTP/2 streams return at once: their sessions are not tracked, and reading
  // `raw.socket` on a stream would build the compatibility layer's socket proxy for nothing.
  fastify.addHook('onRequest', function countRequest (request, _reply, done) {
    if (request.raw.httpVersionMajor === 1) {
      const socket = request.raw.socket
      const n = inFlight.get(socket)
      if (n !== undefined) inFlight.set(socket, n + 1)
    }
    done()
  })
  fastify.addHook('onSend', function closeWhenClosing (request, reply, _payload, done) {
    if (closing && request.raw.httpVersionMajor === 1 && inFlight.has(request.raw.socket)) reply.header('connection', 'close')
    done()
  })
  fastify.addHook('onResponse', function uncountRequest (request, _reply, done) {
    if (request.raw.httpVersionMajor === 1) {
      const socket = request.raw.socket
      const n = inFlight.get(socket)
      if (n !== undefined) {
        inFlight.set(socket, n - 1)
        if (closing && n - 1 === 0) socket.destroySoon()
      }
    }
    done()
  })
  fastify.addHook('preClose', async () => {
    closing = true
    for (const [socket, n] of inFlight) if (n === 0) socket.destroySoon()
  })
}, { name: 'keel-connections' })
