// The items store on its own, one table of promises run against every adapter — SQLite (in memory, or a
// file shared by two connections) and PostgreSQL (a real server, skipped with a reason when its
// binaries are absent): schema from the migrations, cursor pages, and the compare-and-set that refuses
// a stale write, also between two instances on one database. Then what only the SQLite file has.

import t, { type Test } from 'tap'
import { existsSync } from 'node:fs'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import pino from 'pino'
import type { FastifyBaseLogger } from 'fastify'
import { encodeCursor, type ItemsStore } from '../../../resources/items/store.ts'
import { openItemsStore } from '../../../resources/items/store-plugin.ts'
import { closeDatabase, openDatabase, type Database } from '../../../core/database.ts'
import type { DatabaseConfig } from '../../../core/config.ts'
import { AppError } from '../../../core/errors.ts'
import { ROOT, tempDir } from '../../helpers/app.ts'
import { until } from '../../helpers/until.ts'
import { postgresSkipReason, startPostgres, type TestPostgres } from '../../helpers/postgres.ts'

const log = pino({ level: 'silent' }) as FastifyBaseLogger
const defaults: DatabaseConfig = { url: undefined, file: ':memory:', poolMax: 5, statementTimeoutMs: 5000, connectTimeoutMs: 2000 }

async function open (t: Test, where: Partial<DatabaseConfig>): Promise<{ database: Database, store: ItemsStore }> {
  const database = await openDatabase({ ...defaults, ...where }, log)
  t.teardown(() => closeDatabase(database))
  return { database, store: await openItemsStore(database, log) }
}

interface Adapter {
  name: string
  skip: string | false
  /** Where a fresh database lives: one per call. */
  fresh: () => Promise<Partial<DatabaseConfig>>
}

// One server for the whole file, started on first use; each test gets its own database on it.
let server: Promise<TestPostgres> | undefined
const postgres = async () => await (server ??= startPostgres(t))

const adapters: Adapter[] = [
  { name: 'SQLite', skip: false, fresh: async () => ({ file: join(tempDir(), 'keel.db') }) },
  { name: 'PostgreSQL', skip: postgresSkipReason(), fresh: async () => ({ url: await (await postgres()).createDatabase() }) }
]

