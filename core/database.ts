// The resources' database, opened once per app: PostgreSQL when DATABASE_URL is set (core/postgres.ts),
// else the embedded SQLite file DATABASE_FILE. Decorates `fastify.database` — its kind and its handle —
// on which a resource's store plugin applies its migrations (core/migrations.ts) and builds the
// adapter for that kind. With PostgreSQL the start verifies the connection (a wrong URL or password
// stops it, naming DATABASE_URL) and readiness gains the `database` check. Closed with the app.

import { DatabaseSync } from 'node:sqlite'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import fp from 'fastify-plugin'
import { traceSqliteStatements } from '../telemetry/sqlite-spans.ts'
import type { FastifyBaseLogger } from 'fastify'
import type { DatabaseConfig } from './config.ts'
import { PostgresDatabase } from './postgres.ts'

export type Database =
  | { readonly kind: 'sqlite', readonly sqlite: DatabaseSync }
  | { readonly kind: 'postgres', readonly postgres: PostgresDatabase }

declare module 'fastify' {
  interface FastifyInstance {
    database: Database
  }
}

export const MEMORY_DATABASE = ':memory:'

// Another process writing the same file (a second instance) makes a statement wait up to 5 s, not fail at once.
const SQLITE_BUSY_TIMEOUT_MS = 5000

/** Opens (creating the file and its directory when missing) an SQLite file, or an in-memory database. */
const SQLITE_BUSY = 5

export function openSqlite (file: string): DatabaseSync {
  if (file !== MEMORY_DATABASE) mkdirSync(dirname(file), { recursive: true })
  const db = traceSqliteStatements(new DatabaseSync(file))
  // First: switching a new file to WAL takes a lock that a second instance starting at once must wait for.
  db.exec(`PRAGMA busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`)
  if (file !== MEMORY_DATABASE) {
    // WAL: readers never wait for the writer. synchronous=NORMAL is durable across process crashes
    // in WAL mode (only an OS crash may lose the last commits) and avoids an fsync per write.
    switchToWal(db)
    db.exec('PRAGMA synchronous = NORMAL')
  }
  return db
}

/**
 * SQLite may answer SQLITE_BUSY to the switch to WAL at once, without its busy handler, while another
 * process is switching the same new file: retry within the busy timeout, a few milliseconds apart.
 */
function switchToWal (db: DatabaseSync): void {
  const deadline = Date.now() + SQLITE_BUSY_TIMEOUT_MS
  const pause = new Int32Array(new SharedArrayBuffer(4))
  for (;;) {
    try {
      db.exec('PRAGMA journal_mode = WAL')
      return
    } catch (err) {
      if ((err as { errcode?: number }).errcode !== SQLITE_BUSY || Date.now() >= deadline) throw err
      Atomics.wait(pause, 0, 0, 10)
    }
  }
}

/** Opens the configured database; with PostgreSQL, after one successful round trip. */
export async function openDatabase (config: DatabaseConfig, log: FastifyBaseLogger): Promise<Database> {
  if (config.url === undefined) return { kind: 'sqlite', sqlite: openSqlite(config.file) }
  const postgres = new PostgresDatabase({
    url: config.url,
    poolMax: config.poolMax,
    statementTimeoutMs: config.statementTimeoutMs,
    connectTimeoutMs: config.connectTimeoutMs
  }, log)
  try {
    await postgres.verify()
  } catch (err) {
    await postgres.close()
    throw err
  }
  return { kind: 'postgres', postgres }
}

export async function closeDatabase (database: Database): Promise<void> {
  if (database.kind === 'postgres') await database.postgres.close()
  else if (database.sqlite.isOpen) database.sqlite.close()
}

export default fp<DatabaseConfig>(async function database (fastify, options) {
  const opened = await openDatabase(options, fastify.log)
  fastify.decorate<Database>('database', opened)
  if (opened.kind === 'postgres') fastify.health.addCheck('database', async () => await opened.postgres.check())
  fastify.addHook('onClose', async () => { await closeDatabase(opened) })
  fastify.log.debug({ database: opened.kind }, 'database opened')
}, { name: 'keel-database', dependencies: ['keel-health'] })
