// The composition root. `buildApp(config)` creates the server (core/server-options.ts: HTTPS +
// HTTP/2 with HTTP/1.1 through ALPN, or cleartext HTTP/1.1 with TLS=off) and registers, top to
// bottom, what a request meets: request id → edge policies → auth → routes; errors and metrics wrap them all.
// Tests build the app through this same function.

import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Config } from './core/config.ts'
import { createServer, type CreateServerOptions } from './core/server-options.ts'
import requestId from './core/request-id.ts'
import errors from './core/error-handler.ts'
import validation from './core/validation.ts'
import requestBody from './core/request-body.ts'
import metrics from './core/metrics.ts'
import metricsListener from './core/metrics-listener.ts'
import health from './core/health.ts'
import redis from './core/redis.ts'
import database from './core/database.ts'
import tlsRotation from './core/tls-rotation.ts'
import connectionLimits from './core/connection-limits.ts'
import connections from './core/connections.ts'
import domainEvents from './core/domain-events-plugin.ts'
import securityHeaders, { apiHeaders } from './edge/security-headers.ts'
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
import httpEvents from './realtime/transports/http-events.ts'
import asyncApiDocs from './realtime/asyncapi.ts'
import upstreams from './outbound/plugin.ts'
import healthRoutes from './core/health-routes.ts'
import quotesRoutes from './resources/quotes/routes.ts'
import items from './resources/items/index.ts'
import './core/route-config.ts'

export type App = FastifyInstance

/** How the app is built beyond its configuration (where logs go). */
export type BuildOptions = CreateServerOptions

export async function buildApp (config: Config, options: BuildOptions = {}): Promise<App> {
  const h = config.http
  const { server: app, tlsFiles } = await createServer(config, { errorHeaders: apiHeaders(config.tls.enabled), ...options })

  const typed = app.withTypeProvider<TypeBoxTypeProvider>()

  // Cross-cutting foundations: ids first so every later log line and error carries one.
  await typed.register(requestId)
  await typed.register(errors)
  // One validation policy (core/validation.ts) and one body policy (core/request-body.ts) for every
  // route: registered before any plugin that adds routes, so that their route rules reach them all.
  await typed.register(validation)
  await typed.register(requestBody)
  await typed.register(metrics)
  await typed.register(health)
  // /metrics on a listener of its own (METRICS_HOST:METRICS_PORT), opened when the app listens; not on the API port.
  await typed.register(metricsListener, config.metrics)
  await typed.register(redis, { url: config.redisUrl })
  await typed.register(database, config.database)
  await typed.register(connectionLimits, { maxConnections: h.maxConnections, maxConnectionsPerIp: h.maxConnectionsPerIp })
  await typed.register(connections)
  await typed.register(domainEvents)
  if (tlsFiles !== undefined) await typed.register(tlsRotation, { files: tlsFiles, watchFiles: config.tls.watchFiles })

  // Edge policies, in the order a request meets them.
  // (security headers → CORS → load shedding → compression → caching → rate limit)
  // Security headers come first so that every response carries them, preflights answered by CORS included.
  await typed.register(securityHeaders, { tls: config.tls.enabled, docsPrefix: DOCS_PREFIX })
  await typed.register(cors, { origins: config.cors.origins })
  await typed.register(loadShedding, config.loadShedding)
  await typed.register(compress, { maxInflatedBytes: h.bodyLimit })
  await typed.register(caching)
  await typed.register(rateLimit, { rateLimit: config.rateLimit })

  // API docs (/docs): documents every route registered after it. Public: registered before auth,
  // whose default (a valid token) applies only to routes registered after auth.
  await typed.register(docs)

  // Authentication: verifies tokens and enforces each route's `config.auth`.
  await typed.register(auth, { auth: config.auth, env: config.env, certsDir: config.certsDir })

  // Real-time: the room hub and its API (admission, room policies, feeds), then its transports, /ws and
  // /sse, and POST /events, the same events over HTTP for a client that has only an SSE stream.
  const streamOrigins = { allowedOrigins: config.cors.origins, tls: config.tls.enabled }
  await typed.register(realtime, { ws: config.ws })
  await typed.register(webSocketServer, webSocketServerOptions(config.ws))
  await typed.register(webSocketTransport, { ...streamOrigins, ws: config.ws, eventsDir: `${import.meta.dirname}/realtime/protocol/events` })
  await typed.register(sseTransport, { ...streamOrigins, sse: config.sse })
  // The same event definitions as /ws, as that transport loaded them.
  await typed.register(httpEvents, { ws: config.ws })
  // Their AsyncAPI document (/docs/asyncapi.json), from the events, pushes, feeds and room policies loaded.
  await typed.register(asyncApiDocs, { tls: config.tls.enabled })

  // Upstream clients.
  await typed.register(upstreams, { policy: config.upstreams.policy })

  // Routes.
  await typed.register(healthRoutes)
  await typed.register(quotesRoutes, { baseUrl: config.upstreams.quotesUrl })

  // Resources: each registers its store, routes, rooms and real-time feed.
  await typed.register(items)

  return app
}
