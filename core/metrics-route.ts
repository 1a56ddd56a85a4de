// Prometheus scrape endpoint over the app's registry (core/metrics.ts).

import type { FastifyPluginAsync } from 'fastify'

const metricsRoutes: FastifyPluginAsync = async (fastify) => {
  fastify.get('/metrics', {
    // Operational, not part of the API: hidden from /docs; never shed, since overload is when it matters.
    schema: { hide: true },
    config: { auth: false, rateLimit: false, cache: { noStore: true }, loadShedding: false }
  }, async (_request, reply) => {
    return reply.type(fastify.metrics.contentType).send(await fastify.metrics.metrics())
  })
}

export default metricsRoutes
