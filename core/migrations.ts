// Versioned schema changes, applied at start-up by Kysely's Migrator. A resource keeps its migrations
// in its own folder — `<folder>/postgres/` and `<folder>/sqlite/`, one module per change exporting
// `up(db)`, applied in name order, never edited once shipped — and its own history table in the
// database (`<scope>_migration`, what ran and when). Instances starting together take turns: on
// PostgreSQL Kysely holds an advisory lock while it migrates; on SQLite the migration runs in an
// immediate (write-locking) transaction, so a second process waits, then finds nothing left to do.
// A failure is one line: the scope, the migration, the reason.

import { promises as fs } from 'node:fs'
import path from 'node:path'
import type { DatabaseSync, SQLInputValue } from 'node:sqlite'
import {
  CompiledQuery, Kysely, PostgresDialect, SqliteAdapter, SqliteDialect, SqliteDriver,
  type DatabaseConnection, type SqliteDatabase, type SqliteDialectConfig
} from 'kysely'
import { FileMigrationProvider, Migrator } from 'kysely/migration'
import type { FastifyBaseLogger } from 'fastify'
import type { Database } from './database.ts'

export class MigrationError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'MigrationError'
  }
}

/** node:sqlite's connection in the shape Kysely's SQLite dialect drives (better-sqlite3's). */
function kyselySqlite (db: DatabaseSync): SqliteDatabase {
  return {
    // The app owns the connection and closes it; Kysely only borrows it to migrate.
    close () {},
    prepare (sql) {
      const statement = db.prepare(sql)
      const args = (parameters: ReadonlyArray<unknown>) => parameters as SQLInputValue[]
      return {
        reader: statement.columns().length > 0,
        all: (parameters) => statement.all(...args(parameters)),
        run: (parameters) => statement.run(...args(parameters)),
        iterate: (parameters) => statement.iterate(...args(parameters))
      }
    }
  }
}

// SQLite has transactional DDL; Kysely's adapter does not claim it only because its lock is a no-op.
// Claiming it makes the Migrator run in one transaction, which the driver below begins IMMEDIATE.
class TransactionalSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl (): boolean { return true }
}

class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction (connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'))
  }
}

class MigratingSqliteDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig
  constructor (config: SqliteDialectConfig) {
    super(config)
    this.#config = config
  }

  override createDriver (): SqliteDriver { return new ImmediateSqliteDriver(this.#config) }
  override createAdapter (): SqliteAdapter { return new TransactionalSqliteAdapter() }
}

function migrator (database: Database): Kysely<unknown> {
  const dialect = database.kind === 'postgres'
    ? new PostgresDialect({ pool: database.postgres.migrationPool() })
    : new MigratingSqliteDialect({ database: kyselySqlite(database.sqlite) })
  return new Kysely<unknown>({ dialect })
}

const oneLine = (text: string) => text.replace(/\s+/g, ' ').trim()

/**
 * Applies the pending migrations of `folder` for this database's kind, recorded in `<scope>_migration`.
 * Resolves with the names it applied (none when another instance got there first); throws a
 * MigrationError whose message is one line.
 */
export async function applyMigrations (database: Database, folder: string, scope: string, log: FastifyBaseLogger): Promise<string[]> {
  const db = migrator(database)
  try {
    const { error, results = [] } = await new Migrator({
      db,
      provider: new FileMigrationProvider({ fs, path, migrationFolder: path.join(folder, database.kind) }),
      migrationTableName: `${scope}_migration`,
      migrationLockTableName: `${scope}_migration_lock`
    }).migrateToLatest()
    const applied = results.filter((r) => r.status === 'Success').map((r) => r.migrationName)
    if (error !== undefined) {
      const failed = results.find((r) => r.status === 'Error')?.migrationName
      const reason = error instanceof Error ? error.message : String(error)
      const safe = database.kind === 'postgres' ? database.postgres.redact(reason) : oneLine(reason)
      throw new MigrationError(`${scope}: ${failed === undefined ? 'database migrations could not run' : `database migration ${failed} failed`}: ${safe}`)
    }
    if (applied.length > 0) log.info({ migrations: applied }, `${scope}: database migrations applied`)
    return applied
  } finally {
    await db.destroy()
  }
}
