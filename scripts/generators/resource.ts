// `new resource <name>`: checks the name against everything it would collide with (folder, decorator,
// app.ts binding, path, room, event, tables), builds the model, and plans the resource's folder, its
// tests and its registration in app.ts.

import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { DEFAULT_FIELDS, parseFields } from './fields.ts'
import { GeneratorError, emptyPlan, type Plan } from './plan.ts'
import { KEBAB_NAME, RESERVED_IDENTIFIERS, SQL_RESERVED, nameForms, singularName } from './names.ts'
import { appBindings, decoratorsTaken, pluginPrefix, registerResource, sourceMentions, tablesTaken } from './project.ts'
import { identifiers, type ResourceModel } from './resource-model.ts'
import { migrationFile, postgresStoreFile, sqliteStoreFile, storeFile } from './resource-store.ts'
import { routesFile } from './resource-routes.ts'
import { feedFile, indexFile, roomsFile, storePluginFile } from './resource-plugin.ts'
import { postgresTestFile, realtimeTestFile, routesTestFile, storeTestFile } from './resource-tests.ts'

export interface ResourceOptions {
  name: string
  fields?: string
  scopePrefix?: string
  singular?: string
  realtime: boolean
}

// Type names the templates already use in the files they write: a record type may not be one of them.
const TEMPLATE_TYPES = new Set([
  'Type', 'Static', 'FastifyReply', 'FastifyInstance', 'FastifyBaseLogger', 'ListQuery', 'RecordParams', 'NotModified',
  'NoContent', 'Routes', 'WritePolicy', 'Realtime', 'RoomPolicy', 'AppError', 'ErrorCode', 'Kysely', 'DatabaseSync',
  'StatementSync', 'PostgresDatabase', 'Database', 'DatabaseConfig', 'Record', 'Promise', 'Date', 'Buffer', 'Array',
  'Map', 'Set', 'Error', 'Number', 'String', 'Boolean', 'Object', 'Function', 'Symbol', 'Test'
])
const SCOPE_PREFIX = /^[a-z][a-z0-9._-]{0,63}$/
const MAX_NAME = 40

function singularOf (name: string, given: string | undefined): string {
  if (given !== undefined) {
    if (!KEBAB_NAME.test(given) || given === name) throw new GeneratorError(`--singular "${given}" must be a kebab-case name other than "${name}"`)
    return given
  }
  const singular = singularName(name)
  if (singular === undefined) throw new GeneratorError(`"${name}" does not look plural: name the collection (notes, not note), or give --singular`)
  return singular
}

/** The model, once the name collides with nothing the project already has. */
export function resourceModel (root: string, options: ResourceOptions): ResourceModel {
  const { name } = options
  const names = nameForms(name)
  if (existsSync(join(root, 'resources', name))) throw new GeneratorError(`refusing: resources/${name} already exists; nothing was changed`)
  if (name.length > MAX_NAME) throw new GeneratorError(`"${name}" is longer than ${MAX_NAME} characters`)
  const one = nameForms(singularOf(name, options.singular))
  const scope = options.scopePrefix ?? name
  if (!SCOPE_PREFIX.test(scope)) throw new GeneratorError(`--scope-prefix "${scope}" must be lowercase letters, digits, ".", "_" or "-"`)
  const model: ResourceModel = {
    names, one, scope, realtime: options.realtime, pluginPrefix: pluginPrefix(root), fields: parseFields(options.fields ?? DEFAULT_FIELDS)
  }
  checkCollisions(root, model)
  return model
}

function checkCollisions (root: string, m: ResourceModel): void {
  const id = identifiers(m)
  const refuse = (why: string): never => { throw new GeneratorError(`refusing "${m.names.kebab}": ${why}; nothing was changed`) }
  if (RESERVED_IDENTIFIERS.has(m.names.camel) || SQL_RESERVED.has(m.names.snake)) refuse('it is a reserved word in TypeScript or SQL')
  if (TEMPLATE_TYPES.has(id.record)) refuse(`its record type ${id.record} would shadow a name the generated code uses`)
  if (/_migration(?:_lock)?$/.test(m.names.snake)) refuse('a table with that name would look like a migration history')
  if (decoratorsTaken(root).has(id.decorator)) refuse(`fastify.${id.decorator} is already taken`)
  if (appBindings(root).has(m.names.camel)) refuse(`app.ts already has a binding named ${m.names.camel}`)
  const tables = tablesTaken(root)
  for (const table of [id.table, `${id.table}_migration`, `${id.table}_migration_lock`]) {
    if (tables.has(table)) refuse(`the database already has a table ${table}`)
  }
  for (const text of [`'${id.path}'`, `'${id.path}/`, `\`${id.path}/`, `'${id.changeEvent}'`, `_ROOM = '${id.room}'`]) {
    const file = sourceMentions(root, text)
    if (file !== undefined) refuse(`${file} already uses ${text.replace(/^[^'`]*['`]|['`/]+$/g, '')}`)
  }
}

/** The files of the resource and its tests, and its registration in app.ts. */
export function resourcePlan (m: ResourceModel): Plan {
  const plan = emptyPlan()
  const dir = `resources/${m.names.kebab}`
  const tests = `test/resources/${m.names.kebab}`
  const migration = identifiers(m).migration
  const files: Array<[string, string]> = [
    [`${dir}/index.ts`, indexFile(m)],
    [`${dir}/store.ts`, storeFile(m)],
    [`${dir}/sqlite-store.ts`, sqliteStoreFile(m)],
    [`${dir}/postgres-store.ts`, postgresStoreFile(m)],
    [`${dir}/migrations/sqlite/${migration}.ts`, migrationFile(m, 'sqlite')],
    [`${dir}/migrations/postgres/${migration}.ts`, migrationFile(m, 'postgres')],
    [`${dir}/store-plugin.ts`, storePluginFile(m)],
    [`${dir}/routes.ts`, routesFile(m)],
    ...(m.realtime ? [[`${dir}/rooms.ts`, roomsFile(m)], [`${dir}/feed.ts`, feedFile(m)]] as Array<[string, string]> : []),
    [`${tests}/routes.test.ts`, routesTestFile(m)],
    [`${tests}/store.test.ts`, storeTestFile(m)],
    [`${tests}/postgres.test.ts`, postgresTestFile(m)],
    ...(m.realtime ? [[`${tests}/realtime.test.ts`, realtimeTestFile(m)]] as Array<[string, string]> : [])
  ]
  for (const [path, text] of files) plan.files.set(path, text)
  plan.edits.set('app.ts', registerResource(m.names.camel, m.names.kebab))
  return plan
}
