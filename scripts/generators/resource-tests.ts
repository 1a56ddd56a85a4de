// Templates of a resource's tests, modelled on the example resource's: the HTTP contract (CRUD with
// ETags, 428/412, scopes, validation, pagination, OpenAPI), the store against both adapters
// (PostgreSQL skipped with a printed reason where its binaries are absent), the app on PostgreSQL with
// its migration, and the room receiving changes over a real WebSocket.

import { withArticle } from './names.ts'
import { identifiers, type ResourceModel } from './resource-model.ts'
import { literal, sampleBody, storeForm, wrongType } from './samples.ts'

const samples = (m: ResourceModel) => ({ a: literal(sampleBody(m.fields, 0)), b: literal(sampleBody(m.fields, 1)) })

function routesTestHead (m: ResourceModel): string {
  const id = identifiers(m)
  const { a } = samples(m)
  return `// ${id.path} as generated: ETags and 304s, If-Match on writes (428 / 412 / 200 + new ETag), scopes,
// validation as problem+json, cursor pagination, and its place in the OpenAPI document.

import t, { type Test } from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { build } from '../../helpers/app.ts'
import { testToken } from '../../helpers/tokens.ts'

const PATH = '${id.path}'
const writer = (sub = 'writer-1') => ({ authorization: \`Bearer \${testToken({ sub, scope: '${id.writeScope}' })}\` })
const SAMPLE = ${a}

async function create (app: FastifyInstance, body: Record<string, unknown> = SAMPLE): Promise<LightMyRequestResponse> {
  const res = await app.inject({ method: 'POST', url: PATH, headers: writer(), payload: body })
  if (res.statusCode !== 201) throw new Error(\`create failed: \${res.statusCode} \${res.body}\`)
  return res
}

function assertProblem (t: Test, res: LightMyRequestResponse, status: number, code: string): Record<string, unknown> {
  t.equal(res.statusCode, status)
  t.match(String(res.headers['content-type']), /^application\\/problem\\+json/)
  const problem = res.json() as Record<string, unknown>
  t.match(problem, { status, code, type: String, title: String, detail: String, instance: String })
  return problem
}
`
}

function routesTestCrud (m: ResourceModel): string {
  const id = identifiers(m)
  const { b } = samples(m)
  return `
t.test('POST with scope ${id.writeScope} → 201 with Location, a strong ETag and the ${m.one.prose}; GET reads it back', async (t) => {
  const { app } = await build(t)
  const res = await create(app)
  const record = res.json()
  t.match(record, { ...SAMPLE, id: String, version: 1, createdAt: String, updatedAt: String })
  t.equal(res.headers.location, \`\${PATH}/\${record.id}\`)
  t.equal(res.headers.etag, '"v1"')
  const read = await app.inject({ url: String(res.headers.location) })
  t.equal(read.statusCode, 200)
  t.same(read.json(), record)
})

t.test('writes need a token with scope ${id.writeScope}: 401 without one, 403 without the scope; reads are public', async (t) => {
  const { app } = await build(t)
  const anonymous = await app.inject({ method: 'POST', url: PATH, payload: SAMPLE })
  assertProblem(t, anonymous, 401, 'UNAUTHORIZED')
  const other = { authorization: \`Bearer \${testToken({ scope: '${m.scope}:read' })}\` }
  assertProblem(t, await app.inject({ method: 'POST', url: PATH, payload: SAMPLE, headers: other }), 403, 'FORBIDDEN')
  const record = (await create(app)).json()
  t.equal((await app.inject({ method: 'PUT', url: \`\${PATH}/\${record.id}\`, payload: SAMPLE, headers: { 'if-match': '"v1"' } })).statusCode, 401)
  t.equal((await app.inject({ method: 'DELETE', url: \`\${PATH}/\${record.id}\` })).statusCode, 401)
  t.equal((await app.inject({ url: PATH })).statusCode, 200, 'the list needs no token')
})

t.test('GET → ETag and Last-Modified; If-None-Match → 304 without a body, for GET and HEAD, on the record and the list', async (t) => {
  const { app } = await build(t)
  const created = (await create(app)).json()
  for (const url of [\`\${PATH}/\${created.id}\`, PATH]) {
    const res = await app.inject({ url })
    t.equal(res.headers['cache-control'], 'public, no-cache')
    const etag = String(res.headers.etag)
    for (const method of ['GET', 'HEAD'] as const) {
      const cached = await app.inject({ method, url, headers: { 'if-none-match': etag } })
      t.equal(cached.statusCode, 304, \`\${method} \${url}\`)
      t.equal(cached.body, '')
    }
  }
  t.equal((await app.inject({ url: \`\${PATH}/\${created.id}\` })).headers['last-modified'], new Date(created.updatedAt).toUTCString())
})

t.test('PUT without If-Match → 428; with a stale one → 412; with the current one → 200 and a new ETag', async (t) => {
  const { app } = await build(t)
  const created = (await create(app)).json()
  const url = \`\${PATH}/\${created.id}\`
  const changed = ${b}
  assertProblem(t, await app.inject({ method: 'PUT', url, headers: writer(), payload: changed }), 428, 'PRECONDITION_REQUIRED')
  assertProblem(t, await app.inject({ method: 'PUT', url, headers: { ...writer(), 'if-match': '"v0"' }, payload: changed }), 412, 'PRECONDITION_FAILED')
  const ok = await app.inject({ method: 'PUT', url, headers: { ...writer(), 'if-match': '"v1"' }, payload: changed })
  t.equal(ok.statusCode, 200)
  t.equal(ok.headers.etag, '"v2"')
  t.match(ok.json(), { ...changed, id: created.id, version: 2 })
  assertProblem(t, await app.inject({ method: 'PUT', url, headers: { ...writer('late'), 'if-match': '"v1"' }, payload: SAMPLE }), 412, 'PRECONDITION_FAILED')
  t.match((await app.inject({ url })).json(), changed, 'the stale write changed nothing')
})

t.test('DELETE → 204; honours If-Match when sent; unknown id → 404', async (t) => {
  const { app } = await build(t)
  const created = (await create(app)).json()
  const url = \`\${PATH}/\${created.id}\`
  assertProblem(t, await app.inject({ method: 'DELETE', url, headers: { ...writer(), 'if-match': '"v9"' } }), 412, 'PRECONDITION_FAILED')
  const deleted = await app.inject({ method: 'DELETE', url, headers: { ...writer(), 'if-match': '"v1"' } })
  t.equal(deleted.statusCode, 204)
  assertProblem(t, await app.inject({ url }), 404, 'NOT_FOUND')
  assertProblem(t, await app.inject({ method: 'DELETE', url, headers: writer() }), 404, 'NOT_FOUND')
})
`
}

