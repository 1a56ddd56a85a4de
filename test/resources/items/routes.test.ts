// /api/v1/items as the README promises it: ETags and 304s for GET and HEAD, If-Match on writes
// (428 / 412 / 200 + new ETag, no lost update), persistence across restarts, validation as
// problem+json, cursor pagination, and an `items:changed` event per change.

import t, { type Test } from 'tap'
import { join } from 'node:path'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { build, listen, tempDir } from '../../helpers/app.ts'
import { testToken } from '../../helpers/tokens.ts'
import { h1request, h2request, h2session } from '../../helpers/http.ts'

const ITEMS = '/api/v1/items'
const writer = (sub = 'writer-1') => ({ authorization: `Bearer ${testToken({ sub, scope: 'items:write' })}` })

async function create (app: FastifyInstance, body: Record<string, unknown> = { name: 'an item' }): Promise<LightMyRequestResponse> {
  const res = await app.inject({ method: 'POST', url: ITEMS, headers: writer(), payload: body })
  if (res.statusCode !== 201) throw new Error(`create failed: ${res.statusCode} ${res.body}`)
  return res
}

function assertProblem (t: Test, res: LightMyRequestResponse, status: number, code: string): Record<string, unknown> {
  t.equal(res.statusCode, status)
  t.match(String(res.headers['content-type']), /^application\/problem\+json/)
  const problem = res.json() as Record<string, unknown>
  t.match(problem, { status, code, type: String, title: String, detail: String, instance: String })
  return problem
}

t.test('POST with scope items:write → 201 with Location, a strong ETag and the item', async (t) => {
  const { app } = await build(t)
  const res = await create(app, { name: 'first', tags: ['a', 'b'] })
  const item = res.json()
  t.match(item, { id: String, name: 'first', tags: ['a', 'b'], version: 1, createdAt: String, updatedAt: String })
  t.equal(res.headers.location, `${ITEMS}/${item.id}`)
  t.equal(res.headers.etag, '"v1"')
  const read = await app.inject({ url: String(res.headers.location) })
  t.equal(read.statusCode, 200)
  t.same(read.json(), item)
})

t.test('writes need a token with scope items:write: 401 without one, 403 without the scope', async (t) => {
  const { app } = await build(t)
  const anonymous = await app.inject({ method: 'POST', url: ITEMS, payload: { name: 'x' } })
  assertProblem(t, anonymous, 401, 'UNAUTHORIZED')
  t.match(anonymous.headers['www-authenticate'], /^Bearer/)
  const reader = await app.inject({ method: 'POST', url: ITEMS, payload: { name: 'x' }, headers: { authorization: `Bearer ${testToken({ scope: 'items:read' })}` } })
  assertProblem(t, reader, 403, 'FORBIDDEN')
  const item = (await create(app)).json()
  const put = await app.inject({ method: 'PUT', url: `${ITEMS}/${item.id}`, payload: { name: 'y' }, headers: { 'if-match': '"v1"' } })
  t.equal(put.statusCode, 401)
  const del = await app.inject({ method: 'DELETE', url: `${ITEMS}/${item.id}` })
  t.equal(del.statusCode, 401)
})

t.test('GET an item → ETag and Last-Modified; If-None-Match → 304 without a body, for GET and HEAD', async (t) => {
  const { app } = await build(t)
  const created = (await create(app)).json()
  const url = `${ITEMS}/${created.id}`
  const res = await app.inject({ url })
  t.equal(res.headers.etag, '"v1"')
  t.equal(res.headers['last-modified'], new Date(created.updatedAt).toUTCString())
  t.equal(res.headers['cache-control'], 'public, no-cache')
  for (const method of ['GET', 'HEAD'] as const) {
    const cached = await app.inject({ method, url, headers: { 'if-none-match': '"v1"' } })
    t.equal(cached.statusCode, 304, method)
    t.equal(cached.body, '')
    t.equal(cached.headers.etag, '"v1"')
    t.equal(cached.headers['content-length'], undefined, `${method}: a 304 states no length`)
    const since = await app.inject({ method, url, headers: { 'if-modified-since': String(res.headers['last-modified']) } })
    t.equal(since.statusCode, 304, `${method} If-Modified-Since`)
  }
  const other = await app.inject({ url, headers: { 'if-none-match': '"v0"' } })
  t.equal(other.statusCode, 200)
})

