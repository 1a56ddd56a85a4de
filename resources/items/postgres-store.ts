// The items store on PostgreSQL (DATABASE_URL), behind the async ItemsStore contract: one statement per
// call through the shared pool (core/postgres.ts turns an unreachable database into 503). The schema is
// the migrations' (migrations/postgres/). Tags are text[], times timestamptz, `seq` a bigint identity.
// Statements are named, so each connection parses and plans them once.

import { randomUUID } from 'node:crypto'
import type { PostgresDatabase } from '../../core/postgres.ts'
import { decodeCursor, staleOrMissing, toPage, type Item, type ItemInput, type ItemPage, type ItemsStore } from './store.ts'

interface ItemRow {
  /** bigint: the driver hands it over as a string. */
  seq: string
  id: string
  name: string
  tags: string[]
  version: number
  created_at: Date
  updated_at: Date
}

const COLUMNS = 'seq, id, name, tags, version, created_at, updated_at'

const SQL = {
  insert: `INSERT INTO items (id, name, tags, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) RETURNING ${COLUMNS}`,
  get: `SELECT ${COLUMNS} FROM items WHERE id = $1`,
  exists: 'SELECT 1 FROM items WHERE id = $1',
  firstPage: `SELECT ${COLUMNS} FROM items ORDER BY seq LIMIT $1`,
  pageAfter: `SELECT ${COLUMNS} FROM items WHERE seq > $1 ORDER BY seq LIMIT $2`,
  // The compare-and-set: the row changes only if it still has the version the writer read; of two
  // concurrent writers at one version, the second waits for the first's row lock, then matches nothing.
  // updated_at never goes backwards, even if a clock does (Last-Modified must not).
  update: `UPDATE items SET name = $1, tags = $2, version = version + 1, updated_at = greatest($3, updated_at)
    WHERE id = $4 AND version = $5 RETURNING ${COLUMNS}`,
  deleteVersion: 'DELETE FROM items WHERE id = $1 AND version = $2',
  deleteAny: 'DELETE FROM items WHERE id = $1'
} as const

function toItem (row: ItemRow): Item {
  return {
    id: row.id,
    name: row.name,
    tags: row.tags,
    version: row.version,
    createdAt: row.created_at.getTime(),
    updatedAt: row.updated_at.getTime()
  }
}

export class PostgresItemsStore implements ItemsStore {
  readonly #db: PostgresDatabase

  /** `db` must hold the migrated schema (store-plugin.ts applies it first). */
  constructor (db: PostgresDatabase) {
    this.#db = db
  }

  async list (limit: number, cursor?: string): Promise<ItemPage> {
    const { rows } = cursor === undefined
      ? await this.#rows('firstPage', [limit + 1])
      : await this.#rows('pageAfter', [decodeCursor(cursor), limit + 1])
    return toPage(rows, limit, (row) => Number(row.seq), toItem)
  }

  async get (id: string): Promise<Item | undefined> {
    const { rows } = await this.#rows('get', [id])
    return rows[0] === undefined ? undefined : toItem(rows[0])
  }

  async create (input: ItemInput): Promise<Item> {
    const { rows } = await this.#rows('insert', [randomUUID(), input.name, input.tags ?? [], new Date()])
    return toItem(rows[0]!)
  }

  async update (id: string, expectedVersion: number, input: ItemInput): Promise<Item> {
    const { rows } = await this.#rows('update', [input.name, input.tags ?? [], new Date(), id, expectedVersion])
    if (rows[0] === undefined) throw await this.#whyNot(id)
    return toItem(rows[0])
  }

  async delete (id: string, expectedVersion?: number): Promise<void> {
    const { rowCount } = expectedVersion === undefined
      ? await this.#rows('deleteAny', [id])
      : await this.#rows('deleteVersion', [id, expectedVersion])
    if (rowCount === 0) throw await this.#whyNot(id)
  }

  async #rows (statement: keyof typeof SQL, values: unknown[]) {
    return await this.#db.query<ItemRow>({ name: `items-${statement}`, text: SQL[statement], values })
  }

  async #whyNot (id: string) {
    return staleOrMissing((await this.#rows('exists', [id])).rows.length > 0)
  }
}
