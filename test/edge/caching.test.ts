// Caching policy as a route author and a client meet it: Cache-Control from `config.cache`, weak ETags
// on computed responses with 304 for GET and HEAD, no caching headers on errors or writes, strong resource tags per content-coding, and bad policies
// refused at start-up.

import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import compress from '@fastify/compress'
import { gunzipSync } from 'node:zlib'
import { build, type BuildResult } from '../helpers/app.ts'
import caching, { cacheControlOf, validateRouteCache } from '../../edge/caching.ts'
import { httpDate } from '../../edge/conditional.ts'

const LAST_MODIFIED = httpDate(Date.parse('2026-01-02T03:04:05Z'))

async function testRoutes (fastify: FastifyInstance): Promise<void> {
  const open = { auth: false as const, rateLimit: false as const }
  fastify.get('/test/computed', { config: { ...open, cache: { maxAge: 60, etag: 'computed' } } },
    async (request) => ({ hello: 'world', size: (request.query as { size?: string }).size ?? '' }))
  fastify.get('/test/last-modified', { config: { ...open, cache: { noCache: true, etag: 'computed' } } },
    async (_request, reply) => { reply.header('last-modified', LAST_MODIFIED); return { v: 1 } })
  fastify.get('/test/private', { config: { ...open, cache: { private: true, maxAge: 30 } } }, async () => ({ mine: true }))
  fastify.get('/test/shared', { config: { ...open, cache: { maxAge: 10, sMaxAge: 60, staleWhileRevalidate: 30 } } }, async () => ({ ok: true }))
  fastify.get('/test/no-store', { config: { ...open, cache: { noStore: true } } }, async () => ({ secret: true }))
  fastify.get('/test/fails', { config: { ...open, cache: { maxAge: 60, etag: 'computed' } } }, async () => { throw new Error('boom') })
  fastify.post('/test/created', { config: { ...open, cache: { maxAge: 60 } } }, async (_request, reply) => reply.code(201).send({ created: true }))
  fastify.get('/test/undeclared', { config: open }, async () => ({ plain: true }))
}

async function appWithRoutes (t: Test): Promise<BuildResult> {
  const built = await build(t)
  await built.app.register(testRoutes)
  return built
}

t.test('Cache-Control follows the route config on successful GET and HEAD', async (t) => {
  const { app } = await appWithRoutes(t)
  const cases: Array<[string, string | undefined]> = [
    ['/test/computed', 'public, max-age=60'],
    ['/test/private', 'private, max-age=30'],
    ['/test/shared', 'public, max-age=10, s-maxage=60, stale-while-revalidate=30'],
    ['/test/no-store', 'no-store'],
    ['/test/last-modified', 'public, no-cache'],
    ['/test/undeclared', undefined]
  ]
  for (const [url, expected] of cases) {
    for (const method of ['GET', 'HEAD'] as const) {
      const res = await app.inject({ method, url })
      t.equal(res.statusCode, 200, `${method} ${url}`)
      t.equal(res.headers['cache-control'], expected, `${method} ${url}`)
    }
  }
})

t.test('errors and writes get no Cache-Control and no ETag', async (t) => {
  const { app } = await appWithRoutes(t)
  const failed = await app.inject({ url: '/test/fails' })
  t.equal(failed.statusCode, 500)
  t.equal(failed.headers['cache-control'], undefined)
  t.equal(failed.headers.etag, undefined)
  const created = await app.inject({ method: 'POST', url: '/test/created' })
  t.equal(created.statusCode, 201)
  t.equal(created.headers['cache-control'], undefined)
})

t.test('a computed response carries a weak ETag that changes with the body', async (t) => {
  const { app } = await appWithRoutes(t)
  const a = await app.inject({ url: '/test/computed?size=a' })
  const again = await app.inject({ url: '/test/computed?size=a' })
  const b = await app.inject({ url: '/test/computed?size=b' })
  t.match(a.headers.etag, /^W\/"[A-Za-z0-9_-]+"$/)
  t.equal(again.headers.etag, a.headers.etag, 'same body, same tag')
  t.not(b.headers.etag, a.headers.etag, 'other body, other tag')
  t.equal(app.hasRoute({ method: 'GET', url: '/test/undeclared' }), true)
  t.equal((await app.inject({ url: '/test/undeclared' })).headers.etag, undefined, 'no tag without the policy')
})

t.test('If-None-Match on a computed response → 304 without a body, for GET and HEAD', async (t) => {
  const { app } = await appWithRoutes(t)
  const first = await app.inject({ url: '/test/computed' })
  const etag = first.headers.etag as string
  for (const method of ['GET', 'HEAD'] as const) {
    const res = await app.inject({ method, url: '/test/computed', headers: { 'if-none-match': `"other", ${etag}` } })
    t.equal(res.statusCode, 304, method)
    t.equal(res.body, '', `${method}: no body`)
    t.equal(res.headers.etag, etag)
    t.equal(res.headers['cache-control'], 'public, max-age=60', `${method}: the 304 keeps Cache-Control`)
    t.equal(res.headers['content-type'], undefined)
  }
  const star = await app.inject({ url: '/test/computed', headers: { 'if-none-match': '*' } })
  t.equal(star.statusCode, 304, '* matches any current representation')
  const stale = await app.inject({ url: '/test/computed', headers: { 'if-none-match': 'W/"old"' } })
  t.equal(stale.statusCode, 200)
  t.same(stale.json(), first.json())
})

