// An inbound request's context carried into the outbound calls made for it: its id, trace, time
// budget and cancellation (`callOptionsFor`), and the header that states the budget.

import type { FastifyReply, FastifyRequest } from 'fastify'
import type { CallOptions } from './client-options.ts'

/**
 * The inbound time budget: how many milliseconds the caller will wait, counted from when it sent the
 * request (relative, like gRPC's `grpc-timeout` and Envoy's `x-envoy-expected-rq-timeout-ms`, so the
 * two clocks need not agree). Outbound calls made for the request end by then, and carry what is left.
 */
export const DEADLINE_HEADER = 'x-request-timeout-ms'

/**
 * Aborts when the inbound client goes away before its response was sent, so the outbound call (and
 * its bulkhead slot) ends with it. The response is watched, not the request: a request's 'close'
 * (and so Fastify's `request.signal`) fires as soon as its body has been read.
 */
function clientGoneSignal (reply: FastifyReply): AbortSignal {
  const controller = new AbortController()
  reply.raw.once('close', () => {
    if (!reply.raw.writableEnded) controller.abort(new Error('the client went away before its response was sent'))
  })
  return controller.signal
}

/** Call options for an outbound call made while handling `request`: its id, trace, remaining time and cancellation. */
export function callOptionsFor (request: FastifyRequest, reply: FastifyReply): CallOptions {
  const options: CallOptions = {
    requestId: String(request.id),
    traceparent: request.headers.traceparent,
    tracestate: request.headers.tracestate,
    signal: clientGoneSignal(reply)
  }
  const budget = Number(request.headers[DEADLINE_HEADER])
  // Routes validate the header in their schema; elsewhere a malformed one is simply not a deadline.
  if (Number.isInteger(budget) && budget > 0) options.deadlineAt = Date.now() - reply.elapsedTime + budget
  return options
}
