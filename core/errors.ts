// Typed application errors with stable codes, and their RFC 9457 problem+json shape.
// Code in lib/ and routes throws these; core/error-handler.ts is the only place that renders them.

import { STATUS_CODES } from 'node:http'

/** Stable, documented error codes. Clients may branch on `code`; never rename one. */
export const ErrorCode = {
  BAD_REQUEST: 'BAD_REQUEST',
  VALIDATION: 'VALIDATION',
  MALFORMED_JSON: 'MALFORMED_JSON',
  UNAUTHORIZED: 'UNAUTHORIZED',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  METHOD_NOT_ALLOWED: 'METHOD_NOT_ALLOWED',
  NOT_ACCEPTABLE: 'NOT_ACCEPTABLE',
  CONFLICT: 'CONFLICT',
  PRECONDITION_FAILED: 'PRECONDITION_FAILED',
  PRECONDITION_REQUIRED: 'PRECONDITION_REQUIRED',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  UNSUPPORTED_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  RATE_LIMITED: 'RATE_LIMITED',
  INTERNAL: 'INTERNAL',
  BAD_GATEWAY: 'BAD_GATEWAY',
  SERVICE_UNAVAILABLE: 'SERVICE_UNAVAILABLE',
  GATEWAY_TIMEOUT: 'GATEWAY_TIMEOUT'
} as const
export type ErrorCode = typeof ErrorCode[keyof typeof ErrorCode]

const statusOf: Record<ErrorCode, number> = {
  BAD_REQUEST: 400,
  VALIDATION: 400,
  MALFORMED_JSON: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  NOT_ACCEPTABLE: 406,
  CONFLICT: 409,
  PRECONDITION_FAILED: 412,
  PRECONDITION_REQUIRED: 428,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  RATE_LIMITED: 429,
  INTERNAL: 500,
  BAD_GATEWAY: 502,
  SERVICE_UNAVAILABLE: 503,
  GATEWAY_TIMEOUT: 504
}

export interface FieldError { path: string, message: string }

export interface ErrorOptions {
  /** Extra response headers, e.g. `Retry-After` or `WWW-Authenticate`. */
  headers?: Record<string, string>
  /** Field-level problems (validation). */
  errors?: FieldError[]
  cause?: unknown
}

/**
 * An error whose `message` is safe to show to the client. Anything that is not an
 * `AppError` (or a Fastify 4xx) is treated as internal and its message is never sent.
 */
export class AppError extends Error {
  readonly code: ErrorCode
  readonly statusCode: number
  readonly headers: Record<string, string>
  readonly errors?: FieldError[]

  constructor (code: ErrorCode, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'AppError'
    this.code = code
    this.statusCode = statusOf[code]
    this.headers = options.headers ?? {}
    this.errors = options.errors
  }
}

export const notFound = (what: string) => new AppError(ErrorCode.NOT_FOUND, `${what} was not found`)
export const preconditionFailed = (detail = 'the resource has changed since you read it (If-Match does not match its ETag)') =>
  new AppError(ErrorCode.PRECONDITION_FAILED, detail)
export const preconditionRequired = (detail = 'this write needs an If-Match header with the ETag you read') =>
  new AppError(ErrorCode.PRECONDITION_REQUIRED, detail)

export interface Problem {
  type: string
  title: string
  status: number
  detail: string
  instance: string
  code: ErrorCode
  requestId?: string
  errors?: FieldError[]
}

/** The RFC 9457 body. `type` is a URN naming the code: stable, never dereferenced. */
export function toProblem (code: ErrorCode, status: number, detail: string, instance: string, extra: Partial<Problem> = {}): Problem {
  return {
    type: `urn:keel:problem:${code.toLowerCase().replaceAll('_', '-')}`,
    title: STATUS_CODES[status] ?? 'Error',
    status,
    detail,
    instance,
    code,
    ...extra
  }
}

/** Maps an HTTP status to the error code used when nothing more specific is known. */
export function codeForStatus (status: number): ErrorCode {
  for (const [code, s] of Object.entries(statusOf)) if (s === status) return code as ErrorCode
  return status >= 500 ? ErrorCode.INTERNAL : ErrorCode.BAD_REQUEST
}
