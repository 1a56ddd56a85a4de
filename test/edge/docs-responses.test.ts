// What /docs/json promises about each operation's responses, parameters and headers, derived from what
// its route declares (auth, rate limit, body and parameter schemas, caching and preconditions): the
// shared problem+json component, conditional requests, and a new route documented with no docs edits.

import t from 'tap'
import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { build } from '../helpers/app.ts'
import { probeResource, PROBE_PATH } from '../helpers/probe-resource.ts'
import { itemsSkipReason } from '../helpers/examples.ts'

// Start-up blocks the event loop for long on a busy machine; these tests read the document, so no load shedding.
const DOCUMENT_ONLY = { SHED_MAX_EVENT_LOOP_DELAY_MS: '0' }

const METHODS = new Set(['get', 'put', 'post', 'delete', 'patch'])

interface Ref { $ref: string }
interface Header { schema?: unknown, description?: string, required?: boolean }
interface Response { description?: string, headers?: Record<string, Header | Ref>, content?: Record<string, { schema?: unknown, example?: unknown }> }
interface Parameter { in: string, name: string, required?: boolean, schema?: unknown }
interface Operation { responses: Record<string, Response | Ref>, parameters?: Array<Parameter | Ref>, security?: Array<Record<string, string[]>>, requestBody?: { content?: Record<string, { example?: unknown }> } }
interface OpenApi {
  paths: Record<string, Record<string, Operation>>
  components: {
    schemas: Record<string, { properties?: Record<string, unknown>, examples?: unknown[] }>
    responses?: Record<string, Response>
    headers?: Record<string, Header>
    parameters?: Record<string, Parameter>
  }
}

/** A document whose `$ref`s can be followed, with the helpers the assertions need. */
function reader (doc: OpenApi) {
  function deref<T> (value: T | Ref): T {
    if (typeof value !== 'object' || value === null || !('$ref' in value)) return value as T
    const path = value.$ref.replace(/^#\//, '').split('/')
    let target: unknown = doc
    for (const part of path) target = (target as Record<string, unknown> | undefined)?.[part]
    if (target === undefined) throw new Error(`${value.$ref} does not resolve`)
    return deref(target as T | Ref)
  }
  const response = (op: Operation, status: string): Response | undefined =>
    op.responses[status] === undefined ? undefined : deref(op.responses[status])
  /** The response's header names, lower-cased. */
  const headers = (res: Response | undefined): string[] => Object.keys(res?.headers ?? {}).map((h) => h.toLowerCase())
  const parameter = (op: Operation, location: string, name: string): Parameter | undefined =>
    (op.parameters ?? []).map((p) => deref(p)).find((p) => p.in === location && p.name.toLowerCase() === name.toLowerCase())
  const isProblem = (res: Response | undefined): boolean => {
    const media = res?.content?.['application/problem+json']
    return media !== undefined && deref(media.schema as Ref) === doc.components.schemas.Problem
  }
  function * operations (): Generator<[string, string, Operation]> {
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) if (METHODS.has(method)) yield [path, method, op]
    }
  }
  return { deref, response, headers, parameter, isProblem, operations }
}

async function documentOf (t: Parameters<typeof build>[0], extra?: FastifyPluginAsyncTypebox): Promise<OpenApi> {
  const { app } = await build(t, DOCUMENT_ONLY)
  if (extra !== undefined) await app.register(extra)
  const res = await app.inject('/docs/json')
  if (res.statusCode !== 200) throw new Error(`/docs/json answered ${res.statusCode}`)
  return res.json() as OpenApi
}

t.test('one shared problem+json schema, with the fields every error response carries and an example', async (t) => {
  const doc = await documentOf(t)
  const problem = doc.components.schemas.Problem
  t.ok(problem, 'components.schemas.Problem')
  for (const field of ['type', 'title', 'status', 'detail', 'instance', 'code', 'requestId', 'errors']) {
    t.ok(problem?.properties?.[field], `Problem.${field}`)
  }
  t.ok((problem?.examples ?? []).length > 0, 'an example')
})

t.test('GET /api/v1/items/{id} lists 200 with ETag and Last-Modified, 304, and 404 as problem+json', { skip: itemsSkipReason }, async (t) => {
  const doc = await documentOf(t)
  const r = reader(doc)
  const get = doc.paths['/api/v1/items/{id}']!.get!
  t.same(r.headers(r.response(get, '200')).filter((h) => h === 'etag' || h === 'last-modified').sort(), ['etag', 'last-modified'])
  t.ok(r.response(get, '304'), '304')
  t.ok(r.isProblem(r.response(get, '404')), '404 is problem+json')
  t.ok(r.parameter(get, 'header', 'If-None-Match'), 'If-None-Match')
  t.ok(r.parameter(get, 'header', 'If-Modified-Since'), 'If-Modified-Since')
  t.ok(r.response(get, '200')?.content?.['application/json']?.example, 'the item has an example')
})