t.test('If-Modified-Since → 304 when the handler\'s Last-Modified is not newer', async (t) => {
  const { app } = await appWithRoutes(t)
  const res = await app.inject({ url: '/test/last-modified', headers: { 'if-modified-since': LAST_MODIFIED } })
  t.equal(res.statusCode, 304)
  const older = await app.inject({ url: '/test/last-modified', headers: { 'if-modified-since': httpDate(Date.parse('2026-01-01T00:00:00Z')) } })
  t.equal(older.statusCode, 200)
})

t.test('bad cache policies stop the start with a message naming the route', async (t) => {
  const bad: Array<[unknown, RegExp]> = [
    [{ maxAge: -1 }, /maxAge must be a whole number/],
    [{ maxAge: 1.5 }, /maxAge must be a whole number/],
    [{ noStore: true, maxAge: 5 }, /noStore excludes/],
    [{ private: true, sMaxAge: 5 }, /sMaxAge has no meaning/],
    [{ etag: true }, /etag must be "computed" or "resource"/],
    [{ maxage: 5 }, /unknown field "maxage"/],
    [{ noCache: 'yes' }, /noCache must be a boolean/],
    ['public', /must be an object/]
  ]
  for (const [cache, message] of bad) {
    t.throws(() => validateRouteCache(cache, 'GET /x'), { message: new RegExp(`^GET /x: config\\.cache.*${message.source}`) })
  }
  const { app } = await build(t)
  await t.rejects(async () => {
    app.get('/test/bad', { config: { auth: false, cache: { maxAge: -5 } } }, async () => ({}))
    await app.ready()
  }, /GET \/test\/bad: config.cache.maxAge/)
})

t.test('an etag-only policy adds no Cache-Control', async (t) => {
  t.equal(cacheControlOf({ etag: 'resource' }), undefined)
  t.equal(cacheControlOf({ private: true }), 'private')
})

// The compression plugin is registered before caching (app.ts); here the two alone, so the rule is
// tested whatever else the app registers.
async function compressedApp (t: Test): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(compress, { threshold: 1024 })
  await app.register(caching)
  const big = { text: 'x'.repeat(4096) }
  app.get('/resource', { config: { cache: { noCache: true, etag: 'resource' } } }, async (_request, reply) => {
    reply.header('etag', '"v7"')
    return big
  })
  app.get('/small', { config: { cache: { etag: 'resource' } } }, async (_request, reply) => { reply.header('etag', '"v7"'); return { small: true } })
  app.get('/computed', { config: { cache: { etag: 'computed' } } }, async () => big)
  return app
}

t.test('a strong resource ETag names the content-coding of a compressed body', async (t) => {
  const app = await compressedApp(t)
  const gzip = await app.inject({ url: '/resource', headers: { 'accept-encoding': 'gzip' } })
  t.equal(gzip.headers['content-encoding'], 'gzip')
  t.equal(gzip.headers.etag, '"v7-gzip"')
  t.equal(JSON.parse(gunzipSync(gzip.rawPayload).toString()).text.length, 4096)
  const br = await app.inject({ url: '/resource', headers: { 'accept-encoding': 'br' } })
  t.equal(br.headers.etag, '"v7-br"')
  const identity = await app.inject({ url: '/resource', headers: { 'accept-encoding': 'identity' } })
  t.equal(identity.headers['content-encoding'], undefined)
  t.equal(identity.headers.etag, '"v7"')
  const small = await app.inject({ url: '/small', headers: { 'accept-encoding': 'gzip' } })
  t.equal(small.headers['content-encoding'], undefined, 'below the threshold nothing is compressed')
  t.equal(small.headers.etag, '"v7"')
})

t.test('a computed weak ETag is the same for every coding and still answers 304', async (t) => {
  const app = await compressedApp(t)
  const gzip = await app.inject({ url: '/computed', headers: { 'accept-encoding': 'gzip' } })
  const identity = await app.inject({ url: '/computed', headers: { 'accept-encoding': 'identity' } })
  t.equal(gzip.headers['content-encoding'], 'gzip')
  t.match(gzip.headers.etag, /^W\//)
  t.equal(gzip.headers.etag, identity.headers.etag)
  const again = await app.inject({ url: '/computed', headers: { 'accept-encoding': 'gzip', 'if-none-match': gzip.headers.etag as string } })
  t.equal(again.statusCode, 304)
  t.equal(again.rawPayload.length, 0)
  t.equal(again.headers['content-encoding'], undefined)
})
