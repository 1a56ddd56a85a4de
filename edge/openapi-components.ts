// The shared pieces of the API document: the problem+json schema every error response uses, the error
// responses, the response headers and the conditional-request parameters. Operations point at them
// with `$ref` (edge/openapi-operation.ts decides which); `addReferencedComponents` copies into the
// document only those some operation uses, so removing a resource leaves no unused component behind.
// The examples are rendered by core/error-handler.ts itself, so they show exactly what Keel sends.

import { Type } from '@sinclair/typebox'
import { ErrorCode, notFound, preconditionFailed, preconditionRequired } from '../core/errors.ts'
import { toProblem } from '../core/error-handler.ts'
import { insufficientScope, missingToken } from '../auth/access-token.ts'
import { SHED_RETRY_AFTER_S } from './load-shedding.ts'

export const PROBLEM_MEDIA_TYPE = 'application/problem+json'

export interface Ref { $ref: string }
export type Kind = 'schemas' | 'responses' | 'headers' | 'parameters'
export const ref = (kind: Kind, name: string): Ref => ({ $ref: `#/components/${kind}/${name}` })

const FieldError = Type.Object({
  path: Type.String({ description: 'A JSON pointer into the request part that failed: `/body/name`, `/querystring/limit`' }),
  message: Type.String()
})

// The example values: one path and one request id for every example, so they read as one story.
const EXAMPLE_INSTANCE = '/api/v1/widgets/42'
const EXAMPLE_REQUEST_ID = '6f1c2a9e-3b7d-4c55-9a0e-2f4d8b1c7e60'
const example = (code: ErrorCode, status: number, detail: string, extra: Parameters<typeof toProblem>[4] = {}) =>
  toProblem(code, status, detail, EXAMPLE_INSTANCE, { requestId: EXAMPLE_REQUEST_ID, ...extra })

const Problem = Type.Object({
  type: Type.String({ format: 'uri', description: 'A URN naming the code (`urn:keel:problem:not-found`): stable, never dereferenced' }),
  title: Type.String({ description: 'The status\'s reason phrase' }),
  status: Type.Integer({ minimum: 400, maximum: 599 }),
  detail: Type.String({ description: 'What went wrong, for a person; never a stack trace' }),
  instance: Type.String({ description: 'The request\'s path (without its query), or `urn:uuid:<request id>` when no request line could be read' }),
  code: Type.Unsafe<ErrorCode>({ type: 'string', enum: Object.values(ErrorCode), description: 'Stable: clients may branch on it' }),
  requestId: Type.String({ description: 'The x-request-id of the response: quote it when reporting a problem' }),
  errors: Type.Optional(Type.Array(FieldError, { description: 'Validation only: each field that failed' }))
}, {
  description: 'An RFC 9457 problem: the body of every error response',
  examples: [example(ErrorCode.NOT_FOUND, 404, notFound('widget').message)]
})

const header = (description: string, schema: Record<string, unknown>) => ({ description, schema })
const integerHeader = (description: string) => header(description, { type: 'integer', minimum: 0 })

const HEADERS = {
  'X-Request-Id': header('This request\'s id: the x-request-id the client sent when well-formed, else a fresh UUID. Every log line of the request carries it.',
    { type: 'string', example: EXAMPLE_REQUEST_ID }),
  'RateLimit-Limit': integerHeader('Requests the client may make in the current window'),
  'RateLimit-Remaining': integerHeader('Requests left in the current window'),
  'RateLimit-Reset': integerHeader('Seconds until the window resets'),
  'Retry-After': integerHeader('Seconds to wait before trying again'),
  ETag: header('The representation\'s entity tag: send it back in If-None-Match to revalidate, or in If-Match to write', { type: 'string', example: '"v3"' }),
  'Last-Modified': header('When the resource last changed (HTTP-date)', { type: 'string', example: 'Wed, 21 Oct 2026 07:28:00 GMT' }),
  Location: header('The URL of the resource the request created', { type: 'string', format: 'uri-reference', example: EXAMPLE_INSTANCE }),
  'WWW-Authenticate': header('An RFC 6750 Bearer challenge; `error` and `scope` say what the token lacks',
    { type: 'string', example: 'Bearer realm="keel", error="insufficient_scope", scope="widgets:write"' })
} as const
export type HeaderName = keyof typeof HEADERS

const conditionalHeader = (name: string, description: string, example: string, required = false) =>
  ({ in: 'header', name, required, description, schema: { type: 'string' }, example })

const PARAMETERS = {
  RequestId: { in: 'header', name: 'X-Request-Id', required: false, description: 'Your id for this request (1–128 of A–Z a–z 0–9 . _ : @ -); echoed in the response and its logs', schema: { type: 'string', pattern: '^[A-Za-z0-9._:@-]{1,128}$' }, example: EXAMPLE_REQUEST_ID },
  IfNoneMatch: conditionalHeader('If-None-Match', 'The ETag(s) you hold: 304 while one still matches', '"v3"'),
  IfModifiedSince: conditionalHeader('If-Modified-Since', 'The Last-Modified you hold: 304 while unchanged (If-None-Match takes precedence)', 'Wed, 21 Oct 2026 07:28:00 GMT'),
  IfMatch: conditionalHeader('If-Match', 'The ETag you read: the write happens only while it still matches (412 otherwise)', '"v3"'),
  IfMatchRequired: conditionalHeader('If-Match', 'The ETag you read, required: 428 without it, 412 when the resource changed since', '"v3"', true)
} as const
export type ParameterName = keyof typeof PARAMETERS
/** The header a shared parameter names (`IfMatchRequired` → `If-Match`). */
export const parameterHeaderName = (name: ParameterName): string => PARAMETERS[name].name

