// The items store on its own: schema on start, file + WAL, cursor pages, and the compare-and-set that
// refuses a stale write — also between two connections to one file (two instances of the server).

import t from 'tap'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { ItemsStore, encodeCursor } from '../../../resources/items/store.ts'
import { AppError } from '../../../core/errors.ts'
import { tempDir } from '../../helpers/app.ts'

function memoryStore (t: { teardown: (fn: () => unknown) => void }): ItemsStore {
  const store = new ItemsStore(':memory:')
  t.teardown(() => store.close())
  return store
}

t.test('a database file is created with its directory, the schema and WAL mode', async (t) => {
  const file = join(tempDir(), 'nested', 'dir', 'keel.db')
  const store = new ItemsStore(file)
  const item = store.create({ name: 'first' })
  store.close()
  t.ok(existsSync(file))
  const db = new DatabaseSync(file)
  t.teardown(() => db.close())
  t.equal((db.prepare('PRAGMA journal_mode').get() as { journal_mode: string }).journal_mode, 'wal')
  t.equal((db.prepare('SELECT name FROM items WHERE id = ?').get(item.id) as { name: string }).name, 'first')
  const reopened = new ItemsStore(file)
  t.teardown(() => reopened.close())
  t.same(reopened.get(item.id), item, 'opening an existing file keeps its rows')
})

t.test('create, get, update and delete', async (t) => {
  const store = memoryStore(t)
  const created = store.create({ name: 'a', tags: ['x', 'y'] })
  t.match(created, { name: 'a', tags: ['x', 'y'], version: 1 })
  t.match(created.id, /^[0-9a-f-]{36}$/)
  t.equal(created.createdAt, created.updatedAt)
  t.same(store.get(created.id), created)
  t.equal(store.get('nope'), undefined)

  const updated = store.update(created.id, 1, { name: 'b' })
  t.match(updated, { id: created.id, name: 'b', tags: [], version: 2, createdAt: created.createdAt })
  t.ok(updated.updatedAt >= created.updatedAt)

  store.delete(created.id, 2)
  t.equal(store.get(created.id), undefined)
})

t.test('a write at a stale version is refused with 412; an unknown id with 404', async (t) => {
  const store = memoryStore(t)
  const item = store.create({ name: 'a' })
  store.update(item.id, 1, { name: 'b' })
  t.throws(() => store.update(item.id, 1, { name: 'c' }), { code: 'PRECONDITION_FAILED', statusCode: 412 })
  t.throws(() => store.delete(item.id, 1), { code: 'PRECONDITION_FAILED' })
  t.equal(store.get(item.id)?.name, 'b', 'the stale writes changed nothing')
  t.throws(() => store.update('missing', 1, { name: 'c' }), { code: 'NOT_FOUND', statusCode: 404 })
  t.throws(() => store.delete('missing'), { code: 'NOT_FOUND' })
  t.throws(() => store.delete('missing', 1), { code: 'NOT_FOUND' })
  store.delete(item.id)
  t.equal(store.get(item.id), undefined, 'delete without a version is unconditional')
})

t.test('two connections to one file: the second writer with the old version gets 412 (no lost update)', async (t) => {
  const file = join(tempDir(), 'keel.db')
  const a = new ItemsStore(file)
  const b = new ItemsStore(file)
  t.teardown(() => { a.close(); b.close() })
  const item = a.create({ name: 'shared' })
  const seenByB = b.get(item.id)!
  a.update(item.id, item.version, { name: 'from a' })
  t.throws(() => b.update(item.id, seenByB.version, { name: 'from b' }), { code: 'PRECONDITION_FAILED' })
  t.equal(b.get(item.id)?.name, 'from a')
})

t.test('pages walk every item once in creation order, across deletions', async (t) => {
  const store = memoryStore(t)
  const ids = Array.from({ length: 10 }, (_, i) => store.create({ name: `item ${i}` }).id)
  const first = store.list(4)
  t.same(first.items.map((i) => i.id), ids.slice(0, 4))
  t.type(first.nextCursor, 'string')
  store.delete(ids[4]!) // the next page's first item disappears between requests
  const second = store.list(4, first.nextCursor!)
  t.same(second.items.map((i) => i.id), ids.slice(5, 9))
  const last = store.list(4, second.nextCursor!)
  t.same(last.items.map((i) => i.id), ids.slice(9))
  t.equal(last.nextCursor, null)
  t.same(store.list(10, encodeCursor(10_000)), { items: [], nextCursor: null }, 'a cursor past the end gives an empty last page')
})

t.test('a cursor this store did not issue is a 400 VALIDATION error naming the cursor', async (t) => {
  const store = memoryStore(t)
  for (const bad of ['!!', 'abc', encodeCursor(1) + '=', Buffer.from('0').toString('base64url'), Buffer.from('-1').toString('base64url'), Buffer.from('1e3').toString('base64url'), Buffer.from('99999999999999999').toString('base64url')]) {
    try {
      store.list(5, bad)
      t.fail(`accepted ${bad}`)
    } catch (err) {
      t.ok(err instanceof AppError, bad)
      t.match(err, { code: 'VALIDATION', statusCode: 400, errors: [{ path: '/querystring/cursor' }] })
    }
  }
})

t.test('close is idempotent', async (t) => {
  const store = new ItemsStore(':memory:')
  store.close()
  store.close()
  t.pass()
})
