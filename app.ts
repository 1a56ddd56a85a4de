// The composition root. `buildApp(config)` creates the server (HTTPS + HTTP/2 with HTTP/1.1 through
// ALPN, or cleartext HTTP/1.1 with TLS=off) and registers, top to bottom, what a request meets:
// request id → edge policies → auth → routes; errors and metrics wrap them all.
// Tests build the app through this same function.

import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { DestinationStream } from 'pino'
import type { Config } from './core/config.ts'
import { loadTlsMaterial, type TlsFiles } from './core/tls.ts'
import { lazyChildLogger } from './core/request-logger.ts'
import { ensureDevCertificate } from './core/dev-cert.ts'
import requestId, { requestIdFor } from './core/request-id.ts'
import errors from './core/error-handler.ts'
import metrics from './core/metrics.ts'
import health from './core/health.ts'
import tlsRotation from './core/tls-rotation.ts'
import connections from './core/connections.ts'
import domainEvents from './core/domain-events-plugin.ts'
import securityHeaders from './edge/security-headers.ts'
import cors from './edge/cors.ts'
import loadShedding from './edge/load-shedding.ts'
import compress from './edge/compress.ts'
import caching from './edge/caching.ts'
import rateLimit from './edge/rate-limit.ts'
import auth from './auth/plugin.ts'
import docs, { DOCS_PREFIX } from './edge/docs.ts'
import realtime from './realtime/plugin.ts'
import webSocketServer, { webSocketServerOptions } from './realtime/transports/ws-server.ts'
import webSocketTransport from './realtime/transports/ws-route.ts'
import sseTransport from './realtime/transports/sse-route.ts'
import upstreams from './outbound/plugin.ts'
import healthRoutes from './core/health-routes.ts'
import metricsRoutes from './core/metrics-route.ts'
import quotesRoutes from './resources/quotes/routes.ts'
import items from './resources/items/index.ts'
import './core/route-config.ts'

export type App = FastifyInstance

export interface BuildOptions {
  /** Where logs go (default stdout). Tests pass a stream to read what was logged. */
  logStream?: DestinationStream
}

/** Strips `access_token` from a logged URL: browsers must send WebSocket/SSE tokens in the query. */
function redactUrl (url: string): string {
  return url.includes('access_token=') ? url.replace(/([?&]access_token=)[^&]*/g, '$1[REDACTED]') : url
}

function loggerOptions (config: Config, stream?: DestinationStream): FastifyServerOptions['logger'] {
  return {
    level: config.logLevel,
    ...(stream === undefined ? {} : { stream }),
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]', 'token', '*.token', 'access_token'],
      censor: '[REDACTED]'
    },
    serializers: {
      req (req: { method: string, url: string, ip?: string, socket?: { remoteAddress?: string } }) {
        return { method: req.method, url: redactUrl(req.url), remoteAddress: req.ip ?? req.socket?.remoteAddress }
      }
    }
  }
}

/**
 * Fastify's own hop count refuses every forwarded address (it cannot check the peer), so a count
 * becomes "trust the nearest N hops": right only where nothing reaches the service but its proxies.
 */
function trustProxyOption (trust: Config['trustProxy']): FastifyServerOptions['trustProxy'] {
  if (typeof trust !== 'number') return trust
  return (_address: string, hop: number) => hop < trust
}

async function resolveTlsFiles (config: Config): Promise<{ files: TlsFiles, generated: boolean }> {
  const { certFile, keyFile, caFile } = config.tls
  if (certFile !== undefined && keyFile !== undefined) return { files: { certFile, keyFile, caFile }, generated: false }
  const dev = await ensureDevCertificate(config.certsDir)
  return { files: { certFile: dev.certFile, keyFile: dev.keyFile, caFile }, generated: dev.generated }
}

