// /docs/json is an OpenAPI 3.1 document of every API route with its schemas and auth; /docs serves its UI.

import t from 'tap'
import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { build } from '../helpers/app.ts'

// Start-up blocks the event loop for long on a busy machine; these tests read the document, so no load shedding.
const DOCUMENT_ONLY = { SHED_MAX_EVENT_LOOP_DELAY_MS: '0' }

// Routes left out of the document on purpose (`schema: { hide: true }`): operational endpoints and
// non-JSON protocols. The docs' own routes are left out too. Every other route must be documented.
const UNDOCUMENTED = new Set(['/metrics', '/ws', '/sse'])
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']

interface Operation { responses?: Record<string, unknown>, parameters?: Array<{ in: string, name: string, required?: boolean }>, requestBody?: { content?: Record<string, { schema?: unknown }> }, security?: Array<Record<string, string[]>> }
interface OpenApi { openapi: string, info: { title: string, version: string }, paths: Record<string, Record<string, Operation>>, components: Record<string, Record<string, unknown> | undefined> }

const probeRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.put('/test/widgets/:id', {
    config: { auth: { scopes: ['widgets:write'] } },
    schema: {
      params: Type.Object({ id: Type.String() }),
      body: Type.Object({ name: Type.String({ maxLength: 20 }) }),
      response: { 200: Type.Object({ id: Type.String(), name: Type.String() }) }
    }
  }, async (request) => ({ id: request.params.id, name: request.body.name }))
  app.get('/test/me', { config: { auth: 'optional' } }, async () => ({}))
}

/** Every (method, path) Fastify routes, from its route tree; HEAD and OPTIONS are implied, not documented. */
function registeredRoutes (tree: string): Array<[string, string]> {
  const stack: string[] = []
  const routes: Array<[string, string]> = []
  for (const line of tree.split('\n')) {
    const m = /^((?:│ {3}| {4})*)(?:├── |└── )(.+?) \(([^)]+)\)$/.exec(line)
    if (m === null) continue
    const depth = m[1]!.length / 4
    stack.length = depth
    stack.push(m[2]!)
    for (const method of m[3]!.split(', ')) {
      if (method !== 'HEAD' && method !== 'OPTIONS') routes.push([method.toLowerCase(), stack.join('')])
    }
  }
  return routes
}

/** Every `$ref` string anywhere in `value`. */
function refsIn (value: unknown, found: string[] = []): string[] {
  if (Array.isArray(value)) for (const v of value) refsIn(v, found)
  else if (value !== null && typeof value === 'object') {
    for (const [key, v] of Object.entries(value)) {
      if (key === '$ref' && typeof v === 'string') found.push(v)
      else refsIn(v, found)
    }
  }
  return found
}

t.test('/docs/json is an OpenAPI 3.1 document listing every route with its schemas', async (t) => {
  const { app } = await build(t, DOCUMENT_ONLY)
  await app.register(probeRoutes)
  const res = await app.inject('/docs/json')
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  const doc = res.json() as OpenApi
  t.equal(doc.openapi, '3.1.0')
  t.type(doc.info.title, 'string')
  t.type(doc.info.version, 'string')
  t.match(doc.components.securitySchemes, { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } })

  const routes = registeredRoutes(app.printRoutes({ commonPrefix: false }))
  t.ok(routes.length > 5, 'the route tree was read')
  for (const [method, path] of routes) {
    if (path === '/docs' || path.startsWith('/docs/') || UNDOCUMENTED.has(path)) continue
    const openapiPath = path.replace(/:(\w+)/g, '{$1}')
    t.ok(doc.paths[openapiPath]?.[method], `${method.toUpperCase()} ${path} is documented`)
  }
  for (const hidden of UNDOCUMENTED) t.notOk(doc.paths[hidden], `${hidden} is not part of the API document`)
  t.notOk(Object.keys(doc.paths).some((p) => p.startsWith('/docs')), 'the docs do not document themselves')

  // Structure: every operation has responses, declares its path parameters, and every $ref (operations' and
  // the shared components') resolves.
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!METHODS.includes(method)) continue
      t.ok(Object.keys(op.responses ?? {}).length > 0, `${method} ${path}: responses`)
      t.ok(Array.isArray(op.security), `${method} ${path}: security stated`)
      for (const [, name] of path.matchAll(/\{(\w+)\}/g)) {
        t.ok(op.parameters?.some((p) => p.in === 'path' && p.name === name && p.required === true), `${method} ${path}: path parameter ${name}`)
      }
      if (method === 'post' || method === 'put' || method === 'patch') {
        t.ok(op.requestBody?.content?.['application/json']?.schema, `${method} ${path}: request body schema`)
      }
    }
  }
  for (const ref of new Set(refsIn(doc))) {
    const [, kind, name] = /^#\/components\/(\w+)\/(.+)$/.exec(ref) ?? []
    t.ok(kind !== undefined && doc.components[kind]?.[name!] !== undefined, `${ref} resolves`)
  }

  // Schemas come from the routes' TypeBox definitions.
  const put = doc.paths['/test/widgets/{id}']!.put!
  t.match(put.requestBody, { content: { 'application/json': { schema: { type: 'object', properties: { name: { type: 'string', maxLength: 20 } } } } } })
  t.match(put.responses, { 200: { content: { 'application/json': { schema: { properties: { id: { type: 'string' } } } } } } })
  t.match(doc.paths['/health/ready']!.get!.responses, { 200: { content: { 'application/json': { schema: Object } } }, 503: Object })
})

t.test('each operation\'s security follows its route\'s config.auth', async (t) => {
  const { app } = await build(t, DOCUMENT_ONLY)
  await app.register(probeRoutes)
  const doc = (await app.inject('/docs/json')).json() as OpenApi
  t.same(doc.paths['/test/widgets/{id}']!.put!.security, [{ bearerAuth: ['widgets:write'] }], 'scopes required')
  t.same(doc.paths['/test/me']!.get!.security, [{}, { bearerAuth: [] }], 'optional token')
  t.same(doc.paths['/health/live']!.get!.security, [], 'public')
})

t.test('the docs need no token', async (t) => {
  const { app } = await build(t, DOCUMENT_ONLY)
  for (const url of ['/docs', '/docs/json', '/docs/yaml', '/docs/static/swagger-initializer.js']) {
    t.equal((await app.inject(url)).statusCode, 200, url)
  }
})
