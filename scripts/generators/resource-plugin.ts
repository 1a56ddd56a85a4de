// Templates of the files that tie a resource together: index.ts (the one plugin app.ts registers),
// store-plugin.ts (the decorator, its migrations applied first), and — with a real-time side —
// rooms.ts (the room's policy) and feed.ts (the domain event and its forwarding to the room).

import { commentBlock } from './comment.ts'
import { capitalize, withArticle } from './names.ts'
import { identifiers, type ResourceModel } from './resource-model.ts'

export function indexFile (m: ResourceModel): string {
  const id = identifiers(m)
  const dependencies = [`${m.pluginPrefix}-database`, ...(m.realtime ? [`${m.pluginPrefix}-realtime`, `${m.pluginPrefix}-domain-events`] : []), `${m.pluginPrefix}-auth`]
  const realtimeImports = m.realtime ? `\nimport { ${id.roomPolicy} } from './rooms.ts'\nimport { ${id.feed} } from './feed.ts'` : ''
  const realtimeLines = m.realtime ? `\n  fastify.realtime.addRoomPolicy(${id.roomPolicy})\n  ${id.feed}(fastify.realtime)` : ''
  const what = m.realtime ? 'its store, its routes, its room and its real-time feed' : 'its store and its routes'
  return `${commentBlock(`The ${m.names.prose} resource, ${id.path}, in one plugin: ${what}. Removing the resource is removing this folder, its tests and its line in app.ts.`)}

import fp from 'fastify-plugin'
import ${m.names.camel}Store from './store-plugin.ts'
import ${m.names.camel}Routes from './routes.ts'${realtimeImports}

export default fp(async function ${m.names.camel} (fastify) {
  await fastify.register(${m.names.camel}Store)
  await fastify.register(${m.names.camel}Routes)${realtimeLines}
}, { name: '${id.plugin}', dependencies: [${dependencies.map((d) => `'${d}'`).join(', ')}] })
`
}

export function storePluginFile (m: ResourceModel): string {
  const id = identifiers(m)
  return `${commentBlock(`Decorates \`fastify.${id.decorator}\`: the ${m.names.prose} store on the app's database (core/database.ts) — its migrations (migrations/<kind>/, history in table ${id.table}_migration) applied first, then the adapter for that kind: SQLite (sqlite-store.ts) or PostgreSQL (postgres-store.ts). Routes see only the contract.`)}

import fp from 'fastify-plugin'
import type { FastifyBaseLogger } from 'fastify'
import type { Database } from '../../core/database.ts'
import { applyMigrations } from '../../core/migrations.ts'
import type { ${id.store} } from './store.ts'
import { ${id.sqliteStore} } from './sqlite-store.ts'
import { ${id.postgresStore} } from './postgres-store.ts'

declare module 'fastify' {
  interface FastifyInstance {
    ${id.decorator}: ${id.store}
  }
}

export const ${id.migrationsConst} = \`\${import.meta.dirname}/migrations\`

/** Brings the database's ${m.names.prose} schema up to date, then opens the store on it. */
export async function ${id.openStore} (database: Database, log: FastifyBaseLogger): Promise<${id.store}> {
  await applyMigrations(database, ${id.migrationsConst}, '${id.table}', log)
  if (database.kind === 'sqlite') return new ${id.sqliteStore}(database.sqlite)
  database.postgres.use('${m.one.prose} requests answer 503 until it is back')
  return new ${id.postgresStore}(database.postgres)
}

export default fp(async function ${m.names.camel}Store (fastify) {
  fastify.decorate('${id.decorator}', await ${id.openStore}(fastify.database, fastify.log))
}, { name: '${id.storePlugin}', dependencies: ['${m.pluginPrefix}-database'] })
`
}

export function roomsFile (m: ResourceModel): string {
  const id = identifiers(m)
  return `${commentBlock(`The ${m.names.prose} resource's room: \`${id.room}\`, its change feed. Any authenticated user may watch it; only the server writes (feed.ts). A client that falls behind misses notifications instead of being disconnected: it sees the gap in \`seq\` and refetches the list.`)}

import { anyUser, type DescribedRoomPolicy } from '../../realtime/protocol/rooms.ts'

export const ${id.roomConst} = '${id.room}'

export const ${id.roomPolicy}: DescribedRoomPolicy = {
  match: ${id.roomConst},
  description: '\`${id.room}\`: the ${m.names.prose} resource\\'s change feed; any authenticated user may watch it',
  canJoin: anyUser,
  clientPublish: false,
  presence: false,
  slowConsumer: 'drop'
}
`
}

export function feedFile (m: ResourceModel): string {
  const id = identifiers(m)
  return `${commentBlock(`What the ${m.names.prose} resource announces, and where it goes: every change is the domain event \`${id.changeEvent}\` {id, op} (declared here, emitted by routes.ts), and the real-time layer publishes it to room \`${id.room}\` (rooms.ts) for WebSocket and SSE watchers.`)}

import { Type, type Static } from '@sinclair/typebox'
import type { Realtime } from '../../realtime/plugin.ts'
import { ${id.roomConst} } from './rooms.ts'

export const ${id.change} = Type.Object({
  id: Type.String({ description: 'id of the ${m.one.prose}' }),
  op: Type.Union([Type.Literal('created'), Type.Literal('updated'), Type.Literal('deleted')])
}, { description: '${capitalize(withArticle(m.one.prose))} was created, updated or deleted: refetch it (or the list) over HTTP.' })
export type ${id.change} = Static<typeof ${id.change}>

declare module '../../core/domain-events.ts' {
  interface DomainEventMap {
    '${id.changeEvent}': ${id.change}
  }
}

export function ${id.feed} (realtime: Realtime): void {
  realtime.feed('${id.changeEvent}', ${id.change}, ${id.roomConst})
}
`
}
