// The per-route knobs that Keel's edge plugins honour, in one place: a route author reads this
// file to learn what `config: { ... }` can say. Each plugin resolves its key once, at route
// registration (onRoute), never per request.

import type { FastifyReply, FastifyRequest } from 'fastify'

/** `false` = public; `'optional'` = verify a token when sent; `{ scopes }` = token with every scope. */
export type RouteAuth = false | 'optional' | { scopes: string[] }

/**
 * Caching policy, honoured by edge/caching.ts. The Cache-Control fields apply to successful (2xx and
 * 304) GET/HEAD responses; times are in seconds.
 */
export interface RouteCache {
  /** `no-store`; excludes every other Cache-Control field. */
  noStore?: boolean
  /** `no-cache`: caches may store the response but must revalidate it (cheap with an ETag) before each reuse. */
  noCache?: boolean
  /** `private` for per-user responses (no `s-maxage` then); otherwise `public`. */
  private?: boolean
  maxAge?: number
  /** Freshness for shared caches (CDNs) only. */
  sMaxAge?: number
  staleWhileRevalidate?: number
  /**
   * Who makes the ETag. `'computed'`: the plugin hashes the serialized 200 body into a weak tag and
   * answers If-None-Match / If-Modified-Since with 304. `'resource'`: the handler sets a strong tag from
   * the resource's version and evaluates preconditions itself (edge/conditional.ts); the plugin keeps
   * that tag distinct per content-coding. Declare it on every route that sets its own ETag, writes included.
   */
  etag?: 'computed' | 'resource'
}

/**
 * Write preconditions (If-Match, RFC 9110 §13.1.1) on a route that sets its resource's ETag
 * (`cache: { etag: 'resource' }`) and evaluates them against it (edge/conditional.ts). `'optional'`:
 * honoured when sent, 412 when one does not hold. `'required'`: a write without If-Match is answered
 * 428 by edge/caching.ts before the handler runs, so the handler only ever sees conditional writes.
 * The API document lists the If-Match parameter, 412 and 428 from this same declaration.
 */
export type RoutePreconditions = 'required' | 'optional'

/** An onSend hook in callback style, as plugins add to routes. */
export type OnSendHook = (this: unknown, request: FastifyRequest, reply: FastifyReply, payload: unknown,
  done: (err?: Error | null, payload?: unknown) => void) => void

/** A route's hook option (one function, a list, or nothing) as a new list, for plugins adding their own in onRoute. */
export function routeHooks<T> (hooks: T | T[] | undefined): T[] {
  return hooks === undefined ? [] : Array.isArray(hooks) ? [...hooks] : [hooks]
}

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: RouteAuth
    cache?: RouteCache
    /** Writes only: see RoutePreconditions. */
    preconditions?: RoutePreconditions
    /** `false` = never shed under load (probes, the metrics scrape): see edge/load-shedding.ts. */
    loadShedding?: false
  }
}
