// Every failure is RFC 9457 problem+json, Fastify's own included; internal errors leak nothing.

import t, { type Test } from 'tap'
import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { build } from '../helpers/app.ts'

const probeRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/test/echo', {
    config: { auth: false },
    schema: { body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 5 }), n: Type.Optional(Type.Integer()) }, { additionalProperties: false }) }
  }, async (request) => request.body)
  app.get('/test/boom', { config: { auth: false } }, async () => {
    throw new Error('database password is hunter2')
  })
}

async function app (t: Test, env: Record<string, string> = {}) {
  const built = await build(t, env)
  await built.app.register(probeRoutes)
  return built
}

function isProblem (t: Test, res: { statusCode: number, headers: Record<string, unknown>, json: () => Record<string, unknown> }, status: number) {
  t.equal(res.statusCode, status)
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  const body = res.json()
  t.match(body, { type: String, title: String, status, detail: String, instance: String })
  return body
}

t.test('unknown route → 404 problem+json', async (t) => {
  const { app: a } = await app(t)
  const body = isProblem(t, await a.inject('/nope?access_token=secret'), 404)
  t.equal(body.instance, '/nope', 'instance is the path without the query')
  t.notMatch(JSON.stringify(body), /secret/)
})

t.test('validation failure → 400 problem+json with errors per field', async (t) => {
  const { app: a } = await app(t)
  const res = await a.inject({ method: 'POST', url: '/test/echo', payload: { name: 'toolongname', extra: 1, n: 'x' } })
  const body = isProblem(t, res, 400)
  t.equal(body.code, 'VALIDATION')
  const paths = (body.errors as Array<{ path: string }>).map((e) => e.path)
  t.ok(paths.includes('/body/name'), 'too long name reported')
  t.ok(paths.includes('/body/extra'), 'unknown field reported')
  t.ok(paths.includes('/body/n'), 'wrong type reported')
})

t.test('malformed JSON → 400 problem+json', async (t) => {
  const { app: a } = await app(t)
  const res = await a.inject({ method: 'POST', url: '/test/echo', headers: { 'content-type': 'application/json' }, payload: '{"name":' })
  t.equal(isProblem(t, res, 400).code, 'MALFORMED_JSON')
})

t.test('body over the limit → 413 problem+json', async (t) => {
  const { app: a } = await app(t, { BODY_LIMIT_BYTES: '1024' })
  const res = await a.inject({ method: 'POST', url: '/test/echo', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ name: 'x'.repeat(2000) }) })
  t.equal(isProblem(t, res, 413).code, 'PAYLOAD_TOO_LARGE')
})

t.test('unsupported content type → 415 problem+json', async (t) => {
  const { app: a } = await app(t)
  const res = await a.inject({ method: 'POST', url: '/test/echo', headers: { 'content-type': 'text/csv' }, payload: 'a,b' })
  t.equal(isProblem(t, res, 415).code, 'UNSUPPORTED_MEDIA_TYPE')
})

t.test('a thrown error → 500 without its message or a stack, logged with the request id', async (t) => {
  const { app: a, logs } = await app(t)
  const res = await a.inject({ url: '/test/boom', headers: { 'x-request-id': 'boom-1' } })
  const body = isProblem(t, res, 500)
  t.equal(body.code, 'INTERNAL')
  t.notMatch(res.body, /hunter2/, 'no internal message')
  t.notMatch(res.body, /at .*\.ts/, 'no stack')
  t.equal(body.requestId, 'boom-1')
  const logged = logs.lines().find((l) => l.msg === 'request failed')
  t.equal(logged?.reqId, 'boom-1', 'the operator sees it, keyed by request id')
  t.match(JSON.stringify(logged), /hunter2/)
})
