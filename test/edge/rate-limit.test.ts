// Rate limiting as clients meet it: the configured budget, 429 problem+json with Retry-After and the
// RateLimit-* headers, route overrides, one budget per token subject (else per IP, X-Forwarded-For
// ignored), and with a real Redis: one budget across instances, fail-open with a warning and a metric
// when Redis dies, readiness 503 meanwhile, fail-closed → 503, and recovery when Redis is back.

import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { build, type BuildResult } from '../helpers/app.ts'
import { testToken } from '../helpers/tokens.ts'
import { redisSkipReason, startRedis } from '../helpers/redis.ts'
import { PROBE_PATH, probeResource } from '../helpers/probe-resource.ts'
import { scrapeMetrics } from '../helpers/metrics.ts'

const bearer = (sub: string) => ({ authorization: `Bearer ${testToken({ sub })}` })

async function testRoutes (fastify: FastifyInstance): Promise<void> {
  // A tighter budget on one route; a route that needs a token (keyed by subject).
  fastify.get('/test/tight', { config: { auth: false, rateLimit: { max: 2, timeWindow: 60_000 } } }, async () => ({ ok: true }))
  fastify.get('/test/me', async (request) => ({ sub: request.user.sub }))
}

/** A built app with the routes above and the probe resource, whose public list keeps the global budget. */
async function appWithRoutes (t: Test, env: Record<string, string | undefined>): Promise<BuildResult> {
  const built = await build(t, env)
  await built.app.register(testRoutes)
  await built.app.register(probeResource)
  return built
}

interface Hit { url: string, headers?: Record<string, string> }

/** `times` requests one after the other (bounded by the caller's small counts). */
async function hit (app: FastifyInstance, times: number, options: Hit = { url: PROBE_PATH }): Promise<LightMyRequestResponse[]> {
  const responses: LightMyRequestResponse[] = []
  for (let i = 0; i < times; i++) responses.push(await app.inject(options))
  return responses
}

function assertLimited (t: Test, res: LightMyRequestResponse, max: number): void {
  t.equal(res.statusCode, 429)
  t.match(String(res.headers['content-type']), /^application\/problem\+json/)
  t.match(res.json(), { status: 429, code: 'RATE_LIMITED', type: 'urn:keel:problem:rate-limited', detail: String, instance: String })
  t.match(String(res.headers['retry-after']), /^[1-9][0-9]*$/, 'Retry-After in seconds')
  t.equal(res.headers['ratelimit-limit'], String(max))
  t.equal(res.headers['ratelimit-remaining'], '0')
  t.match(String(res.headers['ratelimit-reset']), /^[0-9]+$/)
}

async function metricValue (app: FastifyInstance, name: string): Promise<number> {
  const metric = await app.metrics.getSingleMetric(name)?.get()
  return (metric?.values ?? []).reduce((sum, v) => sum + v.value, 0)
}

t.test('with RATE_LIMIT_MAX=5 the 6th request → 429 problem+json with Retry-After and RateLimit-* headers', async (t) => {
  const { app } = await appWithRoutes(t, { RATE_LIMIT_MAX: '5' })
  const allowed = await hit(app, 5)
  t.same(allowed.map((r) => r.statusCode), [200, 200, 200, 200, 200])
  t.same(allowed.map((r) => r.headers['ratelimit-remaining']), ['4', '3', '2', '1', '0'])
  t.equal(allowed[0]!.headers['ratelimit-limit'], '5')
  t.equal(allowed[0]!.headers['x-ratelimit-limit'], undefined, 'the standard names, not x-ratelimit-*')
  const [sixth] = await hit(app, 1)
  assertLimited(t, sixth!, 5)
  t.equal(await metricValue(app, 'rate_limit_rejections_total'), 1, 'the rejection is counted')
  t.match(await scrapeMetrics(app), new RegExp(`rate_limit_rejections_total\\{route="${PROBE_PATH}"\\} 1`))
})

t.test('a route override applies instead of the global budget', async (t) => {
  const { app } = await appWithRoutes(t, { RATE_LIMIT_MAX: '5' })
  const tight = await hit(app, 3, { url: '/test/tight' })
  t.same(tight.map((r) => r.statusCode), [200, 200, 429])
  assertLimited(t, tight[2]!, 2)
  t.equal((await app.inject({ url: PROBE_PATH })).statusCode, 200, 'other routes keep the global budget')
})

t.test('authenticated clients are keyed by subject: two subjects, two budgets', async (t) => {
  const { app } = await appWithRoutes(t, { RATE_LIMIT_MAX: '2' })
  const alice = await hit(app, 3, { url: '/test/me', headers: bearer('alice') })
  t.same(alice.map((r) => r.statusCode), [200, 200, 429])
  const bob = await hit(app, 2, { url: '/test/me', headers: bearer('bob') })
  t.same(bob.map((r) => r.statusCode), [200, 200], 'bob has his own budget')
  t.equal((await app.inject({ url: PROBE_PATH })).statusCode, 200, 'anonymous requests from the same IP have theirs')
})