function routesTestRest (m: ResourceModel): string {
  const id = identifiers(m)
  const required = m.fields.find((f) => !f.optional)
  const cases = [
    "['an unknown field', { ...SAMPLE, notAField: 1 }, '/body/notAField']",
    ...m.fields.map((f) => `['${f.name} of the wrong type', { ...SAMPLE, ${f.name}: ${literal(wrongType(f))} }, '/body/${f.name}']`),
    ...(required === undefined ? [] : [`['no ${required.name}', { ...SAMPLE, ${required.name}: undefined }, '/body/${required.name}']`])
  ]
  return `
t.test('invalid bodies → 400 problem+json naming the field', async (t) => {
  const { app } = await build(t)
  const cases: Array<[string, Record<string, unknown>, string]> = [
${cases.map((c) => `    ${c}`).join(',\n')}
  ]
  for (const [what, payload, path] of cases) {
    const body = assertProblem(t, await app.inject({ method: 'POST', url: PATH, headers: writer(), payload }), 400, 'VALIDATION')
    t.ok((body.errors as Array<{ path: string }>).some((e) => e.path === path), \`\${what}: errors name \${path}\`)
  }
})

t.test('pages walk every ${m.one.prose} once in creation order; a cursor this API did not issue → 400', async (t) => {
  const { app } = await build(t)
  const ids: string[] = []
  for (let i = 0; i < 7; i++) ids.push((await create(app)).json().id)
  const seen: string[] = []
  let cursor: string | null = null
  for (let page = 0; page < 10; page++) { // bounded: 7 records, 3 per page
    const res: LightMyRequestResponse = await app.inject({ url: \`\${PATH}?limit=3\${cursor === null ? '' : \`&cursor=\${cursor}\`}\` })
    const body = res.json() as { ${m.names.camel}: Array<{ id: string }>, nextCursor: string | null }
    seen.push(...body.${m.names.camel}.map((r) => r.id))
    cursor = body.nextCursor
    if (cursor === null) break
  }
  t.same(seen, ids)
  assertProblem(t, await app.inject({ url: \`\${PATH}?cursor=nope!\` }), 400, 'VALIDATION')
})

t.test('the OpenAPI document lists ${id.path} and ${id.path}/{id}, writes under scope ${id.writeScope}', async (t) => {
  const { app } = await build(t)
  const doc = (await app.inject({ url: '/docs/json' })).json() as { paths: Record<string, Record<string, { security?: unknown }>> }
  t.ok(doc.paths[PATH]?.get, 'GET list')
  t.same(doc.paths[PATH]?.post?.security, [{ bearerAuth: ['${id.writeScope}'] }])
  for (const method of ['get', 'put', 'delete']) t.ok(doc.paths[\`\${PATH}/{id}\`]?.[method], method)
})
${m.realtime ? changeEventTest(m) : ''}`
}

