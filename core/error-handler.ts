// The one place that renders problem+json (RFC 9457): the error handler, the not-found handler (404,
// or 405 with Allow when the path answers other methods), Fastify's framework errors (a bad URL, an
// over-long path parameter) and the HTTP parser's errors (431, malformed requests), which are written
// on the socket because no request exists yet. Every response carries a code naming its status and a
// request id. Messages of internal errors (5xx not raised as AppError) are logged, never sent;
// responses carry no stack traces.

import { randomUUID } from 'node:crypto'
import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import fp from 'fastify-plugin'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions, RouteOptions } from 'fastify'
import { AppError, ErrorCode, codeForStatus, type FieldError } from './errors.ts'
import { ignoreBody } from './request-body.ts'

export const PROBLEM_JSON = 'application/problem+json; charset=utf-8'
const REQUEST_ID_HEADER = 'x-request-id'

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

/** The path only: query strings may hold tokens (`?access_token=`) and never echo back. */
export function instanceOf (request: FastifyRequest): string {
  const q = request.url.indexOf('?')
  return q === -1 ? request.url : request.url.slice(0, q)
}

/**
 * Puts an AppError's status, headers and content type on `reply` and returns the body, for code that
 * hands the body to someone else to send (load shedding's pressure handler).
 */
export function problemReply (request: FastifyRequest, reply: FastifyReply, error: AppError): Problem {
  reply.code(error.statusCode).headers(error.headers).type(PROBLEM_JSON)
  return toProblem(error.code, error.statusCode, error.message, instanceOf(request), { requestId: String(request.id), errors: error.errors })
}

function validationErrors (error: FastifyError): FieldError[] {
  return (error.validation ?? []).map((v) => ({ path: `/${error.validationContext ?? 'body'}${v.instancePath}`, message: v.message ?? 'is invalid' }))
}

// Fastify's own errors whose 4xx carries a code worth naming.
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: ErrorCode.MALFORMED_JSON,
  FST_ERR_CTP_EMPTY_JSON_BODY: ErrorCode.MALFORMED_JSON,
  FST_ERR_CTP_BODY_TOO_LARGE: ErrorCode.PAYLOAD_TOO_LARGE,
  FST_ERR_CTP_INVALID_MEDIA_TYPE: ErrorCode.UNSUPPORTED_MEDIA_TYPE
}

export function sendProblem (request: FastifyRequest, reply: FastifyReply, error: FastifyError | AppError): FastifyReply {
  if (error instanceof AppError) {
    // A typed 5xx (upstream down, breaker open) is an expected condition, reported by metrics and
    // health too: a warning, so an outage does not flood the error log with one line per refusal.
    if (error.statusCode >= 500) request.log.warn({ code: error.code, detail: error.message }, 'request failed')
    return reply.send(problemReply(request, reply, error))
  }
  const instance = instanceOf(request)
  const requestId = String(request.id)
  if (error.validation !== undefined) {
    return reply.code(400).type(PROBLEM_JSON).send(toProblem(ErrorCode.VALIDATION, 400, 'the request is invalid', instance,
      { requestId, errors: validationErrors(error) }))
  }
  const status = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500
  if (status >= 500) {
    request.log.error({ err: error }, 'request failed')
    return reply.code(status).type(PROBLEM_JSON)
      .send(toProblem(codeForStatus(status), status, 'an unexpected error occurred; quote the request id when reporting it', instance, { requestId }))
  }
  const code = FASTIFY_CODES[error.code] ?? codeForStatus(status)
  // A plugin's 4xx (rate limit, auth) may have set headers already; keep them.
  return reply.code(status).type(PROBLEM_JSON).send(toProblem(code, status, error.message, instance, { requestId }))
}

type HeaderSet = Readonly<Record<string, string>>

// Fastify's framework errors, in words that echo nothing of the request.
const FRAMEWORK_ERRORS: Record<string, () => AppError> = {
  FST_ERR_BAD_URL: () => new AppError(ErrorCode.BAD_REQUEST, 'the request path is not valid percent-encoded UTF-8'),
  FST_ERR_MAX_PARAM_LENGTH: () => new AppError(ErrorCode.URI_TOO_LONG, 'a path segment is longer than this server accepts')
}

/**
 * Fastify's `frameworkErrors`: errors raised while routing, before any hook runs, so this handler adds
 * what the hooks would have (the security headers and the request id) itself.
 */
export function frameworkErrorHandler (headers: HeaderSet): NonNullable<FastifyServerOptions['frameworkErrors']> {
  const entries = Object.entries(headers)
  return function renderFrameworkError (error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
    for (const [name, value] of entries) reply.header(name, value)
    reply.header(REQUEST_ID_HEADER, request.id)
    sendProblem(request, reply, FRAMEWORK_ERRORS[error.code]?.() ?? error)
  } as NonNullable<FastifyServerOptions['frameworkErrors']>
}

