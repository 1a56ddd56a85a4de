// The items store on the embedded SQLite database (node:sqlite: synchronous, in-process, prepared
// statements), behind the async ItemsStore contract. The schema is the migrations' (migrations/sqlite/);
// this file only reads and writes it. Tags are a JSON array in a TEXT column, times integer milliseconds.

import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { randomUUID } from 'node:crypto'
import { decodeCursor, staleOrMissing, toPage, type Item, type ItemInput, type ItemPage, type ItemsStore } from './store.ts'

interface ItemRow {
  seq: number
  id: string
  name: string
  tags: string
  version: number
  created_at: number
  updated_at: number
}

const COLUMNS = 'seq, id, name, tags, version, created_at, updated_at'

function toItem (row: ItemRow): Item {
  return {
    id: row.id,
    name: row.name,
    tags: JSON.parse(row.tags) as string[],
    version: row.version,
    createdAt: row.created_at,
    updatedAt: row.updated_at
  }
}

export class SqliteItemsStore implements ItemsStore {
  readonly #insert: StatementSync
  readonly #get: StatementSync
  readonly #firstPage: StatementSync
  readonly #pageAfter: StatementSync
  readonly #update: StatementSync
  readonly #deleteVersion: StatementSync
  readonly #deleteAny: StatementSync

  /** `db` must hold the migrated schema (store-plugin.ts applies it first). */
  constructor (db: DatabaseSync) {
    this.#insert = db.prepare(`INSERT INTO items (id, name, tags, version, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?) RETURNING ${COLUMNS}`)
    this.#get = db.prepare(`SELECT ${COLUMNS} FROM items WHERE id = ?`)
    this.#firstPage = db.prepare(`SELECT ${COLUMNS} FROM items ORDER BY seq LIMIT ?`)
    this.#pageAfter = db.prepare(`SELECT ${COLUMNS} FROM items WHERE seq > ? ORDER BY seq LIMIT ?`)
    // The compare-and-set: the row changes only if it still has the version the writer read.
    // updated_at never goes backwards, even if the clock does (Last-Modified must not).
    this.#update = db.prepare(`UPDATE items SET name = ?, tags = ?, version = version + 1, updated_at = max(?, updated_at)
      WHERE id = ? AND version = ? RETURNING ${COLUMNS}`)
    this.#deleteVersion = db.prepare('DELETE FROM items WHERE id = ? AND version = ?')
    this.#deleteAny = db.prepare('DELETE FROM items WHERE id = ?')
  }

  async list (limit: number, cursor?: string): Promise<ItemPage> {
    const rows = (cursor === undefined
      ? this.#firstPage.all(limit + 1)
      : this.#pageAfter.all(decodeCursor(cursor), limit + 1)) as unknown as ItemRow[]
    return toPage(rows, limit, (row) => row.seq, toItem)
  }

  async get (id: string): Promise<Item | undefined> {
    const row = this.#get.get(id) as ItemRow | undefined
    return row === undefined ? undefined : toItem(row)
  }

  async create (input: ItemInput): Promise<Item> {
    const now = Date.now()
    return toItem(this.#insert.get(randomUUID(), input.name, JSON.stringify(input.tags ?? []), now, now) as unknown as ItemRow)
  }

  async update (id: string, expectedVersion: number, input: ItemInput): Promise<Item> {
    const row = this.#update.get(input.name, JSON.stringify(input.tags ?? []), Date.now(), id, expectedVersion) as ItemRow | undefined
    if (row === undefined) throw staleOrMissing(this.#get.get(id) !== undefined)
    return toItem(row)
  }

  async delete (id: string, expectedVersion?: number): Promise<void> {
    const { changes } = expectedVersion === undefined ? this.#deleteAny.run(id) : this.#deleteVersion.run(id, expectedVersion)
    if (changes === 0) throw staleOrMissing(this.#get.get(id) !== undefined)
  }
}
