// One validation policy for every route: a route written like the README's example is checked like
// items — bodies exactly as sent, query strings and params converted only where the text is exact,
// declared defaults filled in, and every failure a 400 problem+json naming the field.

import t from 'tap'
import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { build } from '../helpers/app.ts'
import { buildApp } from '../../app.ts'
import { testConfig } from '../helpers/app.ts'

// Written the way the README's "How to add a route" shows: nothing but the route file.
const ordersRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/api/v1/orders', {
    config: { auth: false },
    schema: { body: Type.Object({ total: Type.Integer(), paid: Type.Optional(Type.Boolean()), note: Type.Optional(Type.String()) }) }
  }, async (request, reply) => reply.code(201).send(request.body))
  fastify.get('/api/v1/orders/:id', {
    config: { auth: false },
    schema: {
      params: Type.Object({ id: Type.String({ format: 'uuid' }) }),
      querystring: Type.Object({
        limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
        ratio: Type.Optional(Type.Number()),
        open: Type.Optional(Type.Boolean()),
        tag: Type.Optional(Type.Array(Type.String()))
      })
    }
  }, async (request) => ({ id: request.params.id, query: request.query }))
}

const ID = '0f8fad5b-d9cb-469f-a165-70867728950e'

t.test('a route written like the README\'s example refuses {"total":"42"} for an integer field with 400', async (t) => {
  const { app } = await build(t)
  await app.register(ordersRoutes)
  const res = await app.inject({ method: 'POST', url: '/api/v1/orders', payload: { total: '42' } })
  t.equal(res.statusCode, 400)
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  t.match(res.json(), { code: 'VALIDATION', errors: [{ path: '/body/total' }] })
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/orders', payload: { total: 42 } })).statusCode, 201)
})

t.test('bodies are checked exactly as sent: no value changes type', async (t) => {
  const { app } = await build(t)
  await app.register(ordersRoutes)
  for (const [what, payload, path] of [
    ['a float for an integer', { total: 4.5 }, '/body/total'],
    ['"true" for a boolean', { total: 1, paid: 'true' }, '/body/paid'],
    ['1 for a boolean', { total: 1, paid: 1 }, '/body/paid'],
    ['a number for a string', { total: 1, note: 7 }, '/body/note'],
    ['null for an integer', { total: null }, '/body/total']
  ] as const) {
    const res = await app.inject({ method: 'POST', url: '/api/v1/orders', payload })
    t.equal(res.statusCode, 400, what)
    t.match(res.json(), { errors: [{ path }] }, `${what}: names ${path}`)
  }
  const ok = await app.inject({ method: 'POST', url: '/api/v1/orders', payload: { total: 3, paid: false, note: '7' } })
  t.same(ok.json(), { total: 3, paid: false, note: '7' }, 'what passes arrives unchanged')
})

t.test('query strings and params are converted from their text only where the conversion is exact', async (t) => {
  const { app } = await build(t)
  await app.register(ordersRoutes)
  const get = (query: string) => app.inject({ url: `/api/v1/orders/${ID}?${query}` })
  t.same((await get('limit=7&ratio=0.5&open=true&tag=a')).json(), { id: ID, query: { limit: 7, ratio: 0.5, open: true, tag: ['a'] } })
  t.same((await get('tag=a&tag=b')).json().query.tag, ['a', 'b'], 'a repeated key is a list')
  for (const query of ['limit=2.5', 'limit=042', 'limit=1e1', 'limit=ten', 'limit=', 'open=1', 'open=TRUE', 'ratio=0x10', 'limit=1&limit=2']) {
    const res = await get(query)
    t.equal(res.statusCode, 400, query)
    t.equal(res.json().code, 'VALIDATION', query)
  }
  const badId = await app.inject({ url: '/api/v1/orders/not-a-uuid' })
  t.equal(badId.statusCode, 400, 'format: uuid is checked')
  t.match(badId.json(), { errors: [{ path: '/params/id' }] })
})

t.test('declared defaults fill in what the client left out', async (t) => {
  const { app } = await build(t)
  await app.register(ordersRoutes)
  t.same((await app.inject({ url: `/api/v1/orders/${ID}` })).json().query, { limit: 20 })
})

t.test('a schema that is not TypeBox, or names a format nobody checks, stops the start with a message naming the route', async (t) => {
  for (const [what, schema, message] of [
    ['plain JSON Schema', { type: 'object', properties: { a: { type: 'string' } } }, /POST:? \/test\/plain.*TypeBox/],
    ['an unknown format', Type.Object({ a: Type.String({ format: 'no-such-format' }) }), /POST:? \/test\/plain.*no-such-format/]
  ] as const) {
    const app = await buildApp(testConfig())
    t.teardown(() => app.close())
    app.post('/test/plain', { config: { auth: false }, schema: { body: schema } }, async () => ({}))
    await t.rejects(async () => { await app.ready() }, { message }, what)
  }
})