for (const adapter of adapters) {
  t.test(`${adapter.name} adapter`, { skip: adapter.skip }, async (t) => {
    const store = async (t: Test) => (await open(t, await adapter.fresh())).store

    t.test('create, get, update and delete', async (t) => {
      const s = await store(t)
      const created = await s.create({ name: 'a', tags: ['x', 'y'] })
      t.match(created, { name: 'a', tags: ['x', 'y'], version: 1 })
      t.match(created.id, /^[0-9a-f-]{36}$/)
      t.equal(created.createdAt, created.updatedAt)
      t.same(await s.get(created.id), created)
      t.equal(await s.get('nope'), undefined)

      const updated = await s.update(created.id, 1, { name: 'b' })
      t.match(updated, { id: created.id, name: 'b', tags: [], version: 2, createdAt: created.createdAt })
      t.ok(updated.updatedAt >= created.updatedAt)

      await s.delete(created.id, 2)
      t.equal(await s.get(created.id), undefined)
    })

    t.test('a write at a stale version is refused with 412; an unknown id with 404', async (t) => {
      const s = await store(t)
      const item = await s.create({ name: 'a' })
      await s.update(item.id, 1, { name: 'b' })
      await t.rejects(s.update(item.id, 1, { name: 'c' }), { code: 'PRECONDITION_FAILED', statusCode: 412 })
      await t.rejects(s.delete(item.id, 1), { code: 'PRECONDITION_FAILED' })
      t.equal((await s.get(item.id))?.name, 'b', 'the stale writes changed nothing')
      await t.rejects(s.update('missing', 1, { name: 'c' }), { code: 'NOT_FOUND', statusCode: 404 })
      await t.rejects(s.delete('missing'), { code: 'NOT_FOUND' })
      await t.rejects(s.delete('missing', 1), { code: 'NOT_FOUND' })
      await s.delete(item.id)
      t.equal(await s.get(item.id), undefined, 'delete without a version is unconditional')
    })

    t.test('two instances on one database: the second writer with the old version gets 412 (no lost update)', async (t) => {
      const where = await adapter.fresh()
      const a = (await open(t, where)).store
      const b = (await open(t, where)).store
      const item = await a.create({ name: 'shared' })
      const seenByB = (await b.get(item.id))!
      t.same(seenByB, item, 'B reads what A wrote, version included')
      await a.update(item.id, item.version, { name: 'from a' })
      await t.rejects(b.update(item.id, seenByB.version, { name: 'from b' }), { code: 'PRECONDITION_FAILED' })
      t.equal((await b.get(item.id))?.name, 'from a')
    })

    t.test('20 concurrent writes at one version: exactly one wins, the others get 412', async (t) => {
      const where = await adapter.fresh()
      const stores = [(await open(t, where)).store, (await open(t, where)).store]
      const item = await stores[0]!.create({ name: 'contended' })
      const outcomes = await Promise.allSettled(Array.from({ length: 20 }, (_, i) =>
        stores[i % 2]!.update(item.id, item.version, { name: `writer ${i}` })))
      const won = outcomes.filter((o) => o.status === 'fulfilled')
      t.equal(won.length, 1)
      t.ok(outcomes.every((o) => o.status === 'fulfilled' || (o.reason as AppError).code === 'PRECONDITION_FAILED'))
      t.equal((await stores[1]!.get(item.id))?.version, 2)
    })

    t.test('pages walk every item once in creation order, across deletions', async (t) => {
      const s = await store(t)
      const ids: string[] = []
      for (let i = 0; i < 10; i++) ids.push((await s.create({ name: `item ${i}` })).id)
      const first = await s.list(4)
      t.same(first.items.map((i) => i.id), ids.slice(0, 4))
      t.type(first.nextCursor, 'string')
      await s.delete(ids[4]!) // the next page's first item disappears between requests
      const second = await s.list(4, first.nextCursor!)
      t.same(second.items.map((i) => i.id), ids.slice(5, 9))
      const last = await s.list(4, second.nextCursor!)
      t.same(last.items.map((i) => i.id), ids.slice(9))
      t.equal(last.nextCursor, null)
      t.same(await s.list(10, encodeCursor(10_000)), { items: [], nextCursor: null }, 'a cursor past the end gives an empty last page')
    })

    t.test('a cursor this store did not issue is a 400 VALIDATION error naming the cursor', async (t) => {
      const s = await store(t)
      for (const bad of ['!!', 'abc', encodeCursor(1) + '=', Buffer.from('0').toString('base64url'), Buffer.from('-1').toString('base64url'), Buffer.from('1e3').toString('base64url'), Buffer.from('99999999999999999').toString('base64url')]) {
        const err = await s.list(5, bad).then(() => undefined, (e: unknown) => e)
        t.ok(err instanceof AppError, bad)
        t.match(err, { code: 'VALIDATION', statusCode: 400, errors: [{ path: '/querystring/cursor' }] })
      }
    })

    t.test('the migrations run once per database and are recorded there; reopening keeps the rows', async (t) => {
      const where = await adapter.fresh()
      const first = await open(t, where)
      const item = await first.store.create({ name: 'kept' })
      await closeDatabase(first.database)
      const again = await open(t, where)
      t.same(await again.store.get(item.id), item)
      const history = again.database.kind === 'postgres'
        ? (await again.database.postgres.query<{ name: string }>({ text: 'SELECT name FROM items_migration' })).rows
        : again.database.sqlite.prepare('SELECT name FROM items_migration').all() as Array<{ name: string }>
      t.same(history.map((r) => r.name), ['0001-create-items'])
    })
  })
}