export async function buildApp (config: Config, options: BuildOptions = {}): Promise<App> {
  const h = config.http
  const common: FastifyServerOptions = {
    logger: loggerOptions(config, options.logStream),
    // Each request's logger (with its reqId) is made on its first enabled line, not for every request.
    childLoggerFactory: lazyChildLogger as unknown as FastifyServerOptions['childLoggerFactory'],
    genReqId: requestIdFor,
    requestIdHeader: false,
    bodyLimit: h.bodyLimit,
    requestTimeout: h.requestTimeout,
    keepAliveTimeout: h.keepAliveTimeout,
    connectionTimeout: h.connectionTimeout,
    return503OnClosing: true,
    // Off unless TRUST_PROXY names the proxies: X-Forwarded-For is client-controlled.
    trustProxy: trustProxyOption(config.trustProxy),
    ajv: { customOptions: { allErrors: true, removeAdditional: false, coerceTypes: 'array' } }
  }

  let app: App
  let tls: { files: TlsFiles, generated: boolean } | undefined
  if (config.tls.enabled) {
    tls = await resolveTlsFiles(config)
    const material = loadTlsMaterial(tls.files)
    // The raw server is an Http2SecureServer here and an http.Server with TLS=off; nothing above
    // the plugins touches it, so the app is typed as the common FastifyInstance.
    app = Fastify({
      ...common,
      http2: true,
      http2SessionTimeout: h.http2SessionTimeout,
      https: {
        allowHTTP1: true,
        minVersion: 'TLSv1.3',
        cert: material.cert,
        key: material.key,
        ca: material.ca,
        requestCert: config.tls.clientAuth,
        rejectUnauthorized: config.tls.clientAuth,
        settings: { maxConcurrentStreams: h.http2MaxConcurrentStreams }
      }
    } as unknown as FastifyServerOptions) as unknown as App
  } else {
    app = Fastify(common)
  }
  // Fastify sets these on an http.Server only; the HTTP/1.1 side of the HTTP/2 server reads the same fields.
  // Node enforces headers/request timeouts on a sweep every `connectionsCheckingInterval` (30 s by
  // default, read at listen): once a second cuts a slowloris connection within headersTimeout + 1 s.
  Object.assign(app.server, {
    headersTimeout: h.headersTimeout,
    requestTimeout: h.requestTimeout,
    keepAliveTimeout: h.keepAliveTimeout,
    connectionsCheckingInterval: 1000
  })
  if (tls?.generated === true) app.log.info({ certFile: tls.files.certFile }, 'generated a self-signed development certificate (npm run certs regenerates it)')

  const typed = app.withTypeProvider<TypeBoxTypeProvider>()

  // Cross-cutting foundations: ids first so every later log line and error carries one.
  await typed.register(requestId)
  await typed.register(errors)
  await typed.register(metrics)
  await typed.register(health)
  await typed.register(connections)
  await typed.register(domainEvents)
  if (tls !== undefined) await typed.register(tlsRotation, { files: tls.files, watchFiles: config.tls.watchFiles })

  // Edge policies, in the order a request meets them.
  // (security headers → CORS → load shedding → compression → caching → rate limit)
  // Security headers come first so that every response carries them, preflights answered by CORS included.
  await typed.register(securityHeaders, { tls: config.tls.enabled, docsPrefix: DOCS_PREFIX })
  await typed.register(cors, { origins: config.cors.origins })
  await typed.register(loadShedding, config.loadShedding)
  await typed.register(compress, { maxInflatedBytes: h.bodyLimit })
  await typed.register(caching)
  await typed.register(rateLimit, { rateLimit: config.rateLimit, redisUrl: config.redisUrl })

  // API docs (/docs): documents every route registered after it. Public: registered before auth,
  // whose default (a valid token) applies only to routes registered after auth.
  await typed.register(docs)

  // Authentication: verifies tokens and enforces each route's `config.auth`.
  await typed.register(auth, { auth: config.auth, env: config.env, certsDir: config.certsDir })

  // Real-time: the room hub and its API (admission, room policies, feeds), then its transports, /ws and /sse.
  const streamOrigins = { allowedOrigins: config.cors.origins, tls: config.tls.enabled }
  await typed.register(realtime, { ws: config.ws, redisUrl: config.redisUrl })
  await typed.register(webSocketServer, webSocketServerOptions(config.ws))
  await typed.register(webSocketTransport, { ...streamOrigins, ws: config.ws, eventsDir: `${import.meta.dirname}/realtime/protocol/events` })
  await typed.register(sseTransport, { ...streamOrigins, sse: config.sse })

  // Upstream clients.
  await typed.register(upstreams, { upstreams: config.upstreams })

  // Routes.
  await typed.register(healthRoutes)
  await typed.register(metricsRoutes)
  await typed.register(quotesRoutes)

  // Resources: each registers its store, routes, rooms and real-time feed.
  await typed.register(items, { databaseFile: config.databaseFile })

  return app
}
