// Decorates `fastify.items`: the example resource's SQLite store (resources/items/store.ts), opened at
// start-up from DATABASE_FILE and closed with the app.

import fp from 'fastify-plugin'
import { ItemsStore } from './store.ts'

declare module 'fastify' {
  interface FastifyInstance {
    items: ItemsStore
  }
}

export interface ItemsStorePluginOptions {
  /** A file path (its directory is created) or `:memory:`. */
  databaseFile: string
}

export default fp<ItemsStorePluginOptions>(async function itemsStore (fastify, options) {
  const store = new ItemsStore(options.databaseFile)
  fastify.decorate('items', store)
  fastify.addHook('onClose', async () => { store.close() })
  fastify.log.debug({ databaseFile: options.databaseFile }, 'items store opened')
}, { name: 'keel-items-store' })
