// What Keel adds to @fastify/otel's span of an inbound request: the route template as its name
// (`GET /api/v1/items/:id`, the method alone when no route matched), the request id, and a path
// without its query string — WebSocket and SSE clients may carry their token there. A WebSocket
// upgrade never answers through Fastify's reply, so its span ends with the connection (the events
// sent over it are spans of their own).

import type { EventEmitter } from 'node:events'
import type { Span } from '@opentelemetry/api'
import type { FastifyRequest } from 'fastify'

function isWebSocketUpgrade (request: FastifyRequest): boolean {
  return request.headers.upgrade?.toLowerCase() === 'websocket' || request.headers[':protocol'] === 'websocket'
}

export function inboundRequestHook (span: Span, request: FastifyRequest): void {
  const route = request.routeOptions.url
  span.updateName(route === undefined ? request.method : `${request.method} ${route}`)
  const query = request.url.indexOf('?')
  span.setAttributes({
    'url.path': query === -1 ? request.url : request.url.slice(0, query),
    'keel.request.id': String(request.id)
  })
  if (isWebSocketUpgrade(request)) {
    // HTTP/2 (RFC 8441) carries the connection on the request's stream, HTTP/1.1 on its socket.
    const raw = request.raw as { stream?: EventEmitter, socket: EventEmitter }
    const carrier = raw.stream ?? raw.socket
    // A refused upgrade was answered, and its span ended, already.
    carrier.once('close', () => { if (span.isRecording()) span.end() })
  }
}
