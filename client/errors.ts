// The one error type of the client: its own codes (timeouts, no connection, closed, a connection the
// server refuses for good) and the server's refusals, which keep the server's code and field errors.

import { isRecord } from './frames.ts'
import type { FieldError, ServerErrorData } from './protocol.ts'

/** The client's own error codes; a request refused by the server carries the server's code instead. */
export const KeelClientErrorCode = {
  /** No ack or error arrived within `ackTimeoutMs` while the connection stayed up. */
  ACK_TIMEOUT: 'ACK_TIMEOUT',
  /** The request was made while no connection was ready. */
  NOT_CONNECTED: 'NOT_CONNECTED',
  /** The connection closed before the answer came (or `close()` was called). */
  CLOSED: 'CLOSED',
  /**
   * The server refused the token (HTTP 401, or close 4001 when it expired) and no new one came: the
   * token is static, or the token function's next one was refused as well. The client stopped.
   */
  UNAUTHORIZED: 'UNAUTHORIZED',
  /** The server refused this page's Origin (HTTP 403): it is neither the server's own nor listed in CORS_ORIGINS. The client stopped. */
  ORIGIN_REFUSED: 'ORIGIN_REFUSED',
  /** The server refused the connection for another reason retrying cannot fix (HTTP 400, 404…; `status` says which). The client stopped. */
  REFUSED: 'REFUSED'
} as const
export type KeelClientErrorCode = typeof KeelClientErrorCode[keyof typeof KeelClientErrorCode]

export class KeelClientError extends Error {
  /** A `KeelClientErrorCode`, or the server's code (`VALIDATION`, `FORBIDDEN`, `RATE_LIMITED`…). */
  readonly code: string
  /** Field-level problems of a `VALIDATION` error. */
  readonly errors?: FieldError[]
  /** For `CLOSED` and `UNAUTHORIZED` by close 4001: the close code of the connection that was lost. */
  readonly closeCode?: number
  /** For a refused connection or HTTP request: the HTTP status the server answered. */
  readonly status?: number

  constructor (code: string, message: string, details: ErrorDetails = {}) {
    super(message)
    this.name = 'KeelClientError'
    this.code = code
    if (details.errors !== undefined) this.errors = details.errors
    if (details.closeCode !== undefined) this.closeCode = details.closeCode
    if (details.status !== undefined) this.status = details.status
  }
}

export interface ErrorDetails { errors?: FieldError[], closeCode?: number, status?: number }

/** The error an `error` frame stands for; a frame missing its fields still becomes an error. */
export function serverError (data: unknown): KeelClientError {
  const d: Partial<Record<keyof ServerErrorData, unknown>> = isRecord(data) ? data : {}
  const code = typeof d.code === 'string' ? d.code : 'UNKNOWN'
  const message = typeof d.message === 'string' ? d.message : 'the server refused the request'
  return new KeelClientError(code, message, Array.isArray(d.errors) ? { errors: d.errors as FieldError[] } : {})
}

/**
 * The error a problem+json answer stands for (an HTTP request refused): the server's `code` and
 * `detail`, or the status alone when the body is not one.
 */
export function problemError (status: number, body: unknown): KeelClientError {
  const p: Record<string, unknown> = isRecord(body) ? body : {}
  const code = typeof p.code === 'string' ? p.code : `HTTP_${status}`
  const detail = typeof p.detail === 'string' ? p.detail : typeof p.title === 'string' ? p.title : `the server answered ${status}`
  return new KeelClientError(code, detail, { status, ...(Array.isArray(p.errors) ? { errors: p.errors as FieldError[] } : {}) })
}
