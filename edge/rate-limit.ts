// Rate limiting on @fastify/rate-limit: a global budget from config, per-route overrides through the
// plugin's own `config.rateLimit` (an object replaces the global limit, `false` exempts the route),
// keyed by the token's subject when the request is authenticated and by client IP otherwise. Requests
// that match no route (404, 405) spend the global budget as well.
// With REDIS_URL the counters live in Redis (the shared connection of core/redis.ts, which also
// reports outages and readiness) and every instance shares them; a Redis that is down or slow never
// hangs or crashes a request: the limiter fails open (warning + metric) or, configured so, closed (503).
//
// Client IP: `request.ip`, the socket's peer unless TRUST_PROXY names the proxies in front of Keel,
// whose X-Forwarded-For is then believed (never from anyone else: that header is client-controlled).

import { createRequire } from 'node:module'
import fp from 'fastify-plugin'
import fastifyRateLimit, { type RateLimitPluginOptions } from '@fastify/rate-limit'
import type { Redis } from 'ioredis'
import { Counter } from 'prom-client'
import type { FastifyRequest } from 'fastify'
import type { Config } from '../core/config.ts'
import { AppError, ErrorCode } from '../core/errors.ts'
import type { AuthUser } from '../auth/access-token.ts'

export interface RateLimitPluginConfig {
  rateLimit: Config['rateLimit']
}

/** What @fastify/rate-limit expects of a store (its public type omits the window and max arguments). */
interface CounterStore {
  incr: (key: string, cb: (err: Error | null, result?: { current: number, ttl: number }) => void, timeWindow: number, max: number) => void
  child: (routeOptions: unknown) => CounterStore
}
type RedisStoreCtor = new (continueExceeding: boolean, exponentialBackoff: boolean, redis: Redis, prefix: string) => CounterStore
// The plugin's own Redis store (fixed window: INCR + PEXPIRE in one script); not exported with types.
const RedisStore = createRequire(import.meta.url)('@fastify/rate-limit/store/RedisStore.js') as RedisStoreCtor

const KEY_PREFIX = 'keel:rate-limit:'
// In-memory store: counters for this many clients; the least recently seen are dropped beyond it.
const LOCAL_CLIENTS = 10_000
// Fail-closed answer: long enough for a Redis restart, short enough that clients come back soon.
const FAIL_CLOSED_RETRY_AFTER_S = 5

/** The plugin's store class over `inner`, turning each store error into what `onError` returns. */
function guardedRedisStore (inner: CounterStore, onError: (err: Error) => Error): RateLimitPluginOptions['store'] {
  class GuardedRedisStore implements CounterStore {
    readonly #inner: CounterStore
    // The plugin constructs the store with its own options (ignored); child stores wrap their inner child.
    constructor (_pluginOptions?: unknown, wrapped: CounterStore = inner) {
      this.#inner = wrapped
    }

    incr (key: string, cb: Parameters<CounterStore['incr']>[1], timeWindow: number, limit: number): void {
      this.#inner.incr(key, (err, result) => { if (err !== null) cb(onError(err)); else cb(null, result) }, timeWindow, limit)
    }

    child (routeOptions: unknown): CounterStore {
      return new GuardedRedisStore(undefined, this.#inner.child(routeOptions))
    }
  }
  return GuardedRedisStore as unknown as RateLimitPluginOptions['store']
}

/** Authenticated clients by subject (their budget follows them across addresses), others by IP. */
function rateLimitKey (request: FastifyRequest): string {
  const user = request.user as AuthUser | null | undefined
  return user != null ? `sub:${user.sub}` : `ip:${request.ip}`
}

export default fp<RateLimitPluginConfig>(async function rateLimit (fastify, options) {
  const { max, windowMs, failOpen } = options.rateLimit
  const rejections = new Counter({
    name: 'rate_limit_rejections_total',
    help: 'Requests answered 429 by the rate limiter, by route',
    labelNames: ['route'] as const,
    registers: [fastify.metrics]
  })

  const settings: RateLimitPluginOptions = {
    global: true,
    max,
    timeWindow: windowMs,
    // preParsing: after the auth hook (onRequest) has set request.user, before the body is read, so a
    // flood of large or invalid bodies is limited too.
    hook: 'preParsing',
    keyGenerator: rateLimitKey,
    // The standard names (RateLimit-Limit/-Remaining/-Reset); without it the plugin sends x-ratelimit-*.
    enableDraftSpec: true,
    cache: LOCAL_CLIENTS,
    errorResponseBuilder: (_request, context) =>
      new AppError(ErrorCode.RATE_LIMITED, `rate limit of ${context.max} requests exceeded; retry in ${context.after}`),
    onExceeded: (request) => { rejections.inc({ route: request.routeOptions.url ?? '(unmatched)' }) }
  }

  if (fastify.redis !== undefined) {
    const storeErrors = new Counter({
      name: 'rate_limit_store_errors_total',
      help: 'Rate-limit checks that could not reach Redis (answered per RATE_LIMIT_FAIL)',
      registers: [fastify.metrics]
    })
    const outage = fastify.redis.use('rate-limit', failOpen ? 'requests pass unlimited (RATE_LIMIT_FAIL=open)' : 'requests get 503 (RATE_LIMIT_FAIL=closed)')
    /** Every failed check counts; with fail-closed it becomes the 503 the client sees. */
    const onStoreError = (err: Error): Error => {
      storeErrors.inc()
      outage.failed(err, 'check')
      return failOpen
        ? err
        : new AppError(ErrorCode.SERVICE_UNAVAILABLE, 'rate limiting is unavailable; retry shortly', { headers: { 'retry-after': String(FAIL_CLOSED_RETRY_AFTER_S) } })
    }
    settings.store = guardedRedisStore(new RedisStore(false, false, fastify.redis.client, KEY_PREFIX), onStoreError)
    // Fail open = the plugin lets the request through on a store error; fail closed = it throws our 503.
    settings.skipOnError = failOpen
  }

  await fastify.register(fastifyRateLimit, settings)
  // Unknown paths and methods spend the client's global budget too: no route's hook counts them.
  const limitUnmatched = fastify.rateLimit()
  fastify.addUnmatchedRequestCheck(async (request, reply) => { await limitUnmatched.call(fastify, request, reply) })
}, { name: 'keel-rate-limit', dependencies: ['keel-errors', 'keel-metrics', 'keel-redis'] })
