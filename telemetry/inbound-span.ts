// What Keel adds to @fastify/otel's span of an inbound request: the route template as its name
// (`GET /api/v1/items/:id`, the method alone when no route matched), the request id, and a path
// without its query string — WebSocket and SSE clients may carry their token there.

import type { Span } from '@opentelemetry/api'
import type { FastifyRequest } from 'fastify'

export function inboundRequestHook (span: Span, request: FastifyRequest): void {
  const route = request.routeOptions.url
  span.updateName(route === undefined ? request.method : `${request.method} ${route}`)
  const query = request.url.indexOf('?')
  span.setAttributes({
    'url.path': query === -1 ? request.url : request.url.slice(0, query),
    'keel.request.id': String(request.id)
  })
}
