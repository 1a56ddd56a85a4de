// Decorates `fastify.items`: the example resource's store on the app's database (core/database.ts) —
// its migrations (migrations/<kind>/) applied first, then the adapter for that kind: SQLite
// (sqlite-store.ts) or PostgreSQL (postgres-store.ts). Routes see only the ItemsStore contract.

import fp from 'fastify-plugin'
import type { FastifyBaseLogger } from 'fastify'
import type { Database } from '../../core/database.ts'
import { applyMigrations } from '../../core/migrations.ts'
import type { ItemsStore } from './store.ts'
import { SqliteItemsStore } from './sqlite-store.ts'
import { PostgresItemsStore } from './postgres-store.ts'

declare module 'fastify' {
  interface FastifyInstance {
    items: ItemsStore
  }
}

export const ITEMS_MIGRATIONS = `${import.meta.dirname}/migrations`

/** Brings the database's items schema up to date, then opens the store on it. */
export async function openItemsStore (database: Database, log: FastifyBaseLogger): Promise<ItemsStore> {
  await applyMigrations(database, ITEMS_MIGRATIONS, 'items', log)
  if (database.kind === 'sqlite') return new SqliteItemsStore(database.sqlite)
  database.postgres.use('item requests answer 503 until it is back')
  return new PostgresItemsStore(database.postgres)
}

export default fp(async function itemsStore (fastify) {
  fastify.decorate('items', await openItemsStore(fastify.database, fastify.log))
}, { name: 'keel-items-store', dependencies: ['keel-database'] })
