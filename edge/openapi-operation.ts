// What an operation in the API document says beyond its own schemas, derived from what its route
// declares to the edge plugins (core/route-config.ts): the error responses each policy can answer,
// the conditional-request parameters, and the headers of its responses. `routeFacts` reads a route
// once; `documentOperation` completes its operation. Nothing here is written per route: a new route
// is documented by declaring its policies, as it is enforced by them.

import type { RouteOptions } from 'fastify'
import type { RouteAuth, RoutePreconditions } from '../core/route-config.ts'
import { DEFAULT_ROUTE_AUTH } from '../auth/plugin.ts'
import { RATE_LIMIT_HEADERS, parameterHeaderName, ref, type HeaderName, type ParameterName, type Ref, type ResponseName } from './openapi-components.ts'

/** The declarations of one route that shape its documentation. */
export interface RouteFacts {
  auth: RouteAuth
  /** Every route spends the client's budget unless it says `rateLimit: false` (edge/rate-limit.ts). */
  rateLimited: boolean
  /** Every route may be shed under load unless it says `loadShedding: false` (edge/load-shedding.ts). */
  shed: boolean
  etag?: 'computed' | 'resource'
  preconditions?: RoutePreconditions
  /** It declares a body schema: the only routes that read a body (core/request-body.ts). */
  body: boolean
  /** It validates some part of the request (body, path parameters, query string or headers). */
  validated: boolean
  /** Its path has parameters, which may name nothing. */
  pathParams: boolean
}

export function routeFacts (route: RouteOptions): RouteFacts {
  const config = route.config
  const schema = route.schema ?? {}
  return {
    auth: config?.auth ?? DEFAULT_ROUTE_AUTH,
    rateLimited: config?.rateLimit !== false,
    shed: config?.loadShedding !== false,
    etag: config?.cache?.etag,
    preconditions: config?.preconditions,
    body: schema.body !== undefined,
    validated: schema.body !== undefined || schema.params !== undefined || schema.querystring !== undefined || schema.headers !== undefined,
    pathParams: /[:*]/.test(route.url)
  }
}

interface Response { description?: string, headers?: Record<string, unknown>, content?: unknown }
interface Parameter { in: string, name: string }
export interface Operation {
  operationId?: string
  parameters?: Array<Parameter | Ref>
  responses?: Record<string, Response | Ref>
}

const isRef = (value: object): value is Ref => '$ref' in value
const isRead = (method: string) => method === 'get' || method === 'head'

/** The error (and 304) responses the route's policies can answer, by status. */
function derivedResponses (method: string, facts: RouteFacts): Array<[string, ResponseName]> {
  const responses: Array<[string, ResponseName]> = []
  if (isRead(method) && facts.etag !== undefined) responses.push(['304', 'NotModified'])
  if (facts.validated) responses.push(['400', 'BadRequest'])
  if (facts.auth !== false) responses.push(['401', 'Unauthorized'])
  if (typeof facts.auth === 'object') responses.push(['403', 'Forbidden'])
  if (facts.pathParams) responses.push(['404', 'NotFound'])
  if (!isRead(method) && facts.preconditions !== undefined) responses.push(['412', 'PreconditionFailed'])
  if (facts.body) responses.push(['413', 'PayloadTooLarge'], ['415', 'UnsupportedMediaType'])
  if (!isRead(method) && facts.preconditions === 'required') responses.push(['428', 'PreconditionRequired'])
  if (facts.rateLimited) responses.push(['429', 'TooManyRequests'])
  responses.push(['500', 'InternalError'])
  if (facts.shed) responses.push(['503', 'ServiceUnavailable'])
  return responses
}

/** The request headers the route honours beyond its own schema. */
function derivedParameters (method: string, facts: RouteFacts): ParameterName[] {
  const names: ParameterName[] = ['RequestId']
  if (isRead(method) && facts.etag !== undefined) names.push('IfNoneMatch')
  if (isRead(method) && facts.etag === 'resource') names.push('IfModifiedSince')
  if (!isRead(method) && facts.preconditions !== undefined) names.push(facts.preconditions === 'required' ? 'IfMatchRequired' : 'IfMatch')
  return names
}

/** The headers a response the route itself declares carries, by its status. */
function responseHeaders (method: string, status: string, facts: RouteFacts): HeaderName[] {
  const names: HeaderName[] = ['X-Request-Id']
  if (status === '304') names.push('ETag')
  if (!/^2/.test(status)) return names
  if (facts.rateLimited) names.push(...RATE_LIMIT_HEADERS)
  // A computed tag is hashed from a read's 200 body; a resource's tag goes out with every representation of it.
  if (facts.etag === 'computed' && isRead(method) && status === '200') names.push('ETag')
  if (facts.etag === 'resource' && status !== '204' && (!isRead(method) || status === '200')) names.push('ETag', 'Last-Modified')
  if (status === '201') names.push('Location')
  return names
}

/** `getApiV1ItemsById` for GET /api/v1/items/{id}: unique per operation, as the path and method are. */
export function defaultOperationId (method: string, path: string): string {
  const words = path.split('/').filter((s) => s !== '').map((segment) => {
    const param = /^\{(.+)\}$/.exec(segment)?.[1]
    const word = (param ?? segment).replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())
    return (param === undefined ? '' : 'By') + word.charAt(0).toUpperCase() + word.slice(1)
  })
  return method + words.join('')
}

/** Completes `op` (a copy of its own, not shared with another method) from the route's declarations. */
export function documentOperation (op: Operation, method: string, path: string, facts: RouteFacts): void {
  op.operationId ??= defaultOperationId(method, path)

  const responses = op.responses ?? {}
  for (const [status, response] of Object.entries(responses)) {
    if (isRef(response)) continue
    const headers = Object.fromEntries(responseHeaders(method, status, facts).map((name) => [name, ref('headers', name)]))
    response.headers = { ...headers, ...response.headers }
  }
  // The route's own responses win: it knows better what its 404 or 503 means.
  for (const [status, name] of derivedResponses(method, facts)) responses[status] ??= ref('responses', name)
  op.responses = Object.fromEntries(Object.entries(responses).sort(([a], [b]) => a.localeCompare(b)))

  const parameters = op.parameters ?? []
  const declared = new Set(parameters.filter((p): p is Parameter => !isRef(p)).map((p) => `${p.in}:${p.name.toLowerCase()}`))
  for (const name of derivedParameters(method, facts)) {
    if (!declared.has(`header:${parameterHeaderName(name).toLowerCase()}`)) parameters.push(ref('parameters', name))
  }
  if (parameters.length > 0) op.parameters = parameters
}
