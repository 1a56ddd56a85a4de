// What can go wrong on an outbound call, as typed errors with stable codes, and the one mapping
// from them to the HTTP answer Keel gives its own client. Messages here name the upstream for logs;
// `upstreamFailure` never lets them (or any upstream detail) reach a response.

import { AppError, ErrorCode } from '../core/errors.ts'

/** Stable codes: callers and dashboards branch on these, so never rename one. */
export const UpstreamErrorCode = {
  CONNECTION_FAILED: 'UPSTREAM_CONNECTION_FAILED',
  CONNECT_TIMEOUT: 'UPSTREAM_CONNECT_TIMEOUT',
  HEADERS_TIMEOUT: 'UPSTREAM_HEADERS_TIMEOUT',
  BODY_TIMEOUT: 'UPSTREAM_BODY_TIMEOUT',
  DEADLINE_EXCEEDED: 'UPSTREAM_DEADLINE_EXCEEDED',
  HTTP_ERROR: 'UPSTREAM_HTTP_ERROR',
  RESPONSE_INVALID: 'UPSTREAM_RESPONSE_INVALID',
  CIRCUIT_OPEN: 'UPSTREAM_CIRCUIT_OPEN',
  BULKHEAD_FULL: 'UPSTREAM_BULKHEAD_FULL',
  ABORTED: 'UPSTREAM_ABORTED'
} as const
export type UpstreamErrorCode = typeof UpstreamErrorCode[keyof typeof UpstreamErrorCode]

/** Why the client stopped retrying and let the last error through. */
export const RetryStop = {
  NOT_RETRYABLE: 'not-retryable',
  NOT_IDEMPOTENT: 'not-idempotent',
  MAX_RETRIES: 'max-retries',
  RETRY_BUDGET_EXHAUSTED: 'retry-budget-exhausted',
  DEADLINE: 'deadline',
  CIRCUIT_OPEN: 'circuit-open',
  BODY_CONSUMED: 'body-consumed'
} as const
export type RetryStop = typeof RetryStop[keyof typeof RetryStop]

export class UpstreamError extends Error {
  readonly code: UpstreamErrorCode
  /** The client's name (`payments`), never its URL. */
  readonly upstream: string
  /** Upstream requests this call sent (0 when it was refused before reaching the upstream). */
  attempts = 0
  /** Set when the call gave up although the error was of a retryable kind. */
  stoppedBy?: RetryStop

  constructor (code: UpstreamErrorCode, upstream: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'UpstreamError'
    this.code = code
    this.upstream = upstream
  }
}

/** Refused, reset or closed connections, DNS failures. */
export class UpstreamConnectionError extends UpstreamError {
  constructor (upstream: string, cause: unknown) {
    super(UpstreamErrorCode.CONNECTION_FAILED, upstream, `${upstream}: connection failed (${(cause as { code?: string }).code ?? 'unknown'})`, { cause })
    this.name = 'UpstreamConnectionError'
  }
}

export type TimeoutPhase = 'connect' | 'headers' | 'body' | 'deadline'
const timeoutCode: Record<TimeoutPhase, UpstreamErrorCode> = {
  connect: UpstreamErrorCode.CONNECT_TIMEOUT,
  headers: UpstreamErrorCode.HEADERS_TIMEOUT,
  body: UpstreamErrorCode.BODY_TIMEOUT,
  deadline: UpstreamErrorCode.DEADLINE_EXCEEDED
}

/** One attempt's connect/headers/body timeout, or the whole call's deadline (`phase: 'deadline'`). */
export class UpstreamTimeoutError extends UpstreamError {
  readonly phase: TimeoutPhase
  constructor (upstream: string, phase: TimeoutPhase, cause?: unknown) {
    super(timeoutCode[phase], upstream, phase === 'deadline' ? `${upstream}: call deadline exceeded` : `${upstream}: ${phase} timeout`, { cause })
    this.name = 'UpstreamTimeoutError'
    this.phase = phase
  }
}

/** The upstream answered with a status >= 400. */
export class UpstreamHttpError extends UpstreamError {
  readonly status: number
  /** The upstream's `Retry-After`, in milliseconds from when it was received. */
  readonly retryAfterMs?: number
  constructor (upstream: string, status: number, retryAfterMs?: number) {
    super(UpstreamErrorCode.HTTP_ERROR, upstream, `${upstream}: answered ${status}`)
    this.name = 'UpstreamHttpError'
    this.status = status
    this.retryAfterMs = retryAfterMs
  }
}

/** A 2xx whose body is not what the caller's schema expects: not JSON, wrong shape, too large, truncated. */
export class UpstreamResponseInvalidError extends UpstreamError {
  constructor (upstream: string, reason: string, cause?: unknown) {
    super(UpstreamErrorCode.RESPONSE_INVALID, upstream, `${upstream}: invalid response (${reason})`, { cause })
    this.name = 'UpstreamResponseInvalidError'
  }
}

/** The breaker is open (or half-open with its one probe in flight): the call never left the process. */
export class CircuitOpenError extends UpstreamError {
  /** When a call may be expected to go through again. */
  readonly retryAfterMs: number
  constructor (upstream: string, retryAfterMs: number) {
    super(UpstreamErrorCode.CIRCUIT_OPEN, upstream, `${upstream}: circuit open`)
    this.name = 'CircuitOpenError'
    this.retryAfterMs = retryAfterMs
  }
}

/** Every concurrent-call slot and every queue place for this upstream is taken. */
export class BulkheadFullError extends UpstreamError {
  constructor (upstream: string) {
    super(UpstreamErrorCode.BULKHEAD_FULL, upstream, `${upstream}: too many concurrent calls`)
    this.name = 'BulkheadFullError'
  }
}

/** The caller's own `signal` aborted the call (e.g. its client went away). */
export class UpstreamAbortedError extends UpstreamError {
  constructor (upstream: string, cause?: unknown) {
    super(UpstreamErrorCode.ABORTED, upstream, `${upstream}: call aborted by the caller`, { cause })
    this.name = 'UpstreamAbortedError'
  }
}

const retryAfterHeader = (ms: number): Record<string, string> => ({ 'retry-after': String(Math.max(1, Math.ceil(ms / 1000))) })

/**
 * The response Keel gives when a call to `service` (a public name such as "the payment service")
 * failed: 503 + Retry-After when the breaker or bulkhead refused it, 504 when the deadline ran out,
 * 502 otherwise. Non-upstream errors are returned unchanged (they are bugs, answered as 500).
 */
export function upstreamFailure (err: unknown, service: string): unknown {
  if (!(err instanceof UpstreamError)) return err
  if (err instanceof CircuitOpenError) {
    return new AppError(ErrorCode.SERVICE_UNAVAILABLE, `${service} is unavailable; try again later`, { headers: retryAfterHeader(err.retryAfterMs), cause: err })
  }
  if (err instanceof BulkheadFullError) {
    return new AppError(ErrorCode.SERVICE_UNAVAILABLE, `${service} is busy; try again later`, { headers: retryAfterHeader(1000), cause: err })
  }
  if (err instanceof UpstreamTimeoutError && err.phase === 'deadline') {
    return new AppError(ErrorCode.GATEWAY_TIMEOUT, `${service} did not answer in time`, { cause: err })
  }
  return new AppError(ErrorCode.BAD_GATEWAY, `${service} failed to answer`, { cause: err })
}
