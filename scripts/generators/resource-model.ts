// The model every resource template reads: the resource's names in each casing and the identifiers
// derived from them, its fields, its scope, whether it has a real-time side. Templates name things
// only through this model, so no generated identifier comes from rewriting another resource's code.

import type { Field } from './fields.ts'
import type { NameForms } from './names.ts'

export interface ResourceModel {
  /** The plural name: folder, path segment, room, table. */
  readonly names: NameForms
  /** The singular: one record. */
  readonly one: NameForms
  readonly fields: readonly Field[]
  /** Writes need `<scope>:write`. */
  readonly scope: string
  /** A room and a change feed (off with --no-realtime). */
  readonly realtime: boolean
  /** The prefix of the app's plugin names (`keel` in `keel-database`). */
  readonly pluginPrefix: string
}

/** The identifiers the generated files share, so each is spelled in one place. */
export function identifiers (m: ResourceModel) {
  const { names: n, one: o } = m
  return {
    path: `/api/v1/${n.kebab}`,
    pathConst: `${n.constant}_PATH`,
    record: o.pascal,
    recordFields: `${o.pascal}Fields`,
    page: `${o.pascal}Page`,
    store: `${n.pascal}Store`,
    sqliteStore: `Sqlite${n.pascal}Store`,
    postgresStore: `Postgres${n.pascal}Store`,
    row: `${o.pascal}Row`,
    decorator: n.camel,
    openStore: `open${n.pascal}Store`,
    migrationsConst: `${n.constant}_MIGRATIONS`,
    table: n.snake,
    room: n.kebab,
    roomConst: `${n.constant}_ROOM`,
    roomPolicy: `${n.camel}RoomPolicy`,
    changeEvent: `${n.kebab}:changed`,
    change: `${o.pascal}Change`,
    feed: `feed${o.pascal}Changes`,
    writeScope: `${m.scope}:write`,
    plugin: `${m.pluginPrefix}-${n.kebab}`,
    storePlugin: `${m.pluginPrefix}-${n.kebab}-store`,
    migration: `0001-create-${n.kebab}`
  }
}