const headerRefs = (names: readonly HeaderName[]) => Object.fromEntries(names.map((name) => [name, ref('headers', name)]))

/** A problem+json response with its example and headers (x-request-id first). */
function problemResponse (description: string, problem: ReturnType<typeof example>, headers: readonly HeaderName[] = []) {
  return {
    description,
    headers: headerRefs(['X-Request-Id', ...headers]),
    content: { [PROBLEM_MEDIA_TYPE]: { schema: ref('schemas', 'Problem'), example: problem } }
  }
}

/** The headers every response of a rate-limited route carries (429 adds Retry-After). */
export const RATE_LIMIT_HEADERS = ['RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset'] as const satisfies readonly HeaderName[]

const RESPONSES = {
  NotModified: { description: 'Not Modified: the representation you hold is current; no body', headers: headerRefs(['X-Request-Id', 'ETag']) },
  BadRequest: problemResponse('The request is invalid: `errors` lists each field (validation), or the body is not well-formed JSON',
    example(ErrorCode.VALIDATION, 400, 'the request is invalid', { errors: [{ path: '/body/name', message: 'Expected string length greater or equal to 1' }] })),
  Unauthorized: problemResponse('No access token, or one that is invalid or expired',
    example(ErrorCode.UNAUTHORIZED, 401, missingToken().message), ['WWW-Authenticate']),
  Forbidden: problemResponse('The token lacks a scope this route needs, or the resource\'s policy refuses this user',
    example(ErrorCode.FORBIDDEN, 403, insufficientScope(['widgets:write']).message), ['WWW-Authenticate']),
  NotFound: problemResponse('No resource at this path', example(ErrorCode.NOT_FOUND, 404, notFound('widget').message)),
  PreconditionFailed: problemResponse('A precondition (If-Match, If-None-Match, If-Unmodified-Since) does not hold: the resource changed since you read it',
    example(ErrorCode.PRECONDITION_FAILED, 412, preconditionFailed().message)),
  PayloadTooLarge: problemResponse('The body is larger than this route accepts',
    example(ErrorCode.PAYLOAD_TOO_LARGE, 413, 'Request body is too large')),
  UnsupportedMediaType: problemResponse('The body is not `application/json` in UTF-8',
    example(ErrorCode.UNSUPPORTED_MEDIA_TYPE, 415, 'Unsupported Media Type')),
  PreconditionRequired: problemResponse('This write needs If-Match with the ETag you read',
    example(ErrorCode.PRECONDITION_REQUIRED, 428, preconditionRequired().message)),
  TooManyRequests: problemResponse('The client spent its request budget for this window',
    example(ErrorCode.RATE_LIMITED, 429, 'rate limit of 100 requests exceeded; retry in 1 minute'), ['Retry-After', ...RATE_LIMIT_HEADERS]),
  InternalError: problemResponse('An unexpected error; the detail says nothing more, the request id finds it in the logs',
    example(ErrorCode.INTERNAL, 500, 'an unexpected error occurred; quote the request id when reporting it')),
  ServiceUnavailable: problemResponse('The server is overloaded (load shedding) or a dependency it needs is down; retry after Retry-After',
    example(ErrorCode.SERVICE_UNAVAILABLE, 503, `the server is overloaded; retry after ${SHED_RETRY_AFTER_S} s`), ['Retry-After'])
} as const
export type ResponseName = keyof typeof RESPONSES

const CATALOGUE: Record<Kind, Record<string, unknown>> = {
  schemas: { Problem },
  responses: RESPONSES,
  headers: HEADERS,
  parameters: PARAMETERS
}

/** Every `$ref` string anywhere in `value`. */
function refsIn (value: unknown, found: Set<string>): Set<string> {
  if (Array.isArray(value)) for (const v of value) refsIn(v, found)
  else if (value !== null && typeof value === 'object') {
    for (const [key, v] of Object.entries(value)) {
      if (key === '$ref' && typeof v === 'string') found.add(v)
      else refsIn(v, found)
    }
  }
  return found
}

/** Copies into `components` every catalogue entry that `paths` refers to, and what those refer to in turn. */
export function addReferencedComponents (paths: unknown, components: Partial<Record<Kind, Record<string, unknown>>>): void {
  const pending = [...refsIn(paths, new Set())]
  const seen = new Set<string>()
  while (pending.length > 0) {
    const target = pending.pop()!
    if (seen.has(target)) continue
    seen.add(target)
    const [, kind, name] = /^#\/components\/(schemas|responses|headers|parameters)\/(.+)$/.exec(target) ?? []
    const entry = kind === undefined ? undefined : CATALOGUE[kind as Kind][name!]
    if (entry === undefined) continue
    components[kind as Kind] = { ...components[kind as Kind], [name!]: entry }
    pending.push(...refsIn(entry, new Set()))
  }
  // In name order, so the document reads the same whatever order the routes were registered in.
  for (const kind of Object.keys(CATALOGUE) as Kind[]) {
    const entries = components[kind]
    if (entries !== undefined) components[kind] = Object.fromEntries(Object.entries(entries).sort(([a], [b]) => a.localeCompare(b)))
  }
}
