// The one error type of the client: its own codes (timeouts, no connection, closed) and the server's
// refusals, which keep the server's code and field errors.

import { isRecord } from './frames.ts'
import type { FieldError, ServerErrorData } from './protocol.ts'

/** The client's own error codes; a request refused by the server carries the server's code instead. */
export const KeelClientErrorCode = {
  /** No ack or error arrived within `ackTimeoutMs` while the connection stayed up. */
  ACK_TIMEOUT: 'ACK_TIMEOUT',
  /** The request was made while no connection was ready. */
  NOT_CONNECTED: 'NOT_CONNECTED',
  /** The connection closed before the answer came (or `close()` was called). */
  CLOSED: 'CLOSED'
} as const
export type KeelClientErrorCode = typeof KeelClientErrorCode[keyof typeof KeelClientErrorCode]

export class KeelClientError extends Error {
  /** A `KeelClientErrorCode`, or the server's code (`VALIDATION`, `FORBIDDEN`, `RATE_LIMITED`…). */
  readonly code: string
  /** Field-level problems of a `VALIDATION` error. */
  readonly errors?: FieldError[]
  /** For `CLOSED`: the close code of the connection that was lost. */
  readonly closeCode?: number

  constructor (code: string, message: string, details: { errors?: FieldError[], closeCode?: number } = {}) {
    super(message)
    this.name = 'KeelClientError'
    this.code = code
    if (details.errors !== undefined) this.errors = details.errors
    if (details.closeCode !== undefined) this.closeCode = details.closeCode
  }
}

/** The error an `error` frame stands for; a frame missing its fields still becomes an error. */
export function serverError (data: unknown): KeelClientError {
  const d: Partial<Record<keyof ServerErrorData, unknown>> = isRecord(data) ? data : {}
  const code = typeof d.code === 'string' ? d.code : 'UNKNOWN'
  const message = typeof d.message === 'string' ? d.message : 'the server refused the request'
  return new KeelClientError(code, message, Array.isArray(d.errors) ? { errors: d.errors as FieldError[] } : {})
}
