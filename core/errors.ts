// Typed application errors with stable codes and the HTTP status of each. Routes and plugins throw
// these; core/error-handler.ts is the only place that renders them (as RFC 9457 problem+json).

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
  GATEWAY_TIMEOUT: 'GATEWAY_TIMEOUT',
  REQUEST_TIMEOUT: 'REQUEST_TIMEOUT',
  URI_TOO_LONG: 'URI_TOO_LONG',
  UPGRADE_REQUIRED: 'UPGRADE_REQUIRED',
  REQUEST_HEADER_FIELDS_TOO_LARGE: 'REQUEST_HEADER_FIELDS_TOO_LARGE',
  NOT_IMPLEMENTED: 'NOT_IMPLEMENTED',
  /** A real-time event envelope that is not `{event, data?, id?}` (over HTTP: POST /events). */
  INVALID_MESSAGE: 'INVALID_MESSAGE',
  /** A real-time event no event file defines (over HTTP: POST /events). */
  UNKNOWN_EVENT: 'UNKNOWN_EVENT'
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
  GATEWAY_TIMEOUT: 504,
  REQUEST_TIMEOUT: 408,
  URI_TOO_LONG: 414,
  UPGRADE_REQUIRED: 426,
  REQUEST_HEADER_FIELDS_TOO_LARGE: 431,
  NOT_IMPLEMENTED: 501,
  INVALID_MESSAGE: 400,
  UNKNOWN_EVENT: 400
}

// The code that names each status: the first code listed with it (BAD_REQUEST for 400, not VALIDATION).
const codeOfStatus = new Map<number, ErrorCode>()
for (const [code, status] of Object.entries(statusOf) as Array<[ErrorCode, number]>) {
  if (!codeOfStatus.has(status)) codeOfStatus.set(status, code)
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

/** Maps an HTTP status to the error code used when nothing more specific is known. */
export function codeForStatus (status: number): ErrorCode {
  return codeOfStatus.get(status) ?? (status >= 500 ? ErrorCode.INTERNAL : ErrorCode.BAD_REQUEST)
}
