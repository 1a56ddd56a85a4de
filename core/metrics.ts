// The Prometheus registry every plugin adds its metrics to (`fastify.metrics`), and the HTTP
// request-duration histogram by method, route and status. One registry per app instance, so two
// apps in one process (tests) never share counters.

import fp from 'fastify-plugin'
import { Registry, collectDefaultMetrics } from 'prom-client'
import { PreparedHistogram, type HistogramSeries } from './prepared-histogram.ts'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Registry
  }
}

const UNMATCHED = '(unmatched)'

export default fp(async function metrics (fastify) {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  // Observed on every response: each method × route × status series is prepared once and kept here,
  // so a request costs one map lookup instead of prom-client's per-observation label hashing.
  const duration = new PreparedHistogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration by method, route and status',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry]
  })
  // Route → method → status → series. Nested maps rather than one string key: the route and method
  // strings are the same objects on every request (hashed once), where a concatenated key would be
  // built and hashed anew each time. Bounded by routes × methods × statuses: the route pattern, never
  // the raw URL (ids in paths would explode the label cardinality).
  const series = new Map<string, Map<string, Map<number, HistogramSeries>>>()
  function seriesFor (method: string, route: string, status: number): HistogramSeries {
    let byMethod = series.get(route)
    if (byMethod === undefined) series.set(route, byMethod = new Map())
    let byStatus = byMethod.get(method)
    if (byStatus === undefined) byMethod.set(method, byStatus = new Map())
    let found = byStatus.get(status)
    if (found === undefined) byStatus.set(status, found = duration.series({ method, route, status_code: status }))
    return found
  }

  fastify.decorate('metrics', registry)
  // A callback hook, not an async one: an async hook costs every request a promise and a microtask turn.
  fastify.addHook('onResponse', function observeDuration (request, reply, done) {
    seriesFor(request.method, request.routeOptions.url ?? UNMATCHED, reply.statusCode).observe(reply.elapsedTime / 1000)
    done()
  })
}, { name: 'keel-metrics' })
