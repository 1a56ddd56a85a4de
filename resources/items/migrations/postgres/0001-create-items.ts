// Items on PostgreSQL. `seq` is the pagination key: an identity column, strictly increasing and never
// reused, so a cursor ("after seq N") stays valid while items are created and deleted around it; its
// unique index serves both the order and the "after N" lookup.

import { sql, type Kysely } from 'kysely'

export async function up (db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE items (
      seq        bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
      id         text        PRIMARY KEY,
      name       text        NOT NULL,
      tags       text[]      NOT NULL DEFAULT '{}',
      version    integer     NOT NULL DEFAULT 1,
      created_at timestamptz NOT NULL,
      updated_at timestamptz NOT NULL
    )
  `.execute(db)
}
