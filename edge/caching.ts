// Caching headers as route policy (`config.cache`, core/route-config.ts): Cache-Control on successful
// GET/HEAD responses, weak ETags hashed from computed 200 bodies with 304s for GET and HEAD, and
// resource-set strong ETags kept distinct per content-coding. Writes declaring `preconditions:
// 'required'` are answered 428 without If-Match. Each route's policy is validated and its header built
// once, at registration; routes without `config.cache` get no hook and pay nothing.
// Register it after compression: its hooks are placed around the compression hook on each route.

import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import { routeHooks, type OnSendHook, type RouteCache, type RoutePreconditions } from '../core/route-config.ts'
import { preconditionRequired } from '../core/errors.ts'
import { evaluatePreconditions, hasPreconditions, weakETagOf, withContentCoding } from './conditional.ts'

const FLAGS = ['noStore', 'noCache', 'private'] as const
const SECONDS = ['maxAge', 'sMaxAge', 'staleWhileRevalidate'] as const
const KNOWN = new Set<string>([...FLAGS, ...SECONDS, 'etag'])

/** Checks a route's `config.cache`; a mistake stops the start with a message naming the route. */
export function validateRouteCache (value: unknown, route: string): RouteCache {
  const fail = (field: string, problem: string): never => { throw new Error(`${route}: config.cache${field} ${problem}`) }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('', 'must be an object')
  const cache = value as Record<string, unknown>
  for (const key of Object.keys(cache)) if (!KNOWN.has(key)) fail('', `has an unknown field "${key}"`)
  for (const key of FLAGS) if (cache[key] !== undefined && typeof cache[key] !== 'boolean') fail(`.${key}`, 'must be a boolean')
  for (const key of SECONDS) {
    const s = cache[key]
    if (s !== undefined && !(Number.isSafeInteger(s) && (s as number) >= 0)) fail(`.${key}`, 'must be a whole number of seconds ≥ 0')
  }
  if (cache.etag !== undefined && cache.etag !== 'computed' && cache.etag !== 'resource') fail('.etag', 'must be "computed" or "resource"')
  if (cache.noStore === true && Object.keys(cache).some((k) => k !== 'noStore' && k !== 'etag' && cache[k] !== undefined)) {
    fail('.noStore', 'excludes every other Cache-Control field')
  }
  if (cache.private === true && cache.sMaxAge !== undefined) fail('.sMaxAge', 'has no meaning for a private response')
  return cache as RouteCache
}

/** The Cache-Control value of a policy, or undefined when it says nothing about caching (an etag-only policy). */
export function cacheControlOf (cache: RouteCache): string | undefined {
  if (cache.noStore === true) return 'no-store'
  const directives: string[] = []
  if (cache.noCache === true) directives.push('no-cache')
  if (cache.maxAge !== undefined) directives.push(`max-age=${cache.maxAge}`)
  if (cache.sMaxAge !== undefined) directives.push(`s-maxage=${cache.sMaxAge}`)
  if (cache.staleWhileRevalidate !== undefined) directives.push(`stale-while-revalidate=${cache.staleWhileRevalidate}`)
  if (directives.length === 0 && cache.private !== true) return undefined
  return [cache.private === true ? 'private' : 'public', ...directives].join(', ')
}

const isRead = (method: string) => method === 'GET' || method === 'HEAD'

/** Checks a route's `config.preconditions` against its methods and its ETag policy; a mistake stops the start. */
export function validateRoutePreconditions (value: unknown, methods: readonly string[], cache: RouteCache | undefined, route: string): RoutePreconditions {
  if (value !== 'required' && value !== 'optional') throw new Error(`${route}: config.preconditions must be "required" or "optional"`)
  if (methods.some((method) => isRead(method.toUpperCase()))) throw new Error(`${route}: config.preconditions applies to writes, not to GET or HEAD`)
  if (cache?.etag !== 'resource') throw new Error(`${route}: config.preconditions needs cache.etag "resource" (the ETag If-Match is compared with)`)
  return value
}

