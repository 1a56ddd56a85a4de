// Request ids: the client's `x-request-id` when it is well-formed, a fresh UUID otherwise.
// The id is echoed on every response (errors included) and carried by every log line of the request.

import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import fp from 'fastify-plugin'

// Bounded and boring: no CR/LF (header injection), nothing a log parser could trip on.
const WELL_FORMED = /^[A-Za-z0-9._:@-]{1,128}$/

/** Fastify's `genReqId`: runs before routing, so even a 404 gets the id. */
export function requestIdFor (req: IncomingMessage): string {
  const given = req.headers['x-request-id']
  return typeof given === 'string' && WELL_FORMED.test(given) ? given : randomUUID()
}

export default fp(async function requestId (fastify) {
  // A callback hook, not an async one: an async hook costs every request a promise and a microtask turn.
  fastify.addHook('onRequest', function echoRequestId (request, reply, done) {
    reply.header('x-request-id', request.id)
    done()
  })
}, { name: 'keel-request-id' })
