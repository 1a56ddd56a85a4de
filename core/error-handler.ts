// The one error handler and the one not-found handler: every failure leaves as RFC 9457
// application/problem+json. Messages of internal errors (5xx not raised as AppError) are logged,
// never sent; responses carry no stack traces.

import fp from 'fastify-plugin'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { AppError, ErrorCode, codeForStatus, toProblem, type FieldError } from './errors.ts'

export const PROBLEM_JSON = 'application/problem+json; charset=utf-8'

/** The path only: query strings may hold tokens (`?access_token=`) and never echo back. */
export function instanceOf (request: FastifyRequest): string {
  const q = request.url.indexOf('?')
  return q === -1 ? request.url : request.url.slice(0, q)
}

function validationErrors (error: FastifyError): FieldError[] {
  return (error.validation ?? []).map((v) => {
    const params = v.params as Record<string, unknown>
    const extra = typeof params.additionalProperty === 'string' ? `/${params.additionalProperty}` : ''
    return { path: `/${error.validationContext ?? 'body'}${v.instancePath}${extra}`, message: v.message ?? 'is invalid' }
  })
}

// Fastify's own errors whose 4xx carries a code worth naming.
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: ErrorCode.MALFORMED_JSON,
  FST_ERR_CTP_EMPTY_JSON_BODY: ErrorCode.MALFORMED_JSON,
  FST_ERR_CTP_BODY_TOO_LARGE: ErrorCode.PAYLOAD_TOO_LARGE,
  FST_ERR_CTP_INVALID_MEDIA_TYPE: ErrorCode.UNSUPPORTED_MEDIA_TYPE
}

export function sendProblem (request: FastifyRequest, reply: FastifyReply, error: FastifyError | AppError): FastifyReply {
  const instance = instanceOf(request)
  const requestId = String(request.id)
  if (error instanceof AppError) {
    // A typed 5xx (upstream down, breaker open) is an expected condition, reported by metrics and
    // health too: a warning, so an outage does not flood the error log with one line per refusal.
    if (error.statusCode >= 500) request.log.warn({ code: error.code, detail: error.message }, 'request failed')
    return reply.code(error.statusCode).headers(error.headers).type(PROBLEM_JSON)
      .send(toProblem(error.code, error.statusCode, error.message, instance, { requestId, errors: error.errors }))
  }
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

export default fp(async function errors (fastify) {
  fastify.setErrorHandler(function (error: FastifyError | AppError, request, reply) {
    return sendProblem(request, reply, error)
  })
  fastify.setNotFoundHandler(function (request, reply) {
    return sendProblem(request, reply, new AppError(ErrorCode.NOT_FOUND, `no route for ${request.method} ${instanceOf(request)}`))
  })
}, { name: 'keel-errors' })
