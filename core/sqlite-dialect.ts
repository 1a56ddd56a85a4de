// node:sqlite for Kysely (core/migrations.ts migrates SQLite through it): the connection in the shape
// Kysely's SQLite dialect drives (better-sqlite3's), and a dialect whose migrations run in one
// transaction begun IMMEDIATE — it takes the write lock first, so a second process migrating the same
// file at the same moment waits for the first, then finds nothing left to do.

import type { DatabaseSync, SQLInputValue } from 'node:sqlite'
import {
  CompiledQuery, SqliteAdapter, SqliteDialect, SqliteDriver,
  type DatabaseConnection, type SqliteDatabase, type SqliteDialectConfig
} from 'kysely'

function kyselySqlite (db: DatabaseSync): SqliteDatabase {
  return {
    // The app owns the connection and closes it; Kysely only borrows it.
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

// SQLite has transactional DDL; Kysely's adapter does not claim it only because its migration lock is
// a no-op. Claiming it makes the Migrator run in one transaction, which the driver below begins IMMEDIATE.
class TransactionalSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl (): boolean { return true }
}

class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction (connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'))
  }
}

export class NodeSqliteDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig
  constructor (db: DatabaseSync) {
    const config = { database: kyselySqlite(db) }
    super(config)
    this.#config = config
  }

  override createDriver (): SqliteDriver { return new ImmediateSqliteDriver(this.#config) }
  override createAdapter (): SqliteAdapter { return new TransactionalSqliteAdapter() }
}
