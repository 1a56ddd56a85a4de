// The example resource's storage: items in SQLite through node:sqlite (synchronous, in-process).
// Owns the schema, the prepared statements, cursor encoding and the optimistic-concurrency rule: a
// write names the version it read, and a stale version is refused (412), never silently overwritten.
// Framework-free; failures are core/errors.ts AppErrors.

import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { randomUUID } from 'node:crypto'
import { AppError, ErrorCode, notFound, preconditionFailed } from '../../core/errors.ts'

export interface Item {
  /** Opaque (a UUID). */
  id: string
  name: string
  tags: string[]
  /** 1 on creation, +1 per update; the item's ETag is derived from it. */
  version: number
  /** Milliseconds since the epoch. */
  createdAt: number
  updatedAt: number
}

export interface ItemInput {
  name: string
  tags?: string[]
}

export interface ItemPage {
  items: Item[]
  /** Pass back as `cursor` for the next page; null on the last page. */
  nextCursor: string | null
}

interface ItemRow {
  seq: number
  id: string
  name: string
  tags: string
  version: number
  created_at: number
  updated_at: number
}

export const MEMORY_DATABASE = ':memory:'

// `seq` is the sort key of pagination: AUTOINCREMENT makes it strictly increasing and never reused,
// so a cursor ("after seq N") stays valid while items are created and deleted around it.
const SCHEMA = `
  CREATE TABLE IF NOT EXISTS items (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT    NOT NULL UNIQUE,
    name       TEXT    NOT NULL,
    tags       TEXT    NOT NULL DEFAULT '[]',
    version    INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  ) STRICT
`
const COLUMNS = 'seq, id, name, tags, version, created_at, updated_at'

// A cursor is the base64url of the last seq served: opaque to clients, cheap to check here.
const CURSOR = /^[1-9][0-9]{0,15}$/

export function encodeCursor (seq: number): string {
  return Buffer.from(String(seq)).toString('base64url')
}

function decodeCursor (cursor: string): number {
  const text = Buffer.from(cursor, 'base64url').toString()
  // Re-encoding must give back the same string: rejects padding, stray characters and non-canonical forms.
  if (!CURSOR.test(text) || encodeCursor(Number(text)) !== cursor) {
    throw new AppError(ErrorCode.VALIDATION, 'the cursor is not one this API issued; start again without a cursor', {
      errors: [{ path: '/querystring/cursor', message: 'is not a cursor this API issued' }]
    })
  }
  return Number(text)
}

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

export class ItemsStore {
  readonly #db: DatabaseSync
  readonly #insert: StatementSync
  readonly #get: StatementSync
  readonly #firstPage: StatementSync
  readonly #pageAfter: StatementSync
  readonly #update: StatementSync
  readonly #deleteVersion: StatementSync
  readonly #deleteAny: StatementSync

  /** Opens (creating the file, its directory and the schema when missing) `file`, or an in-memory database. */
  constructor (file: string) {
    if (file !== MEMORY_DATABASE) mkdirSync(dirname(file), { recursive: true })
    this.#db = new DatabaseSync(file)
    if (file !== MEMORY_DATABASE) {
      // WAL: readers never wait for the writer. synchronous=NORMAL is durable across process crashes
      // in WAL mode (only an OS crash may lose the last commits) and avoids an fsync per write.
      this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL')
    }
    // Another process writing the same file (a second instance) makes us wait up to 5 s, not fail at once.
    this.#db.exec('PRAGMA busy_timeout = 5000')
    this.#db.exec(SCHEMA)
    this.#insert = this.#db.prepare(`INSERT INTO items (id, name, tags, version, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?) RETURNING ${COLUMNS}`)
    this.#get = this.#db.prepare(`SELECT ${COLUMNS} FROM items WHERE id = ?`)
    this.#firstPage = this.#db.prepare(`SELECT ${COLUMNS} FROM items ORDER BY seq LIMIT ?`)
    this.#pageAfter = this.#db.prepare(`SELECT ${COLUMNS} FROM items WHERE seq > ? ORDER BY seq LIMIT ?`)
    // The compare-and-set: the row changes only if it still has the version the writer read.
    // updated_at never goes backwards, even if the clock does (Last-Modified must not).
    this.#update = this.#db.prepare(`UPDATE items SET name = ?, tags = ?, version = version + 1, updated_at = max(?, updated_at)
      WHERE id = ? AND version = ? RETURNING ${COLUMNS}`)
    this.#deleteVersion = this.#db.prepare('DELETE FROM items WHERE id = ? AND version = ?')
    this.#deleteAny = this.#db.prepare('DELETE FROM items WHERE id = ?')
  }

  /** Items in creation order, `limit` at a time, after `cursor` (from a previous page) when given. */
  list (limit: number, cursor?: string): ItemPage {
    // One row more than asked tells whether a next page exists without a COUNT.
    const rows = (cursor === undefined
      ? this.#firstPage.all(limit + 1)
      : this.#pageAfter.all(decodeCursor(cursor), limit + 1)) as unknown as ItemRow[]
    const more = rows.length > limit
    if (more) rows.pop()
    return { items: rows.map(toItem), nextCursor: more ? encodeCursor(rows[rows.length - 1]!.seq) : null }
  }

  get (id: string): Item | undefined {
    const row = this.#get.get(id) as ItemRow | undefined
    return row === undefined ? undefined : toItem(row)
  }

  create (input: ItemInput): Item {
    const now = Date.now()
    return toItem(this.#insert.get(randomUUID(), input.name, JSON.stringify(input.tags ?? []), now, now) as unknown as ItemRow)
  }

  /** Replaces the item if it is still at `expectedVersion`; 404 when it does not exist, 412 when it moved on. */
  update (id: string, expectedVersion: number, input: ItemInput): Item {
    const row = this.#update.get(input.name, JSON.stringify(input.tags ?? []), Date.now(), id, expectedVersion) as ItemRow | undefined
    if (row === undefined) throw this.#whyNot(id)
    return toItem(row)
  }

  /** Deletes the item (only at `expectedVersion` when given); 404 when it does not exist, 412 when it moved on. */
  delete (id: string, expectedVersion?: number): void {
    const { changes } = expectedVersion === undefined ? this.#deleteAny.run(id) : this.#deleteVersion.run(id, expectedVersion)
    if (changes === 0) throw this.#whyNot(id)
  }

  close (): void {
    if (this.#db.isOpen) this.#db.close()
  }

  /** Why a conditional write touched no row. */
  #whyNot (id: string): AppError {
    return this.#get.get(id) === undefined ? notFound('item') : preconditionFailed()
  }
}
