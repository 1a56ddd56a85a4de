// Decorates `fastify.domainEvents`: the app-wide bus between producers (routes) and real-time consumers.

import fp from 'fastify-plugin'
import { createDomainEvents, type DomainEvents } from './domain-events.ts'

declare module 'fastify' {
  interface FastifyInstance {
    domainEvents: DomainEvents
  }
}

export default fp(async function domainEvents (fastify) {
  fastify.decorate('domainEvents', createDomainEvents((err, event) => fastify.log.error({ err, event }, 'domain event listener failed')))
}, { name: 'keel-domain-events' })