t.test('GET the list → Cache-Control and a weak ETag; If-None-Match → 304 for GET and HEAD until the list changes', async (t) => {
  const { app } = await build(t)
  await create(app)
  const res = await app.inject({ url: ITEMS })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['cache-control'], 'public, no-cache')
  const etag = String(res.headers.etag)
  t.match(etag, /^W\/"/)
  for (const method of ['GET', 'HEAD'] as const) {
    const cached = await app.inject({ method, url: ITEMS, headers: { 'if-none-match': etag } })
    t.equal(cached.statusCode, 304, method)
    t.equal(cached.body, '')
  }
  await create(app, { name: 'another' })
  const changed = await app.inject({ url: ITEMS, headers: { 'if-none-match': etag } })
  t.equal(changed.statusCode, 200, 'a new item changes the list\'s tag')
  t.not(changed.headers.etag, etag)
})

t.test('304s over real sockets: HTTP/2 and HTTP/1.1, GET and HEAD, list and item', async (t) => {
  const { app, url, ca } = await listen(t)
  const created = (await create(app)).json()
  const session = await h2session(url, { ca })
  t.teardown(() => session.close())
  for (const path of [ITEMS, `${ITEMS}/${created.id}`]) {
    const first = await h2request(session, path)
    t.equal(first.status, 200)
    const etag = String(first.headers.etag)
    for (const method of ['GET', 'HEAD']) {
      const h2 = await h2request(session, path, { ':method': method, 'if-none-match': etag })
      t.equal(h2.status, 304, `h2 ${method} ${path}`)
      t.equal(h2.body, '')
      const h1 = await h1request(`${url}${path}`, { ca, method, headers: { 'if-none-match': etag } })
      t.equal(h1.status, 304, `h1 ${method} ${path}`)
      t.equal(h1.body, '')
    }
  }
})

t.test('PUT without If-Match → 428; with a stale one → 412; with the current one → 200 and a new ETag', async (t) => {
  const { app } = await build(t)
  const created = (await create(app, { name: 'v1' })).json()
  const url = `${ITEMS}/${created.id}`
  assertProblem(t, await app.inject({ method: 'PUT', url, headers: writer(), payload: { name: 'v2' } }), 428, 'PRECONDITION_REQUIRED')
  assertProblem(t, await app.inject({ method: 'PUT', url, headers: { ...writer(), 'if-match': '"v0"' }, payload: { name: 'v2' } }), 412, 'PRECONDITION_FAILED')
  assertProblem(t, await app.inject({ method: 'PUT', url, headers: { ...writer(), 'if-match': 'W/"v1"' }, payload: { name: 'v2' } }), 412, 'PRECONDITION_FAILED')
  const ok = await app.inject({ method: 'PUT', url, headers: { ...writer(), 'if-match': '"v1"' }, payload: { name: 'v2', tags: ['t'] } })
  t.equal(ok.statusCode, 200)
  t.equal(ok.headers.etag, '"v2"')
  t.match(ok.json(), { id: created.id, name: 'v2', tags: ['t'], version: 2 })
  t.equal((await app.inject({ url })).headers.etag, '"v2"')
  t.equal((await app.inject({ method: 'PUT', url, headers: { ...writer(), 'if-match': '*' }, payload: { name: 'v3' } })).statusCode, 200, 'If-Match: * passes while the item exists')
})