t.test('anonymous clients are keyed by the socket address: X-Forwarded-For is ignored (trustProxy off)', async (t) => {
  const { app } = await appWithRoutes(t, { RATE_LIMIT_MAX: '2' })
  const res = await hit(app, 1, { url: PROBE_PATH, headers: { 'x-forwarded-for': '203.0.113.1' } })
  await hit(app, 1, { url: PROBE_PATH, headers: { 'x-forwarded-for': '203.0.113.2' } })
  const third = await hit(app, 1, { url: PROBE_PATH, headers: { 'x-forwarded-for': '203.0.113.3' } })
  t.equal(res[0]!.statusCode, 200)
  t.equal(third[0]!.statusCode, 429, 'a spoofed header buys no new budget')
})

t.test('probes are never limited', async (t) => {
  const { app } = await appWithRoutes(t, { RATE_LIMIT_MAX: '1' })
  const probes = await hit(app, 3, { url: '/health/live' })
  t.same(probes.map((r) => r.statusCode), [200, 200, 200])
  t.equal(probes[0]!.headers['ratelimit-limit'], undefined)
})

t.test('two app instances sharing a real Redis share one budget', { skip: redisSkipReason() }, async (t) => {
  const redis = await startRedis(t)
  const env = { RATE_LIMIT_MAX: '5', REDIS_URL: redis.url }
  const a = await appWithRoutes(t, env)
  const b = await appWithRoutes(t, env)
  // A fresh subject: the budget is this test's alone, even on a shared REDIS_URL.
  const me = { url: '/test/me', headers: bearer(`shared-${randomUUID()}`) }
  const first = await hit(a.app, 3, me)
  const second = await hit(b.app, 2, me)
  t.same([...first, ...second].map((r) => r.headers['ratelimit-remaining']), ['4', '3', '2', '1', '0'], 'one counter across both')
  assertLimited(t, (await hit(a.app, 1, me))[0]!, 5)
  assertLimited(t, (await hit(b.app, 1, me))[0]!, 5)
  const ready = await a.app.inject({ url: '/health/ready' })
  t.equal(ready.statusCode, 200)
  t.match(ready.json(), { checks: { redis: { status: 'ok' } } })
})

t.test('Redis stopped mid-test: requests still succeed (fail-open), a warning is logged, readiness 503, then recovery',
  { skip: redisSkipReason({ control: true }) }, async (t) => {
    const redis = await startRedis(t)
    const { app, logs } = await appWithRoutes(t, { RATE_LIMIT_MAX: '3', REDIS_URL: redis.url })
    t.same((await hit(app, 3)).map((r) => r.statusCode), [200, 200, 200])
    t.equal((await hit(app, 1))[0]!.statusCode, 429, 'limited while Redis is up')

    await redis.stop()
    const during = await hit(app, 5)
    t.same(during.map((r) => r.statusCode), [200, 200, 200, 200, 200], 'unlimited while Redis is down')
    await logs.waitFor(/(Redis unreachable|rate-limit: check failed).*RATE_LIMIT_FAIL=open/)
    const warnings = logs.lines().filter((l) => l.level === 40 && /rate-limit/.test(String(l.msg)))
    t.ok(warnings.length >= 1 && warnings.length <= 2, `the warning is not repeated per request (${warnings.length})`)
    t.ok(await metricValue(app, 'rate_limit_store_errors_total') >= 5, 'every failed check is counted')
    const ready = await app.inject({ url: '/health/ready' })
    t.equal(ready.statusCode, 503)
    t.match(ready.json(), { status: 'unavailable', checks: { redis: { status: 'fail', detail: /Redis unreachable/ } } })

    await redis.restart()
    // Logged once every connection (the room hub's subscriber too) is back: readiness waits for them all.
    await logs.waitFor(/Redis reachable again/, 10_000)
    t.equal((await app.inject({ url: '/health/ready' })).statusCode, 200, 'ready again')
    const after = await hit(app, 4)
    t.same(after.map((r) => r.statusCode), [200, 200, 200, 429], 'limiting resumes (the restarted Redis is empty)')
  })

t.test('RATE_LIMIT_FAIL=closed: with Redis down requests get 503 problem+json with Retry-After', { skip: redisSkipReason({ control: true }) }, async (t) => {
  const redis = await startRedis(t)
  const { app } = await appWithRoutes(t, { RATE_LIMIT_FAIL: 'closed', REDIS_URL: redis.url })
  t.equal((await app.inject({ url: PROBE_PATH })).statusCode, 200)
  await redis.stop()
  const res = await app.inject({ url: PROBE_PATH })
  t.equal(res.statusCode, 503)
  t.match(String(res.headers['content-type']), /^application\/problem\+json/)
  t.match(res.json(), { status: 503, code: 'SERVICE_UNAVAILABLE' })
  t.equal(res.headers['retry-after'], '5')
  t.equal((await app.inject({ url: '/health/live' })).statusCode, 200, 'unlimited routes keep answering')
})

t.test('Redis unreachable at start: the server starts, fails open and reports not ready', { skip: redisSkipReason({ control: true }) }, async (t) => {
  const redis = await startRedis(t)
  await redis.stop()
  const { app, logs } = await appWithRoutes(t, { RATE_LIMIT_MAX: '1', REDIS_URL: redis.url })
  t.same((await hit(app, 2)).map((r) => r.statusCode), [200, 200])
  t.equal((await app.inject({ url: '/health/ready' })).statusCode, 503)
  t.match(logs.text(), /Redis unreachable at start;.*rate-limit: requests pass unlimited/)
})
