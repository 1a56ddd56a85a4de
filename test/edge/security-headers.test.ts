// Security headers on every response — success, error, 404, preflight — HSTS only over TLS, and a docs
// UI that loads under its own CSP while API responses keep `default-src 'none'`.

import t, { type Test } from 'tap'
import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { build, listen } from '../helpers/app.ts'
import { h1request, h2request, h2session } from '../helpers/http.ts'
import { apiHeaders, docsHeaders } from '../../edge/security-headers.ts'

const API_CSP = "default-src 'none';frame-ancestors 'none'"
// Headers that only steer HTML documents: API responses do without them.
const HTML_ONLY = ['x-frame-options', 'x-xss-protection', 'referrer-policy', 'cross-origin-opener-policy', 'x-dns-prefetch-control', 'x-download-options', 'origin-agent-cluster', 'x-permitted-cross-domain-policies']

const probeRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/test/echo', {
    config: { auth: false },
    schema: { body: Type.Object({ name: Type.String() }, { additionalProperties: false }) }
  }, async (request) => request.body)
  app.get('/test/boom', { config: { auth: false } }, async () => { throw new Error('internal detail') })
  app.get('/test/private', async () => ({ ok: true }))
}

function hasApiHeaders (t: Test, headers: Record<string, unknown>, what: string): void {
  t.equal(headers['content-security-policy'], API_CSP, `${what}: CSP`)
  t.equal(headers['x-content-type-options'], 'nosniff', `${what}: nosniff`)
  t.equal(headers['cross-origin-resource-policy'], 'same-origin', `${what}: CORP`)
  for (const name of HTML_ONLY) t.notOk(headers[name], `${what}: no ${name}`)
}

t.test('API, error and 404 responses carry the security headers', async (t) => {
  const { app } = await build(t, { CORS_ORIGINS: 'https://app.example' })
  await app.register(probeRoutes)
  const cases = [
    { what: '200', req: { url: '/health/live' }, status: 200 },
    { what: '400 validation', req: { method: 'POST' as const, url: '/test/echo', payload: { nope: 1 } }, status: 400 },
    { what: '401 no token', req: { url: '/test/private' }, status: 401 },
    { what: '404', req: { url: '/no/such/route' }, status: 404 },
    { what: '500', req: { url: '/test/boom' }, status: 500 },
    { what: 'CORS preflight', req: { method: 'OPTIONS' as const, url: '/test/echo', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' } }, status: 204 }
  ]
  for (const c of cases) {
    const res = await app.inject(c.req)
    t.equal(res.statusCode, c.status, c.what)
    hasApiHeaders(t, res.headers, c.what)
  }
})

t.test('HSTS is sent over TLS, on HTTP/2 and HTTP/1.1', async (t) => {
  const { url, ca } = await listen(t)
  const session = await h2session(url, { ca })
  t.teardown(() => session.close())
  for (const path of ['/health/live', '/no/such/route']) {
    const h2 = await h2request(session, path)
    t.equal(h2.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains', `h2 ${path}`)
    hasApiHeaders(t, h2.headers, `h2 ${path}`)
    const h1 = await h1request(`${url}${path}`, { ca })
    t.equal(h1.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains', `h1 ${path}`)
  }
})

t.test('no HSTS with TLS=off (the TLS-terminating proxy in front sends it)', async (t) => {
  const { url } = await listen(t, { TLS: 'off' })
  const res = await h1request(`${url}/health/live`)
  t.equal(res.status, 200)
  t.notOk(res.headers['strict-transport-security'])
  hasApiHeaders(t, res.headers, 'cleartext')
})

t.test('the docs UI loads: its page and every script and stylesheet it references, under a CSP that allows them', async (t) => {
  const { url, ca } = await listen(t)
  const page = await h1request(`${url}/docs`, { ca })
  t.equal(page.status, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  const csp = String(page.headers['content-security-policy'])
  t.match(csp, /(^|;)script-src 'self'(;|$)/, 'scripts from the page\'s own origin')
  t.match(csp, /(^|;)style-src 'self' 'unsafe-inline'(;|$)/, 'styles from its origin, plus the inline styles Swagger UI sets')
  t.match(csp, /(^|;)img-src 'self' data:(;|$)/)
  t.match(csp, /(^|;)frame-ancestors 'none'(;|$)/)
  t.equal(page.headers['x-frame-options'], 'DENY', 'HTML gets the browser headers')

  const scripts = [...page.body.matchAll(/<script\b([^>]*)>/g)].map((m) => /\bsrc="([^"]+)"/.exec(m[1]!)?.[1])
  t.ok(scripts.length >= 3, 'the page loads its scripts')
  t.notOk(scripts.includes(undefined), 'no inline script: script-src \'self\' covers them all')
  const styles = [...page.body.matchAll(/<link rel="stylesheet"[^>]*href="([^"]+)"/g)].map((m) => m[1]!)
  t.ok(styles.length >= 1, 'the page loads its stylesheets')
  for (const [src, type] of [...scripts.map((s) => [s!, /javascript/] as const), ...styles.map((s) => [s, /^text\/css/] as const)]) {
    const asset = new URL(src, `${url}/docs`)
    t.equal(asset.origin, url, `${src} is same-origin ('self')`)
    const res = await h1request(asset.href, { ca })
    t.equal(res.status, 200, `${src} loads`)
    t.match(res.headers['content-type'], type, `${src} content type`)
    t.ok(res.body.length > 0)
  }

  const spec = await h1request(`${url}/docs/json`, { ca })
  t.equal(spec.status, 200, 'the document the UI fetches (connect-src \'self\')')
  const api = await h1request(`${url}/health/live`, { ca })
  t.equal(api.headers['content-security-policy'], API_CSP, 'API responses keep default-src \'none\'')
})

t.test('header sets are computed once by helmet, from the same options each time', async (t) => {
  t.same(apiHeaders(true), apiHeaders(true))
  t.notOk(apiHeaders(false)['strict-transport-security'])
  t.ok(docsHeaders(true)['strict-transport-security'])
  t.ok(Object.isFrozen(apiHeaders(true)), 'shared between requests, so immutable')
})
