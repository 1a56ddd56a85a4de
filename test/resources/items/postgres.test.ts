// /api/v1/items on PostgreSQL (DATABASE_URL) with several instances: what one writes another reads with
// the same ETag, concurrent If-Match writes across instances let exactly one through, changes reach
// watchers on every instance through Redis, instances starting together migrate once, and a database
// outage costs item requests a prompt 503 — nothing else — until the database is back, without a restart.

import t from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { build, listen } from '../../helpers/app.ts'
import { testToken } from '../../helpers/tokens.ts'
import { openSocket } from '../../helpers/ws.ts'
import { until } from '../../helpers/until.ts'
import { redisSkipReason, startRedis } from '../../helpers/redis.ts'
import { postgresSkipReason, startPostgres, type TestPostgres } from '../../helpers/postgres.ts'

const ITEMS = '/api/v1/items'
const writer = { authorization: `Bearer ${testToken({ sub: 'writer', scope: 'items:write' })}` }
const skip = postgresSkipReason()

let server: Promise<TestPostgres> | undefined
const postgres = async () => await (server ??= startPostgres(t))

async function create (app: FastifyInstance, name: string): Promise<LightMyRequestResponse> {
  const res = await app.inject({ method: 'POST', url: ITEMS, headers: writer, payload: { name } })
  if (res.statusCode !== 201) throw new Error(`create failed: ${res.statusCode} ${res.body}`)
  return res
}

t.test('two instances on one PostgreSQL and one Redis: one item, one ETag, one winner, one feed', { skip: skip || redisSkipReason() }, async (t) => {
  const env = { DATABASE_URL: await (await postgres()).createDatabase(), REDIS_URL: (await startRedis(t)).url }
  const a = await listen(t, env)
  const b = await listen(t, env)

  const created = await create(a.app, 'shared')
  const url = String(created.headers.location)
  const readOnB = await b.app.inject({ url })
  t.equal(readOnB.statusCode, 200)
  t.equal(readOnB.headers.etag, created.headers.etag, 'B serves the ETag A issued')
  t.same(readOnB.json(), created.json())

  const watcher = await openSocket(t, b, { sub: 'watcher' })
  t.match(await watcher.request('room:join', { room: 'items' }), { event: 'ack' })

  const puts = await Promise.all(Array.from({ length: 20 }, async (_, i) => await (i % 2 === 0 ? a : b).app.inject({
    method: 'PUT', url, headers: { ...writer, 'if-match': String(created.headers.etag) }, payload: { name: `writer ${i}` }
  })))
  const statuses = puts.map((r) => r.statusCode)
  t.equal(statuses.filter((s) => s === 200).length, 1, 'exactly one 200')
  t.equal(statuses.filter((s) => s === 412).length, 19, 'nineteen 412')
  const winner = puts.find((r) => r.statusCode === 200)!
  t.equal(winner.headers.etag, '"v2"')
  t.equal((await a.app.inject({ url })).headers.etag, '"v2"', 'A sees the winner\'s version too')

  const event = await watcher.next((m) => m.event === 'items:changed' && m.data.op === 'updated')
  t.match(event.data, { id: created.json().id, op: 'updated', room: 'items' }, 'a watcher on B hears of the change, wherever it was made')
})

t.test('two instances starting at once on an empty database both come up; the migration runs once', { skip }, async (t) => {
  const pg = await postgres()
  const env = { DATABASE_URL: await pg.createDatabase() }
  const [a, b] = await Promise.all([build(t, env), build(t, env)])
  const applied = [a, b].filter((i) => i.logs.text().includes('items: database migrations applied'))
  t.equal(applied.length, 1, 'one instance applied the migrations, the other found nothing to do')
  const database = new URL(env.DATABASE_URL).pathname.slice(1)
  const history = await pg.admin('SELECT name FROM items_migration', database)
  t.same(history.rows.map((r) => r.name), ['0001-create-items'])
  const created = await create(a.app, 'after start')
  t.equal((await b.app.inject({ url: String(created.headers.location) })).statusCode, 200)
})

t.test('PostgreSQL stopped mid-traffic: item requests get a prompt 503, the rest keeps working, and items come back by themselves', { skip }, async (t) => {
  const pg = await postgres()
  const timeouts = { DATABASE_STATEMENT_TIMEOUT_MS: '1000', DATABASE_CONNECT_TIMEOUT_MS: '1000' }
  const { app, logs } = await build(t, { DATABASE_URL: await pg.createDatabase(), ...timeouts })
  const url = String((await create(app, 'survivor')).headers.location)

  // Four clients reading in a loop while the server goes down: each request either made it or got 503,
  // none hangs or fails otherwise. Each loop ends at its first 503 after the stop (bounded regardless).
  const statuses: number[] = []
  let stopped = false
  const client = async () => {
    for (let i = 0; i < 1000; i++) {
      const { statusCode } = await app.inject({ url })
      statuses.push(statusCode)
      if (stopped && statusCode === 503) return
    }
  }
  const traffic = Promise.all([client(), client(), client(), client()])
  await until(() => statuses.length >= 20, 10_000, 'traffic before the stop')
  await pg.stop()
  stopped = true
  await traffic
  t.ok(statuses.includes(200) && statuses.includes(503), 'reads succeeded before the stop and were refused after it')
  t.same(statuses.filter((s) => s !== 200 && s !== 503), [], 'every answer was 200 or 503')

  for (const request of [{ url }, { url: ITEMS }, { method: 'POST' as const, url: ITEMS, headers: writer, payload: { name: 'x' } }]) {
    const started = Date.now()
    const res = await app.inject(request)
    const elapsed = Date.now() - started
    t.equal(res.statusCode, 503, `${request.method ?? 'GET'} ${request.url}`)
    t.match(String(res.headers['content-type']), /^application\/problem\+json/)
    t.match(res.json(), { status: 503, code: 'SERVICE_UNAVAILABLE', detail: 'the database is unavailable; try again shortly' })
    t.equal(res.headers['retry-after'], '1')
    t.ok(elapsed < 4000, `answered within the connect + statement timeouts (${elapsed} ms)`)
  }
  t.equal((await app.inject({ url: '/health/live' })).statusCode, 200, 'other routes keep working')
  const ready = await app.inject({ url: '/health/ready' })
  t.equal(ready.statusCode, 503)
  t.match(ready.json().checks.database, { status: 'fail', detail: /PostgreSQL unreachable/ }, 'readiness names the failing check')
  await logs.waitFor(/PostgreSQL unreachable; item requests answer 503/)

  await pg.restart()
  const back = await app.inject({ url })
  t.equal(back.statusCode, 200, 'the item is served again, by the same instance')
  t.equal(back.json().name, 'survivor')
  t.equal((await app.inject({ url: '/health/ready' })).statusCode, 200)
  await logs.waitFor(/PostgreSQL reachable again/)
})
