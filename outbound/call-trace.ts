// The spans of one outbound call, written with the OpenTelemetry API (recorded only while the SDK
// runs): the call's span (retries and waits included) with a child CLIENT span per attempt carrying
// the HTTP client attributes of the semantic conventions, its number, why it is a retry, the breaker
// state, and the upstream's Retry-After. Retries, budget refusals and breaker rejections are events
// on the call's span. Without tracing every span is a no-op that still carries the caller's context.

import { SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span } from '@opentelemetry/api'
import type { CircuitState } from './circuit-breaker.ts'
import { injectTraceHeaders } from './trace-context.ts'
import { UpstreamError, UpstreamHttpError } from './upstream-errors.ts'

const tracer = trace.getTracer('keel.outbound')

/** What a call's spans say about it. */
export interface CallDescription {
  upstream: string
  method: string
  /** `http://host:port`. */
  origin: string
  /** The path sent, the base URL's prefix included. */
  path: string
  /** The context the call continues (outbound/trace-context.ts). */
  parent: Context
  circuitState: () => CircuitState
}

/** Why a call did not send another attempt although it would have, as a span event. */
export type CallRefusal = 'circuit_open' | 'retry_budget_exhausted' | 'bulkhead_full'

function errorType (err: unknown): string {
  if (err instanceof UpstreamError) return err.code
  return err instanceof Error ? err.name : 'Error'
}

function endWithError (span: Span, err: unknown): void {
  if (!span.isRecording()) return span.end()
  span.setAttribute('error.type', errorType(err))
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : undefined })
  span.end()
}

/** The HTTP client attributes every span of a call carries; computed only for a recorded call. */
function requestAttributes (call: CallDescription): Attributes {
  const url = new URL(call.origin)
  return {
    'http.request.method': call.method,
    'server.address': url.hostname,
    'server.port': Number(url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : url.port),
    'url.full': call.origin + call.path
  }
}

export class CallTrace {
  readonly #call: CallDescription
  readonly #span: Span
  readonly #context: Context
  readonly #server: Attributes = {}
  #retryReason: string | undefined

  constructor (call: CallDescription) {
    this.#call = call
    this.#span = tracer.startSpan(`${call.method} ${call.upstream}`, { kind: SpanKind.INTERNAL }, call.parent)
    if (this.#span.isRecording()) {
      this.#server = requestAttributes(call)
      this.#span.setAttributes({ ...this.#server, 'keel.upstream.name': call.upstream, 'keel.upstream.circuit_state': call.circuitState() })
    }
    this.#context = trace.setSpan(call.parent, this.#span)
  }

  /** An attempt starts: its CLIENT span, named in `headers` by the W3C propagator. */
  startAttempt (attempt: number, headers: Record<string, string>): Span {
    const span = tracer.startSpan(this.#call.method, { kind: SpanKind.CLIENT }, this.#context)
    if (span.isRecording()) {
      span.setAttributes({ ...this.#server, 'keel.upstream.attempt': attempt, 'keel.upstream.circuit_state': this.#call.circuitState() })
      if (attempt > 1) span.setAttribute('http.request.resend_count', attempt - 1)
      if (this.#retryReason !== undefined) span.setAttribute('keel.upstream.retry_reason', this.#retryReason)
    }
    injectTraceHeaders(trace.setSpan(this.#context, span), headers)
    return span
  }

  /** The attempt's answer arrived (any status). */
  responded (span: Span, status: number): void {
    if (span.isRecording()) span.setAttribute('http.response.status_code', status)
  }

  /** The attempt is over: a success, or how it failed (an HTTP error keeps its status and Retry-After). */
  endAttempt (span: Span, err?: unknown): void {
    if (err === undefined) return span.end()
    if (err instanceof UpstreamHttpError && span.isRecording() && err.retryAfterMs !== undefined) {
      span.setAttribute('keel.upstream.retry_after_ms', err.retryAfterMs)
    }
    endWithError(span, err)
  }

  /** Another attempt follows `failure` after `delayMs` (the backoff, or the Retry-After when longer). */
  retrying (failure: UpstreamError, delayMs: number): void {
    this.#retryReason = failure instanceof UpstreamHttpError ? `http_${failure.status}` : failure.code
    if (!this.#span.isRecording()) return
    const retryAfter = failure instanceof UpstreamHttpError && failure.retryAfterMs !== undefined ? { 'keel.upstream.retry_after_ms': failure.retryAfterMs } : {}
    this.#span.addEvent('retry', { 'keel.upstream.retry_reason': this.#retryReason, 'keel.upstream.retry_delay_ms': delayMs, ...retryAfter })
  }

  /** The breaker, the retry budget or the bulkhead refused what the call would have sent. */
  refused (refusal: CallRefusal): void {
    if (this.#span.isRecording()) this.#span.addEvent(refusal, { 'keel.upstream.circuit_state': this.#call.circuitState() })
  }

  end (err?: unknown, attempts?: number): void {
    if (attempts !== undefined && this.#span.isRecording()) this.#span.setAttribute('keel.upstream.attempts', attempts)
    if (err === undefined) this.#span.end()
    else endWithError(this.#span, err)
  }
}