t.test('PUT /api/v1/items/{id} requires If-Match and lists 412 and 428', { skip: itemsSkipReason }, async (t) => {
  const doc = await documentOf(t)
  const r = reader(doc)
  const put = doc.paths['/api/v1/items/{id}']!.put!
  t.equal(r.parameter(put, 'header', 'If-Match')?.required, true, 'If-Match is required')
  t.ok(r.isProblem(r.response(put, '412')), '412')
  t.ok(r.isProblem(r.response(put, '428')), '428')
  t.ok(put.requestBody?.content?.['application/json']?.example, 'the request body has an example')
  const del = doc.paths['/api/v1/items/{id}']!.delete!
  t.notOk(r.parameter(del, 'header', 'If-Match')?.required, 'DELETE takes If-Match optionally')
  t.ok(r.response(del, '412'), 'DELETE lists 412')
  t.notOk(r.response(del, '428'), 'DELETE does not require a precondition')
  t.notOk(r.parameter(doc.paths['/api/v1/items']!.post!, 'header', 'If-Match'), 'creating takes no If-Match')
  t.ok(r.headers(r.response(doc.paths['/api/v1/items']!.post!, '201')).includes('location'), 'a create answers Location')
})

t.test('every operation that needs a token lists 401 with WWW-Authenticate and 403', async (t) => {
  const doc = await documentOf(t)
  const r = reader(doc)
  let checked = 0
  for (const [path, method, op] of r.operations()) {
    const needsToken = (op.security ?? []).length > 0 && !(op.security ?? []).some((s) => Object.keys(s).length === 0)
    if (!needsToken) continue
    checked++
    t.ok(r.isProblem(r.response(op, '401')), `${method} ${path}: 401`)
    t.ok(r.headers(r.response(op, '401')).includes('www-authenticate'), `${method} ${path}: 401 with WWW-Authenticate`)
    t.ok(r.isProblem(r.response(op, '403')), `${method} ${path}: 403`)
  }
  t.ok(checked > 0, 'the app has routes that need a token')
})

t.test('every response names x-request-id; rate-limited operations list 429 and RateLimit headers; errors are problem+json', async (t) => {
  const doc = await documentOf(t)
  const r = reader(doc)
  // The example list route declares a computed ETag; without the examples, the probe route's test below covers these.
  if (itemsSkipReason === false) {
    const items = doc.paths['/api/v1/items']!.get!
    t.ok(r.isProblem(r.response(items, '429')), '429')
    t.ok(r.headers(r.response(items, '429')).includes('retry-after'), '429 with Retry-After')
    t.ok(r.headers(r.response(items, '200')).includes('ratelimit-remaining'), '200 with RateLimit-Remaining')
    t.ok(r.response(items, '304'), 'a computed ETag makes 304 possible')
    t.ok(r.parameter(items, 'header', 'If-None-Match'), 'and If-None-Match meaningful')
    t.ok(r.headers(r.response(items, '200')).includes('etag'), 'and the 200 carries an ETag')
    t.ok(r.isProblem(r.response(items, '503')), 'load shedding: 503')
  }
  t.notOk(r.response(doc.paths['/health/live']!.get!, '429'), 'a route with rateLimit: false lists no 429')
  t.notOk(r.response(doc.paths['/health/live']!.get!, '503'), 'a route with loadShedding: false is never shed')
  for (const [path, method, op] of r.operations()) {
    for (const status of Object.keys(op.responses)) {
      const res = r.response(op, status)
      t.ok(r.headers(res).includes('x-request-id'), `${method} ${path} ${status}: x-request-id`)
      if (Number(status) >= 400 && path !== '/health/ready') t.ok(r.isProblem(res), `${method} ${path} ${status}: problem+json`)
    }
    t.ok(r.isProblem(r.response(op, '500')), `${method} ${path}: 500`)
  }
})

t.test('a new route is documented from its declarations alone, with no docs code', async (t) => {
  const widgets: FastifyPluginAsyncTypebox = async (app) => {
    app.patch('/test/widgets/:id', {
      config: { auth: { scopes: ['widgets:write'] }, cache: { etag: 'resource' }, preconditions: 'required' },
      schema: { summary: 'Patch a widget', params: Type.Object({ id: Type.String() }), body: Type.Object({ name: Type.String() }), response: { 200: Type.Object({ name: Type.String() }) } }
    }, async (request) => ({ name: request.body.name }))
    await app.register(probeResource)
  }
  const doc = await documentOf(t, widgets)
  const r = reader(doc)
  const create = doc.paths[PROBE_PATH]!.post!
  for (const status of ['201', '400', '401', '403', '413', '415', '429', '500', '503']) {
    t.ok(r.response(create, status), `POST ${PROBE_PATH}: ${status}`)
  }
  t.ok(r.headers(r.response(create, '201')).includes('location'), 'a 201 names Location')
  t.notOk(r.response(create, '404'), 'no path parameter, no 404')
  const read = doc.paths[`${PROBE_PATH}/{id}`]!.get!
  t.ok(r.isProblem(r.response(read, '404')), 'a path parameter makes 404 possible')
  t.ok(r.isProblem(r.response(read, '400')), 'and 400 (its schema)')
  t.notOk(r.response(read, '401'), 'a public route lists no 401')
  t.notOk(r.response(read, '304'), 'a route without an ETag lists no 304')
  const patch = doc.paths['/test/widgets/{id}']!.patch!
  t.equal(r.parameter(patch, 'header', 'If-Match')?.required, true, 'preconditions: required → If-Match required')
  t.ok(r.response(patch, '428'), '428')
  t.ok(r.response(patch, '412'), '412')
  t.ok(r.headers(r.response(patch, '200')).includes('etag'), 'a resource ETag on the write\'s answer')
})