t.test('a second writer with the old ETag → 412 (no lost update)', async (t) => {
  const { app } = await build(t)
  const created = (await create(app, { name: 'shared' })).json()
  const url = `${ITEMS}/${created.id}`
  const etag = String((await app.inject({ url })).headers.etag)
  const first = await app.inject({ method: 'PUT', url, headers: { ...writer('alice'), 'if-match': etag }, payload: { name: 'alice was here' } })
  t.equal(first.statusCode, 200)
  const second = await app.inject({ method: 'PUT', url, headers: { ...writer('bob'), 'if-match': etag }, payload: { name: 'bob was here' } })
  assertProblem(t, second, 412, 'PRECONDITION_FAILED')
  t.equal((await app.inject({ url })).json().name, 'alice was here')
})

t.test('DELETE → 204; honours If-Match when sent; unknown id → 404', async (t) => {
  const { app } = await build(t)
  const created = (await create(app)).json()
  const url = `${ITEMS}/${created.id}`
  assertProblem(t, await app.inject({ method: 'DELETE', url, headers: { ...writer(), 'if-match': '"v9"' } }), 412, 'PRECONDITION_FAILED')
  const deleted = await app.inject({ method: 'DELETE', url, headers: { ...writer(), 'if-match': '"v1"' } })
  t.equal(deleted.statusCode, 204)
  t.equal(deleted.body, '')
  assertProblem(t, await app.inject({ url }), 404, 'NOT_FOUND')
  assertProblem(t, await app.inject({ method: 'DELETE', url, headers: writer() }), 404, 'NOT_FOUND')
  assertProblem(t, await app.inject({ method: 'DELETE', url, headers: { ...writer(), 'if-match': '"v1"' } }), 404, 'NOT_FOUND')
  const unconditional = (await create(app)).json()
  t.equal((await app.inject({ method: 'DELETE', url: `${ITEMS}/${unconditional.id}`, headers: writer() })).statusCode, 204, 'without If-Match it just deletes')
})

t.test('DELETE with If-None-Match: * on an existing item → 412, and the item stays', async (t) => {
  const { app } = await build(t)
  const created = (await create(app)).json()
  const url = `${ITEMS}/${created.id}`
  for (const ifNoneMatch of ['*', '"v1"', 'W/"v1"', '"v0", "v1"']) {
    assertProblem(t, await app.inject({ method: 'DELETE', url, headers: { ...writer(), 'if-none-match': ifNoneMatch } }), 412, 'PRECONDITION_FAILED')
  }
  t.equal((await app.inject({ url })).statusCode, 200, 'not deleted')
  t.equal((await app.inject({ method: 'DELETE', url, headers: { ...writer(), 'if-none-match': '"v0"' } })).statusCode, 204, 'a tag that does not match lets it through')
})

t.test('an unknown id → 404 problem+json on GET, HEAD and PUT', async (t) => {
  const { app } = await build(t)
  const url = `${ITEMS}/00000000-0000-4000-8000-000000000000`
  assertProblem(t, await app.inject({ url }), 404, 'NOT_FOUND')
  t.equal((await app.inject({ method: 'HEAD', url })).statusCode, 404)
  assertProblem(t, await app.inject({ method: 'PUT', url, headers: { ...writer(), 'if-match': '"v1"' }, payload: { name: 'x' } }), 404, 'NOT_FOUND')
})

t.test('an item survives a restart of the server with the same DATABASE_FILE', async (t) => {
  const env = { DATABASE_FILE: join(tempDir(), 'data', 'keel.db') }
  const first = await build(t, env)
  const created = await create(first.app, { name: 'durable', tags: ['kept'] })
  await first.app.close()
  const second = await build(t, env)
  const read = await second.app.inject({ url: String(created.headers.location) })
  t.equal(read.statusCode, 200)
  t.same(read.json(), created.json())
  t.equal(read.headers.etag, created.headers.etag)
})

