// Security response headers. helmet (the engine inside @fastify/helmet) computes each header set once at
// start-up, and one onRequest hook copies the set onto every reply, so API, error and 404 responses
// all carry it. API responses get a lean set for JSON (CSP `default-src 'none'; frame-ancestors
// 'none'`); only the docs UI, an HTML page, gets helmet's browser set with a CSP that loads its assets.
// Why not @fastify/helmet's own hooks: they rebuild helmet's middleware on every request, the largest
// single cost of the naive stack (-46 % throughput); the headers never change, so we record them once.

import type { IncomingMessage, ServerResponse } from 'node:http'
import fp from 'fastify-plugin'
import helmet, { type HelmetOptions } from 'helmet'
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction, RouteOptions } from 'fastify'
import { routeHooks } from '../core/route-config.ts'

export interface SecurityHeadersOptions {
  /** The server terminates TLS itself; only then is HSTS sent (behind a TLS proxy, the proxy sends it). */
  tls: boolean
  /** Routes at and under this path serve the docs UI and get its HTML policy. */
  docsPrefix?: string
}

export type HeaderSet = Readonly<Record<string, string>>

/**
 * The headers helmet's middleware sets for `options`, recorded once. Only for static policies: a CSP
 * with per-request values (nonces) cannot be recorded, and none is used here.
 */
export function helmetHeaders (options: HelmetOptions): HeaderSet {
  const headers: Record<string, string> = {}
  const recorder = {
    setHeader (name: string, value: string) { headers[name.toLowerCase()] = value },
    removeHeader (name: string) { delete headers[name.toLowerCase()] }
  }
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, (err) => { if (err !== undefined) throw err })
  return Object.freeze(headers)
}

// One year, subdomains included (helmet's default); no `preload`: that is a commitment to browser
// vendors each deployment must make for itself.
const HSTS = { maxAge: 31_536_000, includeSubDomains: true }

/** For every API response: what protects a JSON body, nothing that only steers HTML documents. */
export function apiHeaders (tls: boolean): HeaderSet {
  return helmetHeaders({
    // Nothing may load or frame a JSON response, even when a browser renders one as a page.
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    // Other sites cannot pull responses into their pages as images or scripts (no-cors); CORS calls
    // from allowed origins are unaffected. X-Content-Type-Options: nosniff stays on (helmet's default).
    crossOriginResourcePolicy: { policy: 'same-origin' },
    strictTransportSecurity: tls ? HSTS : false,
    // These steer HTML documents only (window openers, referrers, legacy framing, DNS prefetch, IE
    // downloads, the old XSS auditor, Flash policies): a JSON response would carry their bytes for nothing.
    crossOriginOpenerPolicy: false,
    originAgentCluster: false,
    referrerPolicy: false,
    xDnsPrefetchControl: false,
    xDownloadOptions: false,
    xFrameOptions: false,
    xPermittedCrossDomainPolicies: false,
    xXssProtection: false
  })
}

/** For the docs UI: helmet's full browser set, with a CSP that allows the page's own scripts and styles. */
export function docsHeaders (tls: boolean): HeaderSet {
  return helmetHeaders({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        baseUri: ["'self'"],
        connectSrc: ["'self'"],
        fontSrc: ["'self'", 'data:'],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        // Swagger UI's logo and icons are data: URIs.
        imgSrc: ["'self'", 'data:'],
        objectSrc: ["'none'"],
        // Every script is a file served under the docs prefix; none is inline.
        scriptSrc: ["'self'"],
        scriptSrcAttr: ["'none'"],
        // Swagger UI (React) sets style attributes at run time.
        styleSrc: ["'self'", "'unsafe-inline'"]
      }
    },
    strictTransportSecurity: tls ? HSTS : false,
    xFrameOptions: { action: 'deny' }
  })
}

export default fp(async function securityHeaders (fastify, options: SecurityHeadersOptions) {
  const api = Object.entries(apiHeaders(options.tls))
  // Instance-level: runs for every route and for the not-found handler, before any hook that may fail.
  // The entries are listed once: `reply.headers(object)` would list the object's keys on every request.
  fastify.addHook('onRequest', function setSecurityHeaders (_request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
    for (const [name, value] of api) reply.header(name, value)
    done()
  })

  const prefix = options.docsPrefix
  if (prefix === undefined) return
  const docs = docsHeaders(options.tls)
  function setDocsHeaders (_request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    reply.headers(docs)
    done()
  }
  // Resolved once per route: docs routes get a route hook that runs after the instance hook and
  // replaces the API set (same names) with the browser set.
  fastify.addHook('onRoute', (route: RouteOptions) => {
    if (route.url !== prefix && !route.url.startsWith(`${prefix}/`)) return
    route.onRequest = [...routeHooks(route.onRequest), setDocsHeaders] as RouteOptions['onRequest']
  })
}, { name: 'keel-security-headers' })
