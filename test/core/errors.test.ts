// Every failure is RFC 9457 problem+json, Fastify's own included; internal errors leak nothing.

import t, { type Test } from 'tap'
import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { connect } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { once } from 'node:events'
import { build, listen } from '../helpers/app.ts'
import { PROBE_PATH, probeResource } from '../helpers/probe-resource.ts'
import { codeForStatus } from '../../core/errors.ts'

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
  await built.app.register(probeResource)
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

t.test('every status Keel answers has a code that names it', async (t) => {
  const expected: Record<number, string> = {
    400: 'BAD_REQUEST',
    401: 'UNAUTHORIZED',
    403: 'FORBIDDEN',
    404: 'NOT_FOUND',
    405: 'METHOD_NOT_ALLOWED',
    406: 'NOT_ACCEPTABLE',
    408: 'REQUEST_TIMEOUT',
    409: 'CONFLICT',
    412: 'PRECONDITION_FAILED',
    413: 'PAYLOAD_TOO_LARGE',
    414: 'URI_TOO_LONG',
    415: 'UNSUPPORTED_MEDIA_TYPE',
    426: 'UPGRADE_REQUIRED',
    428: 'PRECONDITION_REQUIRED',
    429: 'RATE_LIMITED',
    431: 'REQUEST_HEADER_FIELDS_TOO_LARGE',
    500: 'INTERNAL',
    501: 'NOT_IMPLEMENTED',
    502: 'BAD_GATEWAY',
    503: 'SERVICE_UNAVAILABLE',
    504: 'GATEWAY_TIMEOUT'
  }
  for (const [status, code] of Object.entries(expected)) t.equal(codeForStatus(Number(status)), code, status)
  t.equal(codeForStatus(418), 'BAD_REQUEST', 'a 4xx without its own code')
  t.equal(codeForStatus(599), 'INTERNAL', 'a 5xx without its own code')
})

t.test('an unknown method on a known path → 405 problem+json with Allow; an unknown path stays 404', async (t) => {
  const { app: a } = await app(t)
  const res = await a.inject({ method: 'PATCH', url: `${PROBE_PATH}/x`, headers: { 'x-request-id': 'patch-1' } })
  const body = isProblem(t, res, 405)
  t.equal(body.code, 'METHOD_NOT_ALLOWED')
  t.equal(body.requestId, 'patch-1')
  t.same(String(res.headers.allow).split(', ').sort(), ['DELETE', 'GET', 'HEAD'])
  t.equal(res.headers['x-request-id'], 'patch-1')
  t.same(String((await a.inject({ method: 'DELETE', url: PROBE_PATH })).headers.allow).split(', ').sort(), ['GET', 'HEAD', 'POST'])
  t.equal((await a.inject({ method: 'PUT', url: '/test/echo' })).headers.allow, 'POST', 'routes added by any plugin count')
  t.equal((await a.inject({ method: 'PATCH', url: '/api/v1/nothing/here' })).statusCode, 404)
  t.equal((await a.inject({ method: 'GET', url: `${PROBE_PATH}/x/y` })).statusCode, 404)
})

t.test('a bad percent-encoding or an over-long path parameter → problem+json with the security headers and request id', async (t) => {
  const { app: a } = await app(t)
  for (const [url, status, code] of [
    [`${PROBE_PATH}/%zz`, 400, 'BAD_REQUEST'],
    ['/%E0%A4%A?access_token=secret', 400, 'BAD_REQUEST'],
    [`${PROBE_PATH}/${'x'.repeat(200)}`, 414, 'URI_TOO_LONG']
  ] as const) {
    const res = await a.inject({ url, headers: { 'x-request-id': 'bad-url-1' } })
    const body = isProblem(t, res, status)
    t.equal(body.code, code, url)
    t.equal(body.requestId, 'bad-url-1')
    t.equal(res.headers['x-request-id'], 'bad-url-1')
    t.equal(res.headers['content-security-policy'], "default-src 'none';frame-ancestors 'none'")
    t.equal(res.headers['x-content-type-options'], 'nosniff')
    t.notMatch(res.body, /secret/, 'the query is never echoed')
  }
})

/** Writes raw bytes on a fresh connection (TLS with ALPN http/1.1 when `ca` is given) and reads until the server closes it. */
async function rawExchange (port: number, bytes: string, ca?: Buffer): Promise<string> {
  const socket = ca === undefined
    ? connect({ host: '127.0.0.1', port })
    : tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost', ALPNProtocols: ['http/1.1'] })
  await once(socket, ca === undefined ? 'connect' : 'secureConnect')
  socket.write(bytes)
  let text = ''
  socket.setEncoding('latin1')
  for await (const chunk of socket) text += chunk
  return text
}

function parseRaw (t: Test, text: string): { status: number, headers: Record<string, string>, body: Record<string, unknown> } {
  const [head = '', body = ''] = text.split('\r\n\r\n')
  const [statusLine = '', ...lines] = head.split('\r\n')
  const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]))
  t.equal(Number(headers['content-length']), Buffer.byteLength(body), 'Content-Length is the body\'s')
  return { status: Number(statusLine.split(' ')[1]), headers, body: JSON.parse(body) as Record<string, unknown> }
}

t.test('errors the HTTP parser raises (431, malformed requests) are problem+json on the socket, with the security headers', async (t) => {
  const cleartext = await listen(t, { TLS: 'off' })
  const tls = await listen(t)
  const cases = [
    { what: 'a header section over the limit', bytes: `GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, status: 431, code: 'REQUEST_HEADER_FIELDS_TOO_LARGE' },
    { what: 'a malformed request line', bytes: 'THIS IS NOT HTTP\r\n\r\n', status: 400, code: 'BAD_REQUEST' },
    { what: 'a bad header name', bytes: 'GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n', status: 400, code: 'BAD_REQUEST' }
  ]
  for (const [server, c] of [...cases.map((c) => [cleartext, c] as const), ...cases.map((c) => [tls, { ...c, what: `${c.what} (TLS)` }] as const)]) {
    const res = parseRaw(t, await rawExchange(server.port, c.bytes, server.ca))
    t.equal(res.status, c.status, c.what)
    t.match(res.headers['content-type'], /^application\/problem\+json/, c.what)
    t.equal(res.headers['content-security-policy'], "default-src 'none';frame-ancestors 'none'", `${c.what}: security headers`)
    t.equal(res.headers.connection, 'close')
    t.match(res.body, { status: c.status, code: c.code, type: String, title: String, detail: String, instance: String, requestId: String }, c.what)
    t.equal(res.headers['x-request-id'], res.body.requestId, `${c.what}: the request id in header and body`)
  }
})
