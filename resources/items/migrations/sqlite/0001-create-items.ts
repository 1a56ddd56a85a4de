// Items on SQLite. `seq` is the pagination key: AUTOINCREMENT makes it strictly increasing and never
// reused, so a cursor ("after seq N") stays valid while items are created and deleted around it.
// IF NOT EXISTS: a database file written before migrations existed already has this exact table.

import { sql, type Kysely } from 'kysely'

export async function up (db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE IF NOT EXISTS items (
      seq        INTEGER PRIMARY KEY AUTOINCREMENT,
      id         TEXT    NOT NULL UNIQUE,
      name       TEXT    NOT NULL,
      tags       TEXT    NOT NULL DEFAULT '[]',
      version    INTEGER NOT NULL DEFAULT 1,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    ) STRICT
  `.execute(db)
}