function changeEventTest (m: ResourceModel): string {
  const id = identifiers(m)
  return `
t.test('every change is published as ${id.changeEvent} {id, op}', async (t) => {
  const { app } = await build(t)
  const events: unknown[] = []
  t.teardown(app.domainEvents.on('${id.changeEvent}', (e) => events.push(e)))
  const created = (await create(app)).json()
  const url = \`\${PATH}/\${created.id}\`
  await app.inject({ method: 'PUT', url, headers: { ...writer(), 'if-match': '"v1"' }, payload: SAMPLE })
  await app.inject({ method: 'DELETE', url, headers: writer() })
  t.same(events, [{ id: created.id, op: 'created' }, { id: created.id, op: 'updated' }, { id: created.id, op: 'deleted' }])
})
`
}

export function routesTestFile (m: ResourceModel): string {
  return routesTestHead(m) + routesTestCrud(m) + routesTestRest(m)
}

function storeTestHead (m: ResourceModel): string {
  const id = identifiers(m)
  return `// The ${m.names.prose} store on its own, against every adapter — SQLite and PostgreSQL (a real server, skipped
// with a printed reason when its binaries are absent): the schema from the migrations, recorded once;
// cursor pages; the compare-and-set that refuses a stale write.

import t, { type Test } from 'tap'
import { join } from 'node:path'
import pino from 'pino'
import type { FastifyBaseLogger } from 'fastify'
import type { ${id.store} } from '../../../resources/${m.names.kebab}/store.ts'
import { ${id.openStore} } from '../../../resources/${m.names.kebab}/store-plugin.ts'
import { closeDatabase, openDatabase, type Database } from '../../../core/database.ts'
import type { DatabaseConfig } from '../../../core/config.ts'
import { tempDir } from '../../helpers/app.ts'
import { postgresSkipReason, startPostgres, type TestPostgres } from '../../helpers/postgres.ts'

const log = pino({ level: 'silent' }) as FastifyBaseLogger
const defaults: DatabaseConfig = { url: undefined, file: ':memory:', poolMax: 5, statementTimeoutMs: 5000, connectTimeoutMs: 2000 }
const SAMPLE = ${literal(storeForm(m.fields, sampleBody(m.fields, 0)))}
const CHANGED = ${literal(storeForm(m.fields, sampleBody(m.fields, 1)))}

async function open (t: Test, where: Partial<DatabaseConfig>): Promise<{ database: Database, store: ${id.store} }> {
  const database = await openDatabase({ ...defaults, ...where }, log)
  t.teardown(() => closeDatabase(database))
  return { database, store: await ${id.openStore}(database, log) }
}

// One server for the whole file, started on first use; each test gets its own database on it.
let server: Promise<TestPostgres> | undefined
const postgres = async () => await (server ??= startPostgres(t))

const adapters = [
  { name: 'SQLite', skip: false as const, fresh: async (): Promise<Partial<DatabaseConfig>> => ({ file: join(tempDir(), 'data.db') }) },
  { name: 'PostgreSQL', skip: postgresSkipReason(), fresh: async (): Promise<Partial<DatabaseConfig>> => ({ url: await (await postgres()).createDatabase() }) }
]
`
}

function storeTestBody (m: ResourceModel): string {
  const id = identifiers(m)
  return `
for (const adapter of adapters) {
  t.test(\`\${adapter.name} adapter\`, { skip: adapter.skip }, async (t) => {
    t.test('create, get, update and delete', async (t) => {
      const { store } = await open(t, await adapter.fresh())
      const created = await store.create(SAMPLE)
      t.match(created, { ...SAMPLE, version: 1 })
      t.same(await store.get(created.id), created)
      t.equal(await store.get('nope'), undefined)
      const updated = await store.update(created.id, 1, CHANGED)
      t.match(updated, { ...CHANGED, id: created.id, version: 2, createdAt: created.createdAt })
      await store.delete(created.id, 2)
      t.equal(await store.get(created.id), undefined)
    })

    t.test('a write at a stale version is refused with 412; an unknown id with 404', async (t) => {
      const { store } = await open(t, await adapter.fresh())
      const record = await store.create(SAMPLE)
      await store.update(record.id, 1, CHANGED)
      await t.rejects(store.update(record.id, 1, SAMPLE), { code: 'PRECONDITION_FAILED', statusCode: 412 })
      await t.rejects(store.delete(record.id, 1), { code: 'PRECONDITION_FAILED' })
      await t.rejects(store.update('missing', 1, SAMPLE), { code: 'NOT_FOUND', statusCode: 404 })
      await t.rejects(store.delete('missing'), { code: 'NOT_FOUND' })
    })

    t.test('pages walk every record once in creation order', async (t) => {
      const { store } = await open(t, await adapter.fresh())
      const ids: string[] = []
      for (let i = 0; i < 5; i++) ids.push((await store.create(SAMPLE)).id)
      const first = await store.list(3)
      t.same(first.${m.names.camel}.map((r) => r.id), ids.slice(0, 3))
      const last = await store.list(3, first.nextCursor!)
      t.same(last.${m.names.camel}.map((r) => r.id), ids.slice(3))
      t.equal(last.nextCursor, null)
    })

    t.test('the migration runs once per database and is recorded there; reopening keeps the rows', async (t) => {
      const where = await adapter.fresh()
      const first = await open(t, where)
      const record = await first.store.create(SAMPLE)
      await closeDatabase(first.database)
      const again = await open(t, where)
      t.same(await again.store.get(record.id), record)
      const history = again.database.kind === 'postgres'
        ? (await again.database.postgres.query<{ name: string }>({ text: 'SELECT name FROM ${id.table}_migration' })).rows
        : again.database.sqlite.prepare('SELECT name FROM ${id.table}_migration').all() as Array<{ name: string }>
      t.same(history.map((r) => r.name), ['${id.migration}'])
    })
  })
}
`
}

