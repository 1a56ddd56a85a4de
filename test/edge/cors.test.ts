// CORS: listed origins (exactly) get credentialed access and preflights; everyone else gets no CORS header.

import t, { type Test } from 'tap'
import { build, listenOn } from '../helpers/app.ts'
import { h2request, h2session } from '../helpers/http.ts'
import { PROBE_PATH, probeResource } from '../helpers/probe-resource.ts'
import { PREFLIGHT_MAX_AGE_S } from '../../edge/cors.ts'

const ALLOWED = 'https://app.example'
const ENV = { CORS_ORIGINS: `${ALLOWED}, https://admin.example:8443` }

function corsHeaders (headers: Record<string, unknown>): string[] {
  return Object.keys(headers).filter((name) => name.startsWith('access-control-'))
}

async function built (t: Test, env: Record<string, string> = ENV) {
  const result = await build(t, env)
  // A public list whose writes need a scoped token, and a route behind auth (no `config.auth` = a valid
  // token): their preflights must pass without one.
  await result.app.register(probeResource)
  result.app.get('/test/private', async () => ({ ok: true }))
  return result
}

const app = async (t: Test, env?: Record<string, string>) => (await built(t, env)).app

const preflight = (origin: string, url = PROBE_PATH) => ({
  method: 'OPTIONS' as const,
  url,
  headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, if-match' }
})

t.test('a preflight from a listed origin gets the allow headers and a max-age, and needs no token', async (t) => {
  const a = await app(t)
  for (const url of [PROBE_PATH, '/test/private']) {
    const res = await a.inject(preflight(ALLOWED, url))
    t.equal(res.statusCode, 204, url)
    t.equal(res.headers['access-control-allow-origin'], ALLOWED, 'the exact origin, never *')
    t.equal(res.headers['access-control-allow-credentials'], 'true')
    t.match(res.headers['access-control-allow-methods'], /\bPOST\b.*\bPUT\b.*\bDELETE\b/)
    t.match(res.headers['access-control-allow-headers'], /\bAuthorization\b.*\bContent-Type\b.*\bIf-Match\b/)
    t.equal(res.headers['access-control-max-age'], String(PREFLIGHT_MAX_AGE_S))
    t.match(res.headers.vary, /\bOrigin\b/)
    t.notOk(res.headers['www-authenticate'], 'no auth challenge on a preflight')
  }
})

t.test('a preflight from an unlisted origin gets no CORS headers at all', async (t) => {
  const a = await app(t)
  for (const origin of ['https://evil.example', 'http://app.example', 'https://app.example.evil.example', 'https://APP.example', 'null']) {
    const res = await a.inject(preflight(origin))
    t.same(corsHeaders(res.headers), [], origin)
    t.not(res.statusCode, 204, `${origin}: not answered as a preflight`)
  }
})

t.test('a credentialed request from a listed origin gets its exact origin, credentials and Vary: Origin', async (t) => {
  const a = await app(t)
  for (const origin of [ALLOWED, 'https://admin.example:8443']) {
    const res = await a.inject({ url: '/health/live', headers: { origin, cookie: 'session=1' } })
    t.equal(res.statusCode, 200)
    t.equal(res.headers['access-control-allow-origin'], origin)
    t.equal(res.headers['access-control-allow-credentials'], 'true')
    t.match(res.headers['access-control-expose-headers'], /\bETag\b.*\bRetry-After\b.*\bX-Request-Id\b/)
    t.match(res.headers.vary, /\bOrigin\b/)
  }
})

t.test('a request from an unlisted origin gets no CORS headers, and its answer is otherwise unchanged', async (t) => {
  const a = await app(t)
  const res = await a.inject({ url: '/health/live', headers: { origin: 'https://evil.example' } })
  t.equal(res.statusCode, 200)
  t.same(corsHeaders(res.headers), [])
  t.match(res.headers.vary, /\bOrigin\b/, 'caches still keep answers per origin apart')
})

t.test('a request without Origin gets no CORS headers', async (t) => {
  const a = await app(t)
  const res = await a.inject('/health/live')
  t.same(corsHeaders(res.headers), [])
  t.match(res.headers.vary, /\bOrigin\b/, 'Vary: Origin, so a shared cache never serves this answer to a browser')
})

t.test('with CORS_ORIGINS empty there is no cross-origin access', async (t) => {
  const a = await app(t, {})
  const pre = await a.inject(preflight(ALLOWED))
  t.same(corsHeaders(pre.headers), [])
  t.equal(pre.statusCode, 405, 'no OPTIONS route: the path answers other methods only')
  t.notMatch(String(pre.headers.allow), /OPTIONS/)
  const res = await a.inject({ url: '/health/live', headers: { origin: ALLOWED } })
  t.same(corsHeaders(res.headers), [])
})

t.test('preflight over HTTP/2 and TLS', async (t) => {
  const { url, ca } = await listenOn(await built(t))
  const session = await h2session(url, { ca })
  t.teardown(() => session.close())
  const res = await h2request(session, PROBE_PATH, {
    ':method': 'OPTIONS', origin: ALLOWED, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'authorization'
  })
  t.equal(res.status, 204)
  t.equal(res.headers['access-control-allow-origin'], ALLOWED)
  t.equal(res.headers['access-control-max-age'], String(PREFLIGHT_MAX_AGE_S))
})
