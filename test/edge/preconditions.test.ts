// `config.preconditions` on a write: 'required' answers 428 without If-Match before the handler runs
// (after authentication and validation, as the route's own check would); a misdeclaration stops the start.

import t from 'tap'
import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { build } from '../helpers/app.ts'
import { validateRoutePreconditions } from '../../edge/caching.ts'

const GUARDED = '/test/guarded/:id'
// Start-up blocks the event loop for long on a busy machine; load shedding would answer the first requests.
const NO_SHEDDING = { SHED_MAX_EVENT_LOOP_DELAY_MS: '0' }

t.test('a write declaring preconditions: required gets 428 without If-Match, and its handler never runs', async (t) => {
  const { app } = await build(t, NO_SHEDDING)
  let handled = 0
  const guarded: FastifyPluginAsyncTypebox = async (fastify) => {
    fastify.put(GUARDED, {
      config: { auth: false, cache: { etag: 'resource' }, preconditions: 'required' },
      schema: { params: Type.Object({ id: Type.String() }), body: Type.Object({ name: Type.String() }) }
    }, async (_request, reply) => {
      handled++
      return reply.code(204).send()
    })
  }
  await app.register(guarded)
  const put = (headers: Record<string, string>, payload: Record<string, unknown>) => app.inject({ method: 'PUT', url: '/test/guarded/1', headers, payload })

  const missing = await put({}, { name: 'x' })
  t.equal(missing.statusCode, 428)
  t.match(missing.headers['content-type'], /^application\/problem\+json/)
  t.match(missing.json(), { status: 428, code: 'PRECONDITION_REQUIRED' })
  t.equal(handled, 0, 'the handler did not run')

  t.equal((await put({}, { name: 7 })).statusCode, 400, 'an invalid body is refused first, as before the declaration')
  t.equal((await put({ 'if-match': '"v1"' }, { name: 'x' })).statusCode, 204, 'with If-Match the handler decides')
  t.equal(handled, 1)
})

t.test('a misdeclared precondition stops the start, naming the route', async (t) => {
  const resource = { etag: 'resource' } as const
  t.equal(validateRoutePreconditions('optional', ['DELETE'], resource, 'DELETE /x'), 'optional')
  t.throws(() => validateRoutePreconditions('always', ['PUT'], resource, 'PUT /x'), { message: /^PUT \/x: config\.preconditions must be/ })
  t.throws(() => validateRoutePreconditions('required', ['GET'], resource, 'GET /x'), { message: /applies to writes/ })
  t.throws(() => validateRoutePreconditions('required', ['PUT'], { etag: 'computed' }, 'PUT /x'), { message: /needs cache\.etag "resource"/ })
  t.throws(() => validateRoutePreconditions('required', ['PUT'], undefined, 'PUT /x'), { message: /needs cache\.etag "resource"/ })

  const { app } = await build(t, NO_SHEDDING)
  app.register(async (fastify) => {
    fastify.put('/test/unguarded', { config: { auth: false, preconditions: 'required' } }, async () => ({}))
  })
  await t.rejects(async () => { await app.ready() }, { message: /PUT \/test\/unguarded: config\.preconditions needs cache\.etag/ })
})
