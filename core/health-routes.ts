// Liveness and readiness probes. Live answers while the process runs; ready is 503 while shutting
// down or while a required dependency check fails, and lists every component's state.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'

const Check = Type.Object({ status: Type.Union([Type.Literal('ok'), Type.Literal('degraded'), Type.Literal('fail')]), detail: Type.Optional(Type.String()) })
const Ready = Type.Object({ status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]), checks: Type.Record(Type.String(), Check) })

const healthRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  // Probes are never shed under load: a shed liveness probe gets a busy process killed, and readiness
  // must be able to say why the instance is not ready.
  const probe = { auth: false, rateLimit: false, cache: { noStore: true }, loadShedding: false } as const

  fastify.get('/health/live', {
    config: probe,
    schema: { tags: ['health'], summary: 'Liveness', response: { 200: Type.Object({ status: Type.Literal('ok') }) } }
  }, async () => ({ status: 'ok' as const }))

  fastify.get('/health/ready', {
    config: probe,
    schema: { tags: ['health'], summary: 'Readiness with per-component checks', response: { 200: Ready, 503: Ready } }
  }, async (_request, reply) => {
    const { ready, checks } = await fastify.health.evaluate()
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ok' : 'unavailable', checks })
  })
}

export default healthRoutes
