// Templates of a resource's storage: the store contract (store.ts, with the cursor and page rule its
// adapters share), the SQLite and PostgreSQL adapters, and the first migration in both dialects.
// Each function renders one file from the model; the columns follow the fields.

import { storeType } from './fields.ts'
import { columnDefinition, fromRow, rowType, toParam, type Dialect } from './columns.ts'
import { capitalize } from './names.ts'
import { commentBlock } from './comment.ts'
import { identifiers, type ResourceModel } from './resource-model.ts'

const lines = (items: readonly string[], indent: string, separator = ''): string =>
  items.map((item, i) => `${indent}${item}${i < items.length - 1 ? separator : ''}`).join('\n')

export function storeFile (m: ResourceModel): string {
  const id = identifiers(m)
  const fieldLines = m.fields.map((f) => `${f.name}: ${storeType(f)}`)
  return `${commentBlock(`The ${m.names.prose} resource's storage contract: what one ${m.one.prose} is, the store every adapter implements (sqlite-store.ts, postgres-store.ts), and what they share — the opaque cursor and the page rule. A write names the version it read and the database refuses a stale one in the same statement (never read-then-write), which surfaces as 412; a write to a missing record as 404.`)}

import { AppError, ErrorCode, notFound, preconditionFailed } from '../../core/errors.ts'

/** What a client writes: every field, optional ones null when unset. */
export interface ${id.recordFields} {
${lines(fieldLines, '  ')}
}

export interface ${id.record} extends ${id.recordFields} {
  /** Opaque (a UUID). */
  id: string
  /** 1 on creation, +1 per update; the ETag is derived from it. */
  version: number
  /** Milliseconds since the epoch. */
  createdAt: number
  updatedAt: number
}

export interface ${id.page} {
  ${m.names.camel}: ${id.record}[]
  /** Pass back as \`cursor\` for the next page; null on the last page. */
  nextCursor: string | null
}

export interface ${id.store} {
  /** Records in creation order, \`limit\` at a time, after \`cursor\` (from a previous page) when given. */
  list: (limit: number, cursor?: string) => Promise<${id.page}>
  get: (id: string) => Promise<${id.record} | undefined>
  create: (input: ${id.recordFields}) => Promise<${id.record}>
  /** Replaces the record if it is still at \`expectedVersion\`; 404 when it does not exist, 412 when it moved on. */
  update: (id: string, expectedVersion: number, input: ${id.recordFields}) => Promise<${id.record}>
  /** Deletes the record (only at \`expectedVersion\` when given); 404 when it does not exist, 412 when it moved on. */
  delete: (id: string, expectedVersion?: number) => Promise<void>
}
${cursorRules(m)}`
}

function cursorRules (m: ResourceModel): string {
  const id = identifiers(m)
  return `
// A cursor is the base64url of the last \`seq\` served (the creation-order key every adapter keeps:
// strictly increasing, never reused): opaque to clients, cheap to check here.
const CURSOR = /^[1-9][0-9]{0,15}$/

export function encodeCursor (seq: number): string {
  return Buffer.from(String(seq)).toString('base64url')
}

export function decodeCursor (cursor: string): number {
  const text = Buffer.from(cursor, 'base64url').toString()
  // Re-encoding must give back the same string: rejects padding, stray characters and non-canonical forms.
  if (!CURSOR.test(text) || encodeCursor(Number(text)) !== cursor) {
    throw new AppError(ErrorCode.VALIDATION, 'the cursor is not one this API issued; start again without a cursor', {
      errors: [{ path: '/querystring/cursor', message: 'is not a cursor this API issued' }]
    })
  }
  return Number(text)
}

/** A page from rows fetched with \`limit + 1\`: the extra row only tells that a next page exists (no COUNT). */
export function toPage<R> (rows: R[], limit: number, seqOf: (row: R) => number, toRecord: (row: R) => ${id.record}): ${id.page} {
  const more = rows.length > limit
  const served = more ? rows.slice(0, limit) : rows
  return { ${m.names.camel}: served.map(toRecord), nextCursor: more ? encodeCursor(seqOf(served[served.length - 1]!)) : null }
}

/** Why a conditional write touched no row: the record is gone (404) or at another version (412). */
export function staleOrMissing (exists: boolean): AppError {
  return exists ? preconditionFailed() : notFound('${m.one.prose}')
}
`
}

/** The row interface and the record it maps to, in one dialect. */
function rowMapping (m: ResourceModel, dialect: Dialect): string {
  const id = identifiers(m)
  const sqlite = dialect === 'sqlite'
  const rowLines = m.fields.map((f) => `${f.column}: ${rowType(f, dialect)}`)
  const recordLines = m.fields.map((f) => `${f.name}: ${fromRow(f, `row.${f.column}`, dialect)}`)
  const time = (column: string) => sqlite ? `row.${column}` : `row.${column}.getTime()`
  return `interface ${id.row} {
${sqlite ? '  seq: number' : '  /** bigint: the driver hands it over as a string. */\n  seq: string'}
  id: string
${lines(rowLines, '  ')}
  version: number
  created_at: ${sqlite ? 'number' : 'Date'}
  updated_at: ${sqlite ? 'number' : 'Date'}
}

const COLUMNS = 'seq, id, ${m.fields.map((f) => f.column).join(', ')}, version, created_at, updated_at'

function toRecord (row: ${id.row}): ${id.record} {
  return {
    id: row.id,
${lines(recordLines, '    ', ',')},
    version: row.version,
    createdAt: ${time('created_at')},
    updatedAt: ${time('updated_at')}
  }
}

/** The statement parameters of the fields, in column order. */
function fieldValues (input: ${id.recordFields}) {
  return [${m.fields.map((f) => toParam(f, `input.${f.name}`, dialect)).join(', ')}]
}`
}

export function sqliteStoreFile (m: ResourceModel): string {
  const id = identifiers(m)
  const columns = m.fields.map((f) => f.column)
  return `${commentBlock(`The ${m.names.prose} store on the embedded SQLite database (node:sqlite: synchronous, in-process, prepared statements), behind the async ${id.store} contract. The schema is the migrations' (migrations/sqlite/); this file only reads and writes it. Booleans are 0/1, times integer milliseconds, lists JSON text.`)}

import type { DatabaseSync, StatementSync } from 'node:sqlite'
import { randomUUID } from 'node:crypto'
import { decodeCursor, staleOrMissing, toPage, type ${id.record}, type ${id.recordFields}, type ${id.page}, type ${id.store} } from './store.ts'

${rowMapping(m, 'sqlite')}

export class ${id.sqliteStore} implements ${id.store} {
  readonly #insert: StatementSync
  readonly #get: StatementSync
  readonly #firstPage: StatementSync
  readonly #pageAfter: StatementSync
  readonly #update: StatementSync
  readonly #deleteVersion: StatementSync
  readonly #deleteAny: StatementSync

  /** \`db\` must hold the migrated schema (store-plugin.ts applies it first). */
  constructor (db: DatabaseSync) {
    this.#insert = db.prepare(\`INSERT INTO ${id.table} (id, ${columns.join(', ')}, version, created_at, updated_at)
      VALUES (?, ${columns.map(() => '?').join(', ')}, 1, ?, ?) RETURNING \${COLUMNS}\`)
    this.#get = db.prepare(\`SELECT \${COLUMNS} FROM ${id.table} WHERE id = ?\`)
    this.#firstPage = db.prepare(\`SELECT \${COLUMNS} FROM ${id.table} ORDER BY seq LIMIT ?\`)
    this.#pageAfter = db.prepare(\`SELECT \${COLUMNS} FROM ${id.table} WHERE seq > ? ORDER BY seq LIMIT ?\`)
    // The compare-and-set: the row changes only if it still has the version the writer read.
    // updated_at never goes backwards, even if the clock does (Last-Modified must not).
    this.#update = db.prepare(\`UPDATE ${id.table} SET ${columns.map((c) => `${c} = ?`).join(', ')}, version = version + 1, updated_at = max(?, updated_at)
      WHERE id = ? AND version = ? RETURNING \${COLUMNS}\`)
    this.#deleteVersion = db.prepare('DELETE FROM ${id.table} WHERE id = ? AND version = ?')
    this.#deleteAny = db.prepare('DELETE FROM ${id.table} WHERE id = ?')
  }

  async list (limit: number, cursor?: string): Promise<${id.page}> {
    const rows = (cursor === undefined
      ? this.#firstPage.all(limit + 1)
      : this.#pageAfter.all(decodeCursor(cursor), limit + 1)) as unknown as ${id.row}[]
    return toPage(rows, limit, (row) => row.seq, toRecord)
  }

  async get (id: string): Promise<${id.record} | undefined> {
    const row = this.#get.get(id) as ${id.row} | undefined
    return row === undefined ? undefined : toRecord(row)
  }

  async create (input: ${id.recordFields}): Promise<${id.record}> {
    const now = Date.now()
    return toRecord(this.#insert.get(randomUUID(), ...fieldValues(input), now, now) as unknown as ${id.row})
  }

  async update (id: string, expectedVersion: number, input: ${id.recordFields}): Promise<${id.record}> {
    const row = this.#update.get(...fieldValues(input), Date.now(), id, expectedVersion) as ${id.row} | undefined
    if (row === undefined) throw staleOrMissing(this.#get.get(id) !== undefined)
    return toRecord(row)
  }

  async delete (id: string, expectedVersion?: number): Promise<void> {
    const { changes } = expectedVersion === undefined ? this.#deleteAny.run(id) : this.#deleteVersion.run(id, expectedVersion)
    if (changes === 0) throw staleOrMissing(this.#get.get(id) !== undefined)
  }
}
`
}

export function postgresStoreFile (m: ResourceModel): string {
  const id = identifiers(m)
  const columns = m.fields.map((f) => f.column)
  const n = columns.length
  const placeholders = (from: number) => columns.map((_, i) => `$${i + from}`).join(', ')
  const sets = columns.map((c, i) => `${c} = $${i + 1}`).join(', ')
  return `${commentBlock(`The ${m.names.prose} store on PostgreSQL (DATABASE_URL), behind the async ${id.store} contract: one statement per call through the shared pool (core/postgres.ts turns an unreachable database into 503). The schema is the migrations' (migrations/postgres/). Statements are named, so each connection parses and plans them once.`)}

import { randomUUID } from 'node:crypto'
import type { PostgresDatabase } from '../../core/postgres.ts'
import { decodeCursor, staleOrMissing, toPage, type ${id.record}, type ${id.recordFields}, type ${id.page}, type ${id.store} } from './store.ts'

${rowMapping(m, 'postgres')}

const SQL = {
  insert: \`INSERT INTO ${id.table} (id, ${columns.join(', ')}, created_at, updated_at) VALUES ($1, ${placeholders(2)}, $${n + 2}, $${n + 2}) RETURNING \${COLUMNS}\`,
  get: \`SELECT \${COLUMNS} FROM ${id.table} WHERE id = $1\`,
  exists: 'SELECT 1 FROM ${id.table} WHERE id = $1',
  firstPage: \`SELECT \${COLUMNS} FROM ${id.table} ORDER BY seq LIMIT $1\`,
  pageAfter: \`SELECT \${COLUMNS} FROM ${id.table} WHERE seq > $1 ORDER BY seq LIMIT $2\`,
  // The compare-and-set: the row changes only if it still has the version the writer read; of two
  // concurrent writers at one version, the second waits for the first's row lock, then matches nothing.
  // updated_at never goes backwards, even if a clock does (Last-Modified must not).
  update: \`UPDATE ${id.table} SET ${sets}, version = version + 1, updated_at = greatest($${n + 1}, updated_at)
    WHERE id = $${n + 2} AND version = $${n + 3} RETURNING \${COLUMNS}\`,
  deleteVersion: 'DELETE FROM ${id.table} WHERE id = $1 AND version = $2',
  deleteAny: 'DELETE FROM ${id.table} WHERE id = $1'
} as const

export class ${id.postgresStore} implements ${id.store} {
  readonly #db: PostgresDatabase

  /** \`db\` must hold the migrated schema (store-plugin.ts applies it first). */
  constructor (db: PostgresDatabase) {
    this.#db = db
  }

  async list (limit: number, cursor?: string): Promise<${id.page}> {
    const { rows } = cursor === undefined
      ? await this.#rows('firstPage', [limit + 1])
      : await this.#rows('pageAfter', [decodeCursor(cursor), limit + 1])
    return toPage(rows, limit, (row) => Number(row.seq), toRecord)
  }

  async get (id: string): Promise<${id.record} | undefined> {
    const { rows } = await this.#rows('get', [id])
    return rows[0] === undefined ? undefined : toRecord(rows[0])
  }

  async create (input: ${id.recordFields}): Promise<${id.record}> {
    const { rows } = await this.#rows('insert', [randomUUID(), ...fieldValues(input), new Date()])
    return toRecord(rows[0]!)
  }

  async update (id: string, expectedVersion: number, input: ${id.recordFields}): Promise<${id.record}> {
    const { rows } = await this.#rows('update', [...fieldValues(input), new Date(), id, expectedVersion])
    if (rows[0] === undefined) throw await this.#whyNot(id)
    return toRecord(rows[0])
  }

  async delete (id: string, expectedVersion?: number): Promise<void> {
    const { rowCount } = expectedVersion === undefined
      ? await this.#rows('deleteAny', [id])
      : await this.#rows('deleteVersion', [id, expectedVersion])
    if (rowCount === 0) throw await this.#whyNot(id)
  }

  async #rows (statement: keyof typeof SQL, values: unknown[]) {
    return await this.#db.query<${id.row}>({ name: \`${m.names.kebab}-\${statement}\`, text: SQL[statement], values })
  }

  async #whyNot (id: string) {
    return staleOrMissing((await this.#rows('exists', [id])).rows.length > 0)
  }
}
`
}

export function migrationFile (m: ResourceModel, dialect: Dialect): string {
  const id = identifiers(m)
  const columns = m.fields.map((f) => columnDefinition(f, dialect) + ',')
  if (dialect === 'sqlite') {
    return `${commentBlock(`${capitalize(m.names.prose)} on SQLite. \`seq\` is the pagination key: AUTOINCREMENT makes it strictly increasing and never reused, so a cursor ("after seq N") stays valid while records are created and deleted around it.`)}

import { sql, type Kysely } from 'kysely'

export async function up (db: Kysely<unknown>): Promise<void> {
  await sql\`
    CREATE TABLE ${id.table} (
      seq        INTEGER PRIMARY KEY AUTOINCREMENT,
      id         TEXT    NOT NULL UNIQUE,
${lines(columns, '      ')}
      version    INTEGER NOT NULL DEFAULT 1,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    ) STRICT
  \`.execute(db)
}
`
  }
  return `${commentBlock(`${capitalize(m.names.prose)} on PostgreSQL. \`seq\` is the pagination key: an identity column, strictly increasing and never reused, so a cursor ("after seq N") stays valid while records are created and deleted around it; its unique index serves both the order and the "after N" lookup.`)}

import { sql, type Kysely } from 'kysely'

export async function up (db: Kysely<unknown>): Promise<void> {
  await sql\`
    CREATE TABLE ${id.table} (
      seq        bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
      id         text        PRIMARY KEY,
${lines(columns, '      ')}
      version    integer     NOT NULL DEFAULT 1,
      created_at timestamptz NOT NULL,
      updated_at timestamptz NOT NULL
    )
  \`.execute(db)
}
`
}