t.test('SQLite: a database file is created with its directory, the schema and WAL mode', async (t) => {
  const file = join(tempDir(), 'nested', 'dir', 'keel.db')
  const { database, store } = await open(t, { file })
  const item = await store.create({ name: 'first' })
  await closeDatabase(database)
  t.ok(existsSync(file))
  const db = new DatabaseSync(file)
  t.teardown(() => db.close())
  t.equal((db.prepare('PRAGMA journal_mode').get() as { journal_mode: string }).journal_mode, 'wal')
  t.equal((db.prepare('SELECT name FROM items WHERE id = ?').get(item.id) as { name: string }).name, 'first')
})

t.test('SQLite: a file written before migrations existed keeps its items', async (t) => {
  const file = join(tempDir(), 'keel.db')
  const old = new DatabaseSync(file)
  // The table as earlier versions created it at start-up, with no migration history.
  old.exec(`CREATE TABLE items (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]', version INTEGER NOT NULL DEFAULT 1, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL) STRICT`)
  old.prepare('INSERT INTO items (id, name, tags, version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)').run('old-id', 'old', '["t"]', 3, 1000, 2000)
  old.close()
  const { store } = await open(t, { file })
  t.same(await store.get('old-id'), { id: 'old-id', name: 'old', tags: ['t'], version: 3, createdAt: 1000, updatedAt: 2000 })
})

// A process that opens the items store on `file` once it reads "go" on stdin, then prints the outcome.
const OPEN_ON_GO = `
  import { once } from 'node:events'
  import pino from 'pino'
  import { openDatabase } from './core/database.ts'
  import { openItemsStore } from './resources/items/store-plugin.ts'
  const [file] = process.argv.slice(1)
  // What the migration loads on first use, loaded now: after "go", the processes race on the file alone.
  await Promise.all([import('kysely'), import('kysely/migration'), import('./core/sqlite-dialect.ts')])
  console.log('ready')
  await once(process.stdin, 'data')
  process.stdin.destroy()
  const database = await openDatabase({ url: undefined, file, poolMax: 1, statementTimeoutMs: 1000, connectTimeoutMs: 1000 }, pino({ level: 'silent' }))
  const applied = await openItemsStore(database, pino({ level: 'info' })).then(() => 'opened', (err) => 'failed: ' + err.message)
  console.log(applied)
`

t.test('SQLite: four processes opening a new file at the same moment all succeed; the migration is applied once', async (t) => {
  const file = join(tempDir(), 'keel.db')
  const children = Array.from({ length: 4 }, () => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', OPEN_ON_GO, file], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] })
    t.teardown(() => { child.kill() })
    let out = ''
    child.stdout.on('data', (c: Buffer) => { out += c.toString() })
    return { child, output: () => out }
  })
  // Released together once every process has loaded its code: the opens really overlap.
  await Promise.all(children.map(async ({ output }) => { await until(() => output().includes('ready'), 60_000, 'a process to load') }))
  for (const { child } of children) child.stdin.write('go\n')
  await Promise.all(children.map(async ({ child }) => { if (child.exitCode === null) await once(child, 'exit') }))
  const outputs = children.map(({ output }) => output())
  t.same(outputs.filter((o) => !o.includes('opened')), [], 'every process opened the store')
  t.equal(outputs.filter((o) => o.includes('items: database migrations applied')).length, 1, 'one applied the migration; the others waited for it and found it done')
  const db = new DatabaseSync(file)
  t.teardown(() => db.close())
  t.same(db.prepare('SELECT name FROM items_migration').all().map((r) => r.name), ['0001-create-items'])
})

t.test('closing the database twice is harmless', async (t) => {
  const database = await openDatabase(defaults, log)
  await closeDatabase(database)
  await closeDatabase(database)
  t.pass()
})
