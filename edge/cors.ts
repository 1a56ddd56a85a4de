// Cross-origin access for browsers (CORS) on @fastify/cors: an exact-origin allowlist from CORS_ORIGINS,
// credentials included. An unlisted origin gets no CORS header at all, and `*` is never sent.
// Preflights are answered in onRequest, before auth: a preflight never needs (or sees) a token.

import fp from 'fastify-plugin'
import fastifyCors from '@fastify/cors'

export interface CorsOptions {
  /** Exact origins (`scheme://host[:port]`) allowed to call the API with credentials. */
  origins: readonly string[]
}

// A browser reuses a preflight answer this long per origin, URL, method and header set. 10 minutes
// takes the extra round trip off nearly every call, and an origin removed from the allowlist stops
// working within 10 minutes (browsers cap the value anyway: Chromium at 2 h, Firefox at 24 h).
export const PREFLIGHT_MAX_AGE_S = 600

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']
// What browser code sends to Keel: bearer tokens, JSON (possibly compressed) bodies, conditional
// requests, request ids, and SSE's reconnect header. A fixed list, never a reflection of the request.
const ALLOWED_HEADERS = [
  'Authorization', 'Content-Type', 'Content-Encoding', 'If-Match', 'If-None-Match', 'If-Modified-Since',
  'X-Request-Id', 'Last-Event-ID'
]
// Response headers browser code may read beyond the CORS-safelisted ones (Content-Type, Cache-Control…).
const EXPOSED_HEADERS = [
  'ETag', 'Location', 'Retry-After', 'WWW-Authenticate', 'X-Request-Id',
  'RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset', 'RateLimit-Policy'
]

export default fp(async function cors (fastify, options: CorsOptions) {
  // No allowed origin = no cross-origin access: no hook at all, nothing to pay per request.
  if (options.origins.length === 0) return
  const allowed = new Set(options.origins)
  await fastify.register(fastifyCors, {
    // The request's own origin when listed (the exact string, so never `*` with credentials), else
    // `false`, which makes @fastify/cors add no CORS header and treat an OPTIONS as an ordinary
    // request (no route → 404). A request without Origin (not a browser's cross-origin call) costs one
    // lookup. Because the answer depends on Origin, every response carries `Vary: Origin`, so shared
    // caches never hand one origin's answer to another.
    origin: (origin, callback) => { callback(null, origin !== undefined && allowed.has(origin) ? origin : false) },
    credentials: true,
    // Joined once here: given arrays, the plugin joins them again on every response.
    methods: METHODS.join(', '),
    allowedHeaders: ALLOWED_HEADERS.join(', '),
    exposedHeaders: EXPOSED_HEADERS.join(', '),
    maxAge: PREFLIGHT_MAX_AGE_S,
    // A listed origin's OPTIONS without Access-Control-Request-Method is answered like a preflight
    // (204) rather than with the plugin's text/plain 400: every error here is problem+json.
    strictPreflight: false
  })
}, { name: 'keel-cors' })