t.test('invalid bodies → 400 problem+json with errors: unknown fields, wrong types, too-long names', async (t) => {
  const { app } = await build(t)
  const cases: Array<[string, unknown, string]> = [
    ['an unknown field', { name: 'x', colour: 'red' }, '/body/colour'],
    ['a number as name (never coerced to a string)', { name: 42 }, '/body/name'],
    ['an array as name', { name: ['x'] }, '/body/name'],
    ['a string as tags', { name: 'x', tags: 'a' }, '/body/tags'],
    ['a name over 200 characters', { name: 'n'.repeat(201) }, '/body/name'],
    ['an empty name', { name: '' }, '/body/name'],
    ['no name', { tags: [] }, '/body/name'],
    ['an empty tag', { name: 'x', tags: [''] }, '/body/tags/0'],
    ['a tag over 50 characters', { name: 'x', tags: ['t'.repeat(51)] }, '/body/tags/0'],
    ['more than 20 tags', { name: 'x', tags: Array.from({ length: 21 }, (_, i) => `t${i}`) }, '/body/tags'],
    ['repeated tags', { name: 'x', tags: ['a', 'a'] }, '/body/tags'],
    ['not an object', ['x'], '/body']
  ]
  for (const [what, payload, path] of cases) {
    const res = await app.inject({ method: 'POST', url: ITEMS, headers: writer(), payload: payload as Record<string, unknown> })
    await t.test(what, async (t) => {
      const body = assertProblem(t, res, 400, 'VALIDATION')
      t.ok((body.errors as Array<{ path: string }>).some((e) => e.path === path), `errors name ${path}: ${JSON.stringify(body.errors)}`)
    })
  }
  t.equal((await app.inject({ method: 'POST', url: ITEMS, headers: writer(), payload: { name: 'n'.repeat(200), tags: Array.from({ length: 20 }, (_, i) => `${i}`.padEnd(50, 'x')) } })).statusCode,
    201, 'the limits themselves are accepted')
})

t.test('malformed JSON → 400; wrong content type → 415; oversized body → 413', async (t) => {
  const { app } = await build(t)
  const json = { ...writer(), 'content-type': 'application/json' }
  assertProblem(t, await app.inject({ method: 'POST', url: ITEMS, headers: json, payload: '{"name":' }), 400, 'MALFORMED_JSON')
  for (const type of ['text/plain', 'application/xml', 'application/x-www-form-urlencoded']) {
    assertProblem(t, await app.inject({ method: 'POST', url: ITEMS, headers: { ...writer(), 'content-type': type }, payload: 'name=x' }), 415, 'UNSUPPORTED_MEDIA_TYPE')
  }
  const huge = JSON.stringify({ name: 'x', tags: ['a'], padding: ' '.repeat(20_000) })
  assertProblem(t, await app.inject({ method: 'POST', url: ITEMS, headers: json, payload: huge }), 413, 'PAYLOAD_TOO_LARGE')
  const created = (await create(app)).json()
  assertProblem(t, await app.inject({ method: 'PUT', url: `${ITEMS}/${created.id}`, headers: { ...json, 'if-match': '"v1"' }, payload: huge }), 413, 'PAYLOAD_TOO_LARGE')
})

t.test('limit outside 1–100 or not an integer → 400; a cursor this API did not issue → 400', async (t) => {
  const { app } = await build(t)
  for (const limit of ['0', '101', '-1', '2.5', 'ten']) {
    const problem = assertProblem(t, await app.inject({ url: `${ITEMS}?limit=${limit}` }), 400, 'VALIDATION')
    t.match(problem.errors, [{ path: '/querystring/limit' }], `limit=${limit}`)
  }
  t.equal((await app.inject({ url: `${ITEMS}?limit=100` })).statusCode, 200)
  for (const cursor of ['nope!', 'MA', 'x'.repeat(65)]) {
    const problem = assertProblem(t, await app.inject({ url: `${ITEMS}?cursor=${cursor}` }), 400, 'VALIDATION')
    t.match(problem.errors, [{ path: '/querystring/cursor' }], `cursor=${cursor}`)
  }
})

