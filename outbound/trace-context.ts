// W3C Trace Context on outbound calls, read and written by OpenTelemetry's W3C propagator (the one
// the SDK uses for inbound requests): a call continues the active span's trace inside a traced
// request, else the trace its caller's `traceparent` names. Each attempt's `traceparent` names the
// attempt's span; without tracing that span is not recorded and carries the caller's ids, so the
// upstream's spans still join the caller's trace. A `tracestate` travels only with a valid
// `traceparent`, within the propagator's bounds (32 members, 512 characters; invalid members dropped).

import { context, trace, type Context, type TextMapSetter } from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'

const propagator = new W3CTraceContextPropagator()

// An empty tracestate (every inbound member invalid) is not sent as an empty header.
const headerSetter: TextMapSetter<Record<string, string>> = {
  set (carrier, key, value) { if (value !== '') carrier[key] = value }
}

/** The context a call continues: the active span's, or the trace named by the caller's headers. */
export function callerContext (traceparent: string | string[] | undefined, tracestate: string | string[] | undefined): Context {
  const active = context.active()
  if (traceparent === undefined || trace.getSpanContext(active) !== undefined) return active
  return propagator.extract(active, { traceparent, tracestate }, {
    get: (carrier, key) => carrier[key as 'traceparent' | 'tracestate'],
    keys: (carrier) => Object.keys(carrier)
  })
}

/** Writes `traceparent` (and `tracestate`) for a request sent as the span of `ctx`; nothing when there is none. */
export function injectTraceHeaders (ctx: Context, headers: Record<string, string>): void {
  propagator.inject(ctx, headers, headerSetter)
}