/**
 * For `preconditions: 'required'`: a write without If-Match gets 428. A preHandler, the last of the
 * route's: after authentication, the rate limit and validation, just before the handler.
 */
function requireIfMatch (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void): void {
  done(request.headers['if-match'] === undefined ? preconditionRequired() : undefined)
}
const cacheable = (status: number) => (status >= 200 && status < 300) || status === 304

/**
 * For `etag: 'computed'`: runs first among the route's onSend hooks, on the body as serialized (before
 * compression, so one weak tag covers every coding). Hashes only 200 GET/HEAD string bodies.
 * If-Match on a read is not evaluated here (it matters for range requests, which Keel does not serve).
 */
function computedETagHook (cacheControl: string | undefined): OnSendHook {
  return function computedETag (request, reply, payload, done) {
    const status = reply.statusCode
    if (!isRead(request.method) || !cacheable(status)) return done()
    if (cacheControl !== undefined) reply.header('cache-control', cacheControl)
    if (status !== 200 || (typeof payload !== 'string' && !Buffer.isBuffer(payload))) return done()
    const etag = weakETagOf(payload)
    reply.header('etag', etag)
    if (!hasPreconditions(request.headers)) return done()
    const lastModified = reply.getHeader('last-modified')
    const outcome = evaluatePreconditions(request.method, request.headers,
      { etag, lastModified: typeof lastModified === 'string' ? Date.parse(lastModified) : undefined })
    if (outcome.result !== 'not-modified') return done()
    reply.code(304).header('etag', outcome.etag ?? etag).removeHeader('content-type').removeHeader('content-encoding')
    // GET: no body. HEAD: the body goes on to Fastify's HEAD hook, which turns it into the Content-Length
    // a 200 would carry (the only length a 304 may state, RFC 9110 §8.6) and sends nothing.
    done(null, request.method === 'HEAD' ? payload : null)
  }
}

/**
 * For every other policy: runs last, after compression. Sets Cache-Control, and gives a strong ETag the
 * handler set the suffix of the coding the body went out in (a strong tag names exact bytes).
 */
function afterCompressionHook (cacheControl: string | undefined): OnSendHook {
  return function cachePolicy (request, reply, _payload, done) {
    const status = reply.statusCode
    if (cacheControl !== undefined && isRead(request.method) && cacheable(status)) reply.header('cache-control', cacheControl)
    if (status === 304) {
      // Fastify's HEAD hook states 0 for an empty payload; a 304 may state no length but the 200's.
      reply.removeHeader('content-length')
      return done()
    }
    const coding = reply.getHeader('content-encoding')
    if (typeof coding === 'string') {
      const etag = reply.getHeader('etag')
      if (typeof etag === 'string') reply.header('etag', withContentCoding(etag, coding))
    }
    done()
  }
}

export default fp(async function caching (fastify) {
  fastify.addHook('onRoute', (route: RouteOptions) => {
    const declared = route.config?.cache
    const name = `${String(route.method)} ${route.url}`
    const preconditions = route.config?.preconditions
    if (preconditions !== undefined) {
      const methods = Array.isArray(route.method) ? route.method : [route.method]
      const required = validateRoutePreconditions(preconditions, methods, declared, name) === 'required'
      if (required) route.preHandler = [...routeHooks(route.preHandler), requireIfMatch] as RouteOptions['preHandler']
    }
    if (declared === undefined) return
    const cache = validateRouteCache(declared, name)
    const cacheControl = cacheControlOf(cache)
    // New arrays, never in-place edits: Fastify derives the HEAD route from the GET route's options.
    const existing = routeHooks(route.onSend)
    route.onSend = (cache.etag === 'computed'
      ? [computedETagHook(cacheControl), ...existing]
      : [...existing, afterCompressionHook(cacheControl)]) as RouteOptions['onSend']
  })
}, { name: 'keel-caching' })