export function storeTestFile (m: ResourceModel): string {
  return storeTestHead(m) + storeTestBody(m)
}

export function postgresTestFile (m: ResourceModel): string {
  const id = identifiers(m)
  const { a, b } = samples(m)
  return `// ${id.path} on PostgreSQL (DATABASE_URL): the app applies the ${m.names.prose} migration at start-up and
// serves the same contract as on SQLite — ETags, If-Match, 412 on a stale write.

import t from 'tap'
import { build } from '../../helpers/app.ts'
import { testToken } from '../../helpers/tokens.ts'
import { postgresSkipReason, startPostgres } from '../../helpers/postgres.ts'

const PATH = '${id.path}'
const writer = { authorization: \`Bearer \${testToken({ sub: 'writer', scope: '${id.writeScope}' })}\` }

t.test('on PostgreSQL the migration runs at start-up and ${m.names.prose} keep their ETags and preconditions', { skip: postgresSkipReason() }, async (t) => {
  const pg = await startPostgres(t)
  const url = await pg.createDatabase()
  const { app, logs } = await build(t, { DATABASE_URL: url })
  t.match(logs.text(), '${id.table}: database migrations applied')
  const history = await pg.admin('SELECT name FROM ${id.table}_migration', new URL(url).pathname.slice(1))
  t.same(history.rows.map((r) => r.name), ['${id.migration}'])

  const created = await app.inject({ method: 'POST', url: PATH, headers: writer, payload: ${a} })
  t.equal(created.statusCode, 201, created.body)
  const location = String(created.headers.location)
  const read = await app.inject({ url: location })
  t.same(read.json(), created.json())
  t.equal(read.headers.etag, '"v1"')
  const put = await app.inject({ method: 'PUT', url: location, headers: { ...writer, 'if-match': '"v1"' }, payload: ${b} })
  t.equal(put.statusCode, 200, put.body)
  t.match(put.json(), ${b})
  const stale = await app.inject({ method: 'PUT', url: location, headers: { ...writer, 'if-match': '"v1"' }, payload: ${a} })
  t.equal(stale.statusCode, 412)
})
`
}

export function realtimeTestFile (m: ResourceModel): string {
  const id = identifiers(m)
  const { a } = samples(m)
  return `// Room \`${id.room}\` over a real WebSocket: any signed-in user may watch it, every change made over HTTP
// reaches its members as \`${id.changeEvent}\`, and clients may not write to it.

import t from 'tap'
import { listen } from '../../helpers/app.ts'
import { testToken } from '../../helpers/tokens.ts'
import { openSocket } from '../../helpers/ws.ts'

t.test('${withArticle(m.one.prose)} created over HTTP reaches a WebSocket member of room ${id.room} as ${id.changeEvent}', async (t) => {
  const server = await listen(t)
  const watcher = await openSocket(t, server, { sub: 'watcher' })
  t.match(await watcher.request('room:join', { room: '${id.room}' }), { event: 'ack', data: { room: '${id.room}', joined: true } })
  const created = await server.app.inject({
    method: 'POST',
    url: '${id.path}',
    headers: { authorization: \`Bearer \${testToken({ sub: 'writer', scope: '${id.writeScope}' })}\` },
    payload: ${a}
  })
  t.equal(created.statusCode, 201)
  const event = await watcher.next((msg) => msg.event === '${id.changeEvent}')
  t.match(event.data, { id: created.json().id, op: 'created', room: '${id.room}', seq: Number })
  t.match(await watcher.request('room:publish', { room: '${id.room}', payload: 1 }), { data: { code: 'FORBIDDEN' } }, 'only the server writes to it')
})
`
}
