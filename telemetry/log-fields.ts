// The trace fields of a log line: the active span's trace and span ids (the names the OpenTelemetry
// log data model uses), so a line written inside a traced request leads to its trace. A pino mixin
// and a Fastify log controller, installed only while tracing runs (core/server-options.ts); both read
// the context through the API alone.

import { context, propagation, trace } from '@opentelemetry/api'
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify'

export interface TraceLogFields { trace_id?: string, span_id?: string, trace_flags?: string }

/** `{trace_id, span_id, trace_flags}` of the active span, or nothing outside a traced request. */
export function traceLogFields (): TraceLogFields {
  const span = trace.getSpan(context.active())
  if (span === undefined) return {}
  const { traceId, spanId, traceFlags } = span.spanContext()
  return { trace_id: traceId, span_id: spanId, trace_flags: traceFlags.toString(16).padStart(2, '0') }
}

/**
 * Fastify writes "incoming request" before any hook runs, so before the request's span exists: the
 * line is written in the caller's context instead (its `traceparent`), and so carries the trace id.
 */
export class TracedLogController extends LogController {
  override incomingRequest (request: FastifyRequest, reply: FastifyReply): void {
    const caller = propagation.extract(context.active(), request.headers)
    context.with(caller, () => super.incomingRequest(request, reply))
  }
}
