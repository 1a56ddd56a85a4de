// JSON request bodies as a client meets them: UTF-8 only (invalid bytes → 400, another charset → 415,
// never a silent U+FFFD), nesting bounded before the parser runs, and prototype poisoning refused.

import t from 'tap'
import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { build } from '../helpers/app.ts'
import { testToken } from '../helpers/tokens.ts'
import { PROBE_PATH, PROBE_WRITE_SCOPE, probeResource } from '../helpers/probe-resource.ts'
import { JSON_MAX_DEPTH } from '../../core/request-body.ts'

const writer = { authorization: `Bearer ${testToken({ sub: 'writer', scope: PROBE_WRITE_SCOPE })}` }

const probeRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/test/any', { config: { auth: false }, schema: { body: Type.Unknown() } }, async (request) => ({ body: request.body }))
  app.post('/test/text', { config: { auth: false }, schema: { body: Type.String() } }, async (request) => ({ body: request.body }))
}

const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth)

t.test('a JSON body that is not valid UTF-8 → 400 MALFORMED_JSON, and nothing is stored', async (t) => {
  const { app } = await build(t)
  await app.register(probeResource)
  const invalid = [
    Buffer.concat([Buffer.from('{"name":"caf'), Buffer.from([0xe9]), Buffer.from('"}')]), // Latin-1 é
    Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]), // an encoded surrogate
    Buffer.concat([Buffer.from('{"name":"x'), Buffer.from([0xf0, 0x9f]), Buffer.from('"}')]) // a truncated sequence
  ]
  for (const payload of invalid) {
    const res = await app.inject({ method: 'POST', url: PROBE_PATH, headers: { ...writer, 'content-type': 'application/json' }, payload })
    t.equal(res.statusCode, 400)
    t.match(res.headers['content-type'], /^application\/problem\+json/)
    t.match(res.json(), { code: 'MALFORMED_JSON', detail: /UTF-8/ })
  }
  t.same((await app.inject({ url: PROBE_PATH })).json().things, [], 'nothing was created with U+FFFD in its name')
  const ok = await app.inject({ method: 'POST', url: PROBE_PATH, headers: { ...writer, 'content-type': 'application/json' }, payload: Buffer.from('{"name":"café ☕"}') })
  t.equal(ok.statusCode, 201, 'valid UTF-8 is stored as sent')
  t.equal(ok.json().name, 'café ☕')
})

t.test('a JSON body declared in a charset other than UTF-8 → 415; utf-8 in any spelling is accepted', async (t) => {
  const { app } = await build(t)
  await app.register(probeResource)
  for (const charset of ['iso-8859-1', 'utf-16', 'windows-1252', 'us-ascii']) {
    const res = await app.inject({ method: 'POST', url: PROBE_PATH, headers: { ...writer, 'content-type': `application/json; charset=${charset}` }, payload: '{"name":"x"}' })
    t.equal(res.statusCode, 415, charset)
    t.match(res.json(), { code: 'UNSUPPORTED_MEDIA_TYPE', detail: /UTF-8/ })
  }
  for (const charset of ['utf-8', 'UTF-8', '"utf-8"', 'utf8']) {
    const res = await app.inject({ method: 'POST', url: PROBE_PATH, headers: { ...writer, 'content-type': `application/json; charset=${charset}` }, payload: '{"name":"x"}' })
    t.equal(res.statusCode, 201, charset)
  }
})

t.test('text bodies follow the same rule: invalid UTF-8 → 400, another charset → 415', async (t) => {
  const { app } = await build(t)
  await app.register(probeRoutes)
  const bad = await app.inject({ method: 'POST', url: '/test/text', headers: { 'content-type': 'text/plain' }, payload: Buffer.from([0x61, 0xff]) })
  t.equal(bad.statusCode, 400)
  const latin = await app.inject({ method: 'POST', url: '/test/text', headers: { 'content-type': 'text/plain; charset=iso-8859-1' }, payload: 'abc' })
  t.equal(latin.statusCode, 415)
  const ok = await app.inject({ method: 'POST', url: '/test/text', headers: { 'content-type': 'text/plain; charset=utf-8' }, payload: 'héllo' })
  t.same(ok.json(), { body: 'héllo' })
})

t.test(`JSON nested deeper than ${JSON_MAX_DEPTH} levels → 400 before it is parsed; up to the limit it is accepted`, async (t) => {
  const { app } = await build(t)
  await app.register(probeRoutes)
  const post = (payload: string) => app.inject({ method: 'POST', url: '/test/any', headers: { 'content-type': 'application/json' }, payload })
  t.equal((await post(nested(JSON_MAX_DEPTH))).statusCode, 200, 'at the limit')
  const deep = await post(nested(JSON_MAX_DEPTH + 1))
  t.equal(deep.statusCode, 400, 'one level more')
  t.match(deep.json(), { code: 'BAD_REQUEST', detail: /nest/ })
  const started = performance.now()
  const huge = await post(nested(512 * 1024))
  const elapsed = performance.now() - started
  t.equal(huge.statusCode, 400, 'a 1 MiB nest')
  t.ok(elapsed < 100, `refused in ${elapsed.toFixed(1)} ms`)
  const strings = await post(JSON.stringify({ text: '[[[[{{{{'.repeat(100), escaped: '\\"[[[[' }))
  t.equal(strings.statusCode, 200, 'brackets inside strings do not count')
})

t.test('prototype poisoning and malformed JSON are still refused', async (t) => {
  const { app } = await build(t)
  await app.register(probeRoutes)
  const post = (payload: string) => app.inject({ method: 'POST', url: '/test/any', headers: { 'content-type': 'application/json' }, payload })
  t.equal((await post('{"__proto__":{"admin":true}}')).statusCode, 400)
  t.equal((await post('{"constructor":{"prototype":{"admin":true}}}')).statusCode, 400)
  t.match((await post('{"a":')).json(), { code: 'MALFORMED_JSON' })
  t.match((await post('')).json(), { code: 'MALFORMED_JSON' })
})
