// The example resource, /api/v1/items, in one plugin: its store (`fastify.items`, on the app's
// database), its routes, its room and its real-time feed. Removing the resource is removing this
// folder and its line in app.ts.

import fp from 'fastify-plugin'
import itemsStore from './store-plugin.ts'
import itemsRoutes from './routes.ts'
import { itemsRoomPolicy } from './rooms.ts'
import { feedItemChanges } from './feed.ts'

export default fp(async function items (fastify) {
  await fastify.register(itemsStore)
  await fastify.register(itemsRoutes)
  fastify.realtime.addRoomPolicy(itemsRoomPolicy)
  feedItemChanges(fastify.realtime)
}, { name: 'keel-items', dependencies: ['keel-database', 'keel-realtime', 'keel-domain-events', 'keel-auth'] })
