// The database core (core/database.ts, core/postgres.ts, core/migrations.ts) as an operator meets it:
// DATABASE_URL's password never shows, a start that cannot use the database or migrate it stops with
// one line and exit 1, the pool stays within DATABASE_POOL_MAX, and a database that stops answering
// costs a request at most the timeouts (503), fails readiness, and is used again once it answers.

import t from 'tap'
import { build, spawnServer, testConfig } from '../helpers/app.ts'
import { startTcpRelay } from '../helpers/tcp-relay.ts'
import { postgresSkipReason, startPostgres, TEST_DB_PASSWORD, TEST_DB_USER, type TestPostgres } from '../helpers/postgres.ts'
import { ConfigError } from '../../core/config.ts'
import { isUnavailable } from '../../core/postgres.ts'
import { testToken } from '../helpers/tokens.ts'
import { itemsSkipReason } from '../helpers/examples.ts'

const skip = postgresSkipReason()
// The migration, pool and timeout tests drive the example resource's store through its routes.
const withItems = skip || itemsSkipReason
let server: Promise<TestPostgres> | undefined
const postgres = async () => await (server ??= startPostgres(t))
const nameOf = (url: string) => new URL(url).pathname.slice(1)

t.test('a DATABASE_URL that does not parse or is not postgres:// is a config error naming it, without its credentials', async (t) => {
  for (const url of ['postgres://keel:s3cret-pw@127.0.0.1:99999/keel', 'mysql://keel:s3cret-pw@127.0.0.1/keel', 'postgres://h/keel?password=s3cret-pw x']) {
    const err = (() => { try { testConfig({ DATABASE_URL: url }) } catch (e) { return e } })()
    t.ok(err instanceof ConfigError, url.replace('s3cret-pw', '…'))
    t.match((err as Error).message, /^invalid configuration: DATABASE_URL /)
    t.notMatch((err as Error).message, 's3cret-pw')
  }
  t.match(testConfig({ DATABASE_URL: 'postgresql://keel:pw@db.internal:5432/keel' }).database, { url: 'postgresql://keel:pw@db.internal:5432/keel', poolMax: 10, statementTimeoutMs: 5000, connectTimeoutMs: 2000 })
  t.equal(testConfig().database.url, undefined, 'unset: the embedded SQLite file')
})

t.test('which failures mean "the database is unavailable" (503) and which are bugs (500)', async (t) => {
  for (const code of ['08006', '28P01', '3D000', '40001', '53300', '57P01', '57014']) t.ok(isUnavailable(Object.assign(new Error('x'), { code })), code)
  for (const code of ['42601', '23505', '22P02']) t.notOk(isUnavailable(Object.assign(new Error('x'), { code })), code)
  t.ok(isUnavailable(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })))
  t.ok(isUnavailable(new Error('timeout exceeded when trying to connect')))
  t.notOk(isUnavailable(new TypeError('a bug')))
})

t.test('DATABASE_URL with a wrong password: one line naming DATABASE_URL, exit 1, and the password in no output', { skip }, async (t) => {
  const pg = await postgres()
  const database = nameOf(await pg.createDatabase())
  const secret = 'wrong-s3cret-password'
  const s = spawnServer(t, { TLS: 'off', LOG_LEVEL: 'trace', DATABASE_URL: pg.urlOf(database, TEST_DB_USER, secret) })
  t.equal(await s.exited, 1)
  const lines = s.output().split('\n').filter((l) => l.includes('DATABASE_URL'))
  t.equal(lines.length, 1, s.output())
  t.match(lines[0], new RegExp(`^keel: cannot start: DATABASE_URL: cannot use PostgreSQL at keel@127\\.0\\.0\\.1:${pg.port}/${database}: password authentication failed for user "keel"$`))
  t.notMatch(s.output(), secret)
})

t.test('a migration that fails stops the start with one line naming it, exit 1', { skip: withItems }, async (t) => {
  const pg = await postgres()
  const url = await pg.createDatabase()
  // An `items` table that is not the migration's: 0001 cannot create its own.
  await pg.admin(`SET ROLE "${TEST_DB_USER}"; CREATE TABLE items (unrelated integer)`, nameOf(url))
  const s = spawnServer(t, { TLS: 'off', DATABASE_URL: url })
  t.equal(await s.exited, 1)
  t.match(s.output(), /^keel: cannot start: items: database migration 0001-create-items failed: relation "items" already exists$/m)
  t.notMatch(s.output(), TEST_DB_PASSWORD)
  const history = await pg.admin('SELECT count(*)::int AS n FROM items_migration', nameOf(url))
  t.equal(history.rows[0].n, 0, 'nothing recorded as applied')
})

t.test('the pool holds at most DATABASE_POOL_MAX connections, whatever the concurrency', { skip: withItems }, async (t) => {
  const pg = await postgres()
  const url = await pg.createDatabase()
  const { app } = await build(t, { DATABASE_URL: url, DATABASE_POOL_MAX: '2' })
  const results = await Promise.all(Array.from({ length: 30 }, async () => await app.inject({ url: '/api/v1/items' })))
  t.ok(results.every((r) => r.statusCode === 200))
  const open = await pg.admin(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = '${nameOf(url)}' AND application_name = 'keel'`)
  t.ok(open.rows[0].n <= 2, `${open.rows[0].n} connections`)
})

t.test('a database that stops answering: 503 within the timeouts, readiness fails, service resumes when it answers', { skip: withItems }, async (t) => {
  const pg = await postgres()
  const direct = new URL(await pg.createDatabase())
  const relay = await startTcpRelay(t, direct.href)
  const relayed = new URL(direct.href)
  relayed.port = new URL(relay.url).port
  const { app, logs } = await build(t, { DATABASE_URL: relayed.href, DATABASE_STATEMENT_TIMEOUT_MS: '1000', DATABASE_CONNECT_TIMEOUT_MS: '1000' })
  const writer = { authorization: `Bearer ${testToken({ scope: 'items:write' })}` }
  const url = String((await app.inject({ method: 'POST', url: '/api/v1/items', headers: writer, payload: { name: 'held' } })).headers.location)

  relay.hold()
  // A pooled connection waits for its statement, a new one for its handshake: both end in 503 in time.
  const answers = await Promise.all(Array.from({ length: 3 }, async () => {
    const started = Date.now()
    const res = await app.inject({ url })
    return { status: res.statusCode, elapsed: Date.now() - started }
  }))
  for (const { status, elapsed } of answers) {
    t.equal(status, 503)
    t.ok(elapsed >= 900 && elapsed < 4000, `within the statement timeout and its margin (${elapsed} ms)`)
  }
  const ready = await app.inject({ url: '/health/ready' })
  t.equal(ready.statusCode, 503)
  t.equal(ready.json().checks.database.status, 'fail')

  relay.release()
  t.equal((await app.inject({ url })).statusCode, 200, 'answered again, no restart')
  await logs.waitFor(/PostgreSQL reachable again/)
  t.notMatch(logs.text(), TEST_DB_PASSWORD, 'no log line carries the password')
})
