// Prometheus scrape endpoint over the app's registry (plugins/metrics.ts).

import type { FastifyPluginAsync } from 'fastify'

const metricsRoutes: FastifyPluginAsync = async (fastify) => {
  fastify.get('/metrics', {
    config: { auth: false, rateLimit: false, cache: { noStore: true } }
  }, async (_request, reply) => {
    return reply.type(fastify.metrics.contentType).send(await fastify.metrics.metrics())
  })
}

export default metricsRoutes