t.test('cursor pagination walks every item exactly once, 20 per page by default', async (t) => {
  const { app } = await build(t)
  const ids: string[] = []
  for (let i = 0; i < 47; i++) ids.push((await create(app, { name: `item ${i}` })).json().id)
  const firstPage = (await app.inject({ url: ITEMS })).json()
  t.equal(firstPage.items.length, 20, 'default limit')
  const seen: string[] = []
  let cursor: string | null = null
  for (let page = 0; page < 20; page++) { // bounded: 47 items / 7 per page = 7 pages
    const res: LightMyRequestResponse = await app.inject({ url: `${ITEMS}?limit=7${cursor === null ? '' : `&cursor=${cursor}`}` })
    t.equal(res.statusCode, 200)
    const body = res.json() as { items: Array<{ id: string }>, nextCursor: string | null }
    seen.push(...body.items.map((i) => i.id))
    cursor = body.nextCursor
    if (cursor === null) break
  }
  t.equal(cursor, null, 'the walk ended')
  t.same(seen, ids, 'every item once, in creation order')
})

t.test('every change is published as items:changed {id, op}', async (t) => {
  const { app } = await build(t)
  const events: unknown[] = []
  const off = app.domainEvents.on('items:changed', (e) => events.push(e))
  t.teardown(off)
  const created = (await create(app)).json()
  const url = `${ITEMS}/${created.id}`
  await app.inject({ method: 'PUT', url, headers: { ...writer(), 'if-match': '"v1"' }, payload: { name: 'changed' } })
  await app.inject({ method: 'PUT', url, headers: { ...writer(), 'if-match': '"v1"' }, payload: { name: 'stale' } })
  await app.inject({ method: 'DELETE', url, headers: writer() })
  t.same(events, [
    { id: created.id, op: 'created' },
    { id: created.id, op: 'updated' },
    { id: created.id, op: 'deleted' }
  ], 'one event per change, none for a refused write')
})

t.test('ETags stay correct under compression: the item\'s tag names its coding, and If-Match / If-None-Match accept it', async (t) => {
  const { app } = await build(t)
  // Over the 1 KiB threshold: a 200-character name and 20 tags of 40.
  const body = { name: 'n'.repeat(200), tags: Array.from({ length: 20 }, (_, i) => `tag-${i}`.padEnd(40, '.')) }
  const created = (await create(app, body)).json()
  const url = `${ITEMS}/${created.id}`
  const identity = await app.inject({ url, headers: { 'accept-encoding': 'identity' } })
  t.equal(identity.headers.etag, '"v1"')
  const tags: string[] = []
  for (const coding of ['gzip', 'br', 'deflate']) {
    const res = await app.inject({ url, headers: { 'accept-encoding': coding } })
    t.equal(res.headers['content-encoding'], coding, `${coding} body`)
    t.equal(res.headers.etag, `"v1-${coding}"`, 'a strong tag per coding')
    tags.push(String(res.headers.etag))
    const cached = await app.inject({ url, headers: { 'accept-encoding': coding, 'if-none-match': String(res.headers.etag) } })
    t.equal(cached.statusCode, 304)
    t.equal(cached.headers.etag, res.headers.etag, 'the 304 names the tag the client holds')
  }
  const put = await app.inject({ method: 'PUT', url, headers: { ...writer(), 'if-match': tags[0]!, 'accept-encoding': 'gzip' }, payload: body })
  t.equal(put.statusCode, 200, 'If-Match with the compressed body\'s tag passes')
  t.equal(put.headers.etag, '"v2-gzip"')
  const stale = await app.inject({ method: 'PUT', url, headers: { ...writer(), 'if-match': tags[1]! }, payload: body })
  t.equal(stale.statusCode, 412, 'and goes stale like any other tag of that version')
})