// What the HTTP parser's errors mean to the client (as Node's own default answers them).
const CLIENT_ERRORS: Record<string, { status: number, detail: string }> = {
  HPE_HEADER_OVERFLOW: { status: 431, detail: 'the request\'s header section is larger than this server accepts' },
  HPE_CHUNK_EXTENSIONS_OVERFLOW: { status: 413, detail: 'the request\'s chunk extensions are larger than this server accepts' },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, detail: 'the request did not arrive in time' }
}
const MALFORMED = { status: 400, detail: 'the request is not valid HTTP/1.1' }

/** A response still being written on this connection (an earlier keep-alive request's): no error may cut into it. */
function responseInProgress (socket: Duplex): boolean {
  return (socket as Duplex & { _httpMessage?: unknown })._httpMessage != null
}

/**
 * Fastify's `clientErrorHandler`, for errors Node's HTTP parser raises before a request exists: a
 * minimal problem+json written on the socket, with the security headers and a fresh request id
 * (logged at debug level with the error code, never with the raw bytes, which may hold credentials),
 * then the connection is closed as Node's own handler does.
 */
export function clientErrorHandler (headers: HeaderSet): NonNullable<FastifyServerOptions['clientErrorHandler']> {
  const headerLines = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('')
  return function renderClientError (this: FastifyInstance, error: Error & { code?: string }, socket: Duplex) {
    if (error.code === 'ECONNRESET' || socket.destroyed) return
    const { status, detail } = CLIENT_ERRORS[error.code ?? ''] ?? MALFORMED
    const requestId = randomUUID()
    this.log.debug({ reqId: requestId, code: error.code }, 'client error')
    if (socket.writable && !responseInProgress(socket)) {
      // No request line to take a path from: the instance names this occurrence instead.
      const body = JSON.stringify(toProblem(codeForStatus(status), status, detail, `urn:uuid:${requestId}`, { requestId }))
      socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: ${PROBLEM_JSON}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
        `connection: close\r\n${REQUEST_ID_HEADER}: ${requestId}\r\n${headerLines}\r\n${body}`)
    }
    socket.destroy()
  } as NonNullable<FastifyServerOptions['clientErrorHandler']>
}

/** A check every unmatched request meets before its 404 or 405 (the rate limiter adds its budget). */
export type UnmatchedRequestCheck = (request: FastifyRequest, reply: FastifyReply) => Promise<void>

declare module 'fastify' {
  interface FastifyInstance {
    /** Adds a check that unmatched requests (404, 405) meet; it may throw to answer instead. */
    addUnmatchedRequestCheck: (check: UnmatchedRequestCheck) => void
  }
}

export default fp(async function errors (fastify) {
  fastify.setErrorHandler(function (error: FastifyError | AppError, request, reply) {
    return sendProblem(request, reply, error)
  })

  // Every method some route answers, for the Allow header of a 405.
  const methods = new Set<string>()
  fastify.addHook('onRoute', (route: RouteOptions) => {
    for (const method of Array.isArray(route.method) ? route.method : [route.method]) methods.add(method.toUpperCase())
  })
  /** The methods `path` answers besides `method`; none when only OPTIONS does (CORS answers OPTIONS on every path). */
  function allowedMethods (path: string, method: string): string[] {
    const allowed = [...methods].filter((m) => m !== method && fastify.findRoute({ method: m as 'GET', url: path }) !== null)
    return allowed.some((m) => m !== 'OPTIONS') ? allowed : []
  }

  const checks: UnmatchedRequestCheck[] = []
  fastify.decorate('addUnmatchedRequestCheck', (check: UnmatchedRequestCheck) => { checks.push(check) })

  // Fastify runs every lifecycle hook given here, preParsing included (its types name only
  // preValidation and preHandler): the body of an unmatched request is never read or parsed.
  const notFoundHooks = { preParsing: ignoreBody } as unknown as Parameters<typeof fastify.setNotFoundHandler>[0]
  fastify.setNotFoundHandler(notFoundHooks, async function notFound (request: FastifyRequest, reply: FastifyReply) {
    for (const check of checks) await check(request, reply)
    const path = instanceOf(request)
    const allowed = allowedMethods(path, request.method)
    if (allowed.length > 0) {
      throw new AppError(ErrorCode.METHOD_NOT_ALLOWED, `${request.method} is not allowed on ${path}; it answers ${allowed.join(', ')}`,
        { headers: { allow: allowed.join(', ') } })
    }
    throw new AppError(ErrorCode.NOT_FOUND, `no route for ${request.method} ${path}`)
  })
}, { name: 'keel-errors' })
