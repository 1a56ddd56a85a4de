// The per-route knobs that Keel's edge plugins honour, in one place: a route author reads this
// file to learn what `config: { ... }` can say. Each plugin resolves its key once, at route
// registration (onRoute), never per request.

/** `false` = public; `'optional'` = verify a token when sent; `{ scopes }` = token with every scope. */
export type RouteAuth = false | 'optional' | { scopes: string[] }

/** Cache-Control for successful GET/HEAD responses. */
export interface RouteCache {
  noStore?: boolean
  /** `private` for per-user responses; defaults to public when a max-age is given. */
  private?: boolean
  maxAge?: number
  sMaxAge?: number
  staleWhileRevalidate?: number
  /** Compute a weak ETag from the body and answer If-None-Match (for computed responses). */
  etag?: boolean
}

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: RouteAuth
    cache?: RouteCache
  }
}
