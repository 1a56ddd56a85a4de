// Versioned schema changes, applied at start-up by Kysely's Migrator. A resource keeps its migrations
// in its own folder — `<folder>/postgres/` and `<folder>/sqlite/`, one module per change exporting
// `up(db)`, applied in name order, never edited once shipped — and its own history table in the
// database (`<scope>_migration`: what ran and when). Instances starting together take turns: on
// PostgreSQL Kysely holds an advisory lock while it migrates; on SQLite the migration runs in an
// immediate (write-locking) transaction (core/sqlite-dialect.ts). A failure is one line: the scope,
// the migration, the reason. Kysely is loaded on the first migration, not with the app's code.

import { promises as fs } from 'node:fs'
import path from 'node:path'
import type { FastifyBaseLogger } from 'fastify'
import type { Database } from './database.ts'

export class MigrationError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'MigrationError'
  }
}

const oneLine = (text: string) => text.replace(/\s+/g, ' ').trim()

/**
 * Applies the pending migrations of `folder` for this database's kind, recorded in `<scope>_migration`.
 * Resolves with the names it applied (none when another instance got there first); throws a
 * MigrationError whose message is one line.
 */
export async function applyMigrations (database: Database, folder: string, scope: string, log: FastifyBaseLogger): Promise<string[]> {
  const [{ Kysely, PostgresDialect }, { FileMigrationProvider, Migrator }, { NodeSqliteDialect }] =
    await Promise.all([import('kysely'), import('kysely/migration'), import('./sqlite-dialect.ts')])
  const dialect = database.kind === 'postgres'
    ? new PostgresDialect({ pool: database.postgres.migrationPool() })
    : new NodeSqliteDialect(database.sqlite)
  const db = new Kysely<unknown>({ dialect })
  try {
    const { error, results = [] } = await new Migrator({
      db,
      provider: new FileMigrationProvider({ fs, path, migrationFolder: path.join(folder, database.kind) }),
      migrationTableName: `${scope}_migration`,
      migrationLockTableName: `${scope}_migration_lock`
    }).migrateToLatest()
    if (error !== undefined) {
      const failed = results.find((r) => r.status === 'Error')?.migrationName
      const reason = error instanceof Error ? error.message : String(error)
      const safe = database.kind === 'postgres' ? database.postgres.redact(reason) : oneLine(reason)
      throw new MigrationError(`${scope}: ${failed === undefined ? 'database migrations could not run' : `database migration ${failed} failed`}: ${safe}`)
    }
    const applied = results.filter((r) => r.status === 'Success').map((r) => r.migrationName)
    if (applied.length > 0) log.info({ migrations: applied }, `${scope}: database migrations applied`)
    return applied
  } finally {
    await db.destroy()
  }
}
