// The one Redis plugin (core/redis.ts) against a real redis-server: every user of REDIS_URL (rate
// limiter, room hub) shares one command connection and one subscriber connection; an outage is
// reported once, naming what each user loses, with one readiness check and one recovery line; the
// connections close with the app; without REDIS_URL there is no Redis at all.

import t from 'tap'
import { Redis } from 'ioredis'
import { build } from '../helpers/app.ts'
import { redisSkipReason, startRedis, type TestRedis } from '../helpers/redis.ts'

/** The connections redis-server holds, not counting the one asking. */
async function connectionsOf (redis: TestRedis, t: Parameters<typeof startRedis>[0]): Promise<() => Promise<number>> {
  const observer = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  observer.on('error', () => {})
  t.teardown(() => observer.disconnect())
  await observer.connect()
  const own = await observer.client('ID') as number
  return async () => {
    const list = await observer.client('LIST') as string
    return list.split('\n').filter((line) => line.startsWith('id=') && !line.startsWith(`id=${own} `)).length
  }
}

t.test('with REDIS_URL the rate limiter and the room hub share one command and one subscriber connection', { skip: redisSkipReason() }, async (t) => {
  const redis = await startRedis(t)
  const count = await connectionsOf(redis, t)
  const { app } = await build(t, { REDIS_URL: redis.url })
  await app.ready()
  t.equal(await count(), 2, 'commands + subscriptions, whoever uses them')
  const ready = await app.inject({ url: '/health/ready' })
  t.equal(ready.statusCode, 200)
  t.same(Object.keys(ready.json().checks).filter((name) => name.startsWith('redis')), ['redis'], 'one readiness check for Redis')

  await app.close()
  // redis-server notices the closed sockets on its next event-loop turn: a few round trips at most.
  let left = await count()
  for (let round = 0; round < 100 && left > 0; round++) left = await count()
  t.equal(left, 0, 'closing the app closes its connections')
})

t.test('an outage is reported once for every user of Redis, then its end once', { skip: redisSkipReason({ control: true }) }, async (t) => {
  const redis = await startRedis(t)
  const { app, logs } = await build(t, { REDIS_URL: redis.url })
  t.equal((await app.inject({ url: '/docs/json' })).statusCode, 200, 'a rate-limited route answers')

  await redis.stop()
  await logs.waitFor(/Redis unreachable; /)
  const warning = logs.lines().find((line) => /^Redis unreachable; /.test(String(line.msg)))!
  t.match(warning.msg, /rate-limit: requests pass unlimited \(RATE_LIMIT_FAIL=open\)/, 'what the limiter does meanwhile')
  t.match(warning.msg, /room hub: rooms reach this instance's members only until it is back/, 'what the hub does meanwhile')
  t.equal(warning.level, 40)
  const notReady = await app.inject({ url: '/health/ready' })
  t.equal(notReady.statusCode, 503)
  t.match(notReady.json().checks, { redis: { status: 'fail', detail: /Redis unreachable/ } })

  await redis.restart()
  await logs.waitFor(/Redis reachable again/, 10_000)
  t.equal((await app.inject({ url: '/health/ready' })).statusCode, 200, 'ready again')
  const lines = logs.lines().map((line) => String(line.msg))
  t.equal(lines.filter((msg) => /^Redis unreachable/.test(msg)).length, 1, 'the outage is one warning, not one per connection or user')
  t.equal(lines.filter((msg) => /reachable again/.test(msg)).length, 1, 'and its end one line')
})

t.test('Redis unreachable at start: the app starts not ready and says what each user does meanwhile', { skip: redisSkipReason({ control: true }) }, async (t) => {
  const redis = await startRedis(t)
  await redis.stop()
  const { app, logs } = await build(t, { REDIS_URL: redis.url, RATE_LIMIT_FAIL: 'closed' })
  await app.ready()
  t.match(logs.text(), /Redis unreachable at start; rate-limit: requests get 503 \(RATE_LIMIT_FAIL=closed\); room hub: /)
  t.equal((await app.inject({ url: '/health/ready' })).statusCode, 503)
})

t.test('without REDIS_URL there is no Redis: no connection, no readiness check', async (t) => {
  const { app } = await build(t)
  await app.ready()
  t.equal(app.redis, undefined)
  const ready = await app.inject({ url: '/health/ready' })
  t.equal(ready.statusCode, 200)
  t.same(Object.keys(ready.json().checks).filter((name) => name.startsWith('redis')), [])
})
