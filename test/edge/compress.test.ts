// Compression: each coding round-trips, Accept-Encoding q-values and identity;q=0 are honoured, small
// bodies and SSE are left alone, and compressed request bodies are capped (a bomb gets 413, not OOM).

import t, { type Test } from 'tap'
import * as zlib from 'node:zlib'
import { once } from 'node:events'
import { Readable } from 'node:stream'
import { request as httpsRequest } from 'node:https'
import type { IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ClientHttp2Session } from 'node:http2'
import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsync } from 'fastify'
import { build } from '../helpers/app.ts'
import { h2session } from '../helpers/http.ts'
import { CappedInflation, codingWithoutIdentity } from '../../edge/compress.ts'

const hasZstd = typeof zlib.zstdDecompressSync === 'function'
const decoders: Record<string, (body: Buffer) => Buffer> = {
  br: (b) => zlib.brotliDecompressSync(b),
  gzip: (b) => zlib.gunzipSync(b),
  deflate: (b) => zlib.inflateSync(b),
  ...(hasZstd ? { zstd: (b: Buffer) => zlib.zstdDecompressSync(b) } : {})
}
const encoders: Record<string, (body: Buffer) => Buffer> = { gzip: zlib.gzipSync, deflate: zlib.deflateSync, br: zlib.brotliCompressSync }

const listOf = (n: number) => ({ items: Array.from({ length: n }, (_, i) => ({ id: `item-${i}`, name: `item number ${i}`, tags: ['alpha', 'beta'] })) })
const BIG = JSON.stringify(listOf(60)) // ~4 KiB: the synchronous path
const HUGE = JSON.stringify(listOf(2000)) // ~130 KiB: the streaming path

const probeRoutes: FastifyPluginAsync = async (app) => {
  const open = { config: { auth: false as const } }
  app.get('/test/big', open, async (_request, reply) => reply.type('application/json').send(BIG))
  app.get('/test/huge', open, async (_request, reply) => reply.type('application/json').send(HUGE))
  app.get('/test/small', open, async () => ({ ok: true }))
  app.get('/test/empty', open, async (_request, reply) => reply.code(204).send())
  app.get('/test/events', open, async (_request, reply) => reply.type('text/event-stream').send(`data: ${'x'.repeat(4000)}\n\n`))
  app.get('/test/event-stream', open, async (_request, reply) =>
    reply.type('text/event-stream').send(Readable.from(Array.from({ length: 50 }, (_, i) => `id: ${i}\ndata: ${'y'.repeat(100)}\n\n`))))
  // A route receives a body only when it declares one.
  const anyBody = { ...open, schema: { body: Type.Unknown() } }
  app.post('/test/echo', anyBody, async (request) => ({ bytes: JSON.stringify(request.body).length }))
  app.post('/test/limited', { ...anyBody, bodyLimit: 2048 }, async (request) => ({ bytes: JSON.stringify(request.body).length }))
  app.post('/test/roomy', { ...anyBody, bodyLimit: 64 * 1024 }, async (request) => ({ bytes: JSON.stringify(request.body).length }))
}

async function app (t: Test, env: Record<string, string> = {}) {
  const built = await build(t, env)
  await built.app.register(probeRoutes)
  return built.app
}

/** The app with the probe routes, listening on TLS (HTTP/2 + HTTP/1.1); the client trusts its dev certificate. */
async function listening (t: Test): Promise<{ url: string, ca: Buffer }> {
  const { app: a, config } = await build(t)
  await a.register(probeRoutes)
  await a.listen({ host: '127.0.0.1', port: 0 })
  const address = a.server.address() as AddressInfo
  return { url: `https://127.0.0.1:${address.port}`, ca: readFileSync(join(config.certsDir, 'dev-cert.pem')) }
}

/** A gzip body that inflates to `inflatedBytes` of JSON whitespace, built without holding the inflated form. */
async function gzipBomb (inflatedBytes: number): Promise<Buffer> {
  const gzip = zlib.createGzip({ level: 9 })
  const chunks: Buffer[] = []
  gzip.on('data', (chunk: Buffer) => chunks.push(chunk))
  const spaces = Buffer.alloc(1024 * 1024, 0x20)
  for (let written = 0; written < inflatedBytes; written += spaces.length) {
    if (!gzip.write(spaces)) await once(gzip, 'drain')
  }
  gzip.end()
  await once(gzip, 'end')
  return Buffer.concat(chunks)
}

const jsonOf = (n: number) => Buffer.from(JSON.stringify({ text: 'z'.repeat(n) }))

t.test('each coding round-trips a >1 KiB body to the same bytes, with Vary: Accept-Encoding', async (t) => {
  const a = await app(t)
  for (const coding of Object.keys(decoders)) {
    const res = await a.inject({ url: '/test/big', headers: { 'accept-encoding': coding } })
    t.equal(res.headers['content-encoding'], coding, coding)
    t.match(res.headers.vary, /accept-encoding/i, `${coding}: Vary`)
    t.ok(res.rawPayload.length < Buffer.byteLength(BIG), `${coding}: smaller`)
    t.equal(decoders[coding]!(res.rawPayload).toString(), BIG, `${coding}: decodes to the same bytes`)
  }
  if (!hasZstd) t.comment('zstd skipped: this runtime has no zlib zstd')
})

t.test('large bodies stream compressed over HTTP/2 and decode to the same bytes', async (t) => {
  const { url, ca } = await listening(t)
  const session = await h2session(url, { ca })
  t.teardown(() => session.close())
  for (const coding of Object.keys(decoders)) {
    const res = await h2raw(session, { ':path': '/test/huge', 'accept-encoding': coding })
    t.equal(res.headers['content-encoding'], coding, coding)
    t.equal(decoders[coding]!(res.body).toString(), HUGE, `${coding}: decodes to the same bytes`)
  }
})

t.test('browsers offering every coding at equal weight get br (zstd only when preferred or alone)', async (t) => {
  const a = await app(t)
  const res = await a.inject({ url: '/test/big', headers: { 'accept-encoding': 'gzip, deflate, br, zstd' } })
  t.equal(res.headers['content-encoding'], 'br')
  if (hasZstd) {
    const zstd = await a.inject({ url: '/test/big', headers: { 'accept-encoding': 'br;q=0.5, zstd' } })
    t.equal(zstd.headers['content-encoding'], 'zstd')
  }
})

t.test('q-values choose the coding, and q=0 rules one out', async (t) => {
  const a = await app(t)
  const cases: Array<[string, string | undefined]> = [
    ['gzip;q=0.5, br;q=0.9', 'br'],
    ['br;q=0.2, gzip;q=0.8, deflate;q=0.5', 'gzip'],
    ['br;q=0, gzip', 'gzip'],
    ['br;q=0, gzip;q=0, deflate', 'deflate'],
    ['br;q=0, gzip;q=0, deflate;q=0, zstd;q=0', undefined],
    ['identity', undefined],
    ['', undefined]
  ]
  for (const [accept, expected] of cases) {
    const res = await a.inject({ url: '/test/big', headers: { 'accept-encoding': accept } })
    t.equal(res.statusCode, 200, accept)
    t.equal(res.headers['content-encoding'], expected, `"${accept}" → ${expected ?? 'identity'}`)
    t.match(res.headers.vary, /accept-encoding/i, `"${accept}": the coding depended on Accept-Encoding`)
  }
  const none = await a.inject('/test/big')
  t.notOk(none.headers['content-encoding'], 'no Accept-Encoding → identity')
  t.equal(none.body, BIG)
})

t.test('identity;q=0: the body is compressed whatever its size, or 406 when nothing offered is acceptable', async (t) => {
  const a = await app(t)
  for (const url of ['/test/small', '/test/big']) {
    const res = await a.inject({ url, headers: { 'accept-encoding': 'gzip;q=0.5, identity;q=0' } })
    t.equal(res.headers['content-encoding'], 'gzip', url)
    t.ok(JSON.parse(zlib.gunzipSync(res.rawPayload).toString()), `${url} decodes`)
  }
  const star = await a.inject({ url: '/test/small', headers: { 'accept-encoding': '*;q=0, deflate' } })
  t.equal(star.headers['content-encoding'], 'deflate', '*;q=0 without an identity entry refuses identity too')
  for (const accept of ['identity;q=0', '*;q=0', 'identity;q=0, compress', 'gzip;q=0, identity;q=0.0']) {
    const res = await a.inject({ url: '/test/small', headers: { 'accept-encoding': accept } })
    t.equal(res.statusCode, 406, accept)
    t.match(res.headers['content-type'], /^application\/problem\+json/)
    t.equal(res.json().code, 'NOT_ACCEPTABLE')
  }
  const empty = await a.inject({ url: '/test/empty', headers: { 'accept-encoding': 'gzip, identity;q=0' } })
  t.equal(empty.statusCode, 204, 'an empty answer stays empty')
  t.equal(empty.rawPayload.length, 0)
  t.notOk(empty.headers['content-encoding'])
  const allowed = await a.inject({ url: '/test/small', headers: { 'accept-encoding': '*;q=0, identity' } })
  t.equal(allowed.statusCode, 200, 'an explicit identity entry overrides *;q=0')
  t.notOk(allowed.headers['content-encoding'])
})

t.test('codingWithoutIdentity reads Accept-Encoding as RFC 9110 says', async (t) => {
  t.equal(codingWithoutIdentity('gzip, br'), undefined, 'identity acceptable by default')
  t.equal(codingWithoutIdentity('identity;q=0.001'), undefined, 'any non-zero weight accepts it')
  t.equal(codingWithoutIdentity('IDENTITY;Q=0, GZIP'), 'gzip', 'case-insensitive')
  t.equal(codingWithoutIdentity('identity;q=0, *;q=0.3'), 'br', 'a wildcard accepts our first choice')
  t.equal(codingWithoutIdentity('identity;q=0, gzip;q=0.4, deflate;q=0.6'), 'deflate')
  t.equal(codingWithoutIdentity('identity;q=0, gzip;q=0'), null)
})

t.test('Vary keeps what CORS put there and names Accept-Encoding once', async (t) => {
  const a = await app(t, { CORS_ORIGINS: 'https://app.example' })
  for (const accept of ['gzip', 'identity']) {
    const res = await a.inject({ url: '/test/big', headers: { 'accept-encoding': accept, origin: 'https://app.example' } })
    const vary = String(res.headers.vary).toLowerCase().split(/\s*,\s*/)
    t.same(vary.filter((v) => v === 'origin'), ['origin'], `${accept}: Origin`)
    t.same(vary.filter((v) => v === 'accept-encoding'), ['accept-encoding'], `${accept}: Accept-Encoding once`)
  }
})

t.test('bodies under 1 KiB are never compressed', async (t) => {
  const a = await app(t)
  const res = await a.inject({ url: '/test/small', headers: { 'accept-encoding': 'br, gzip' } })
  t.notOk(res.headers['content-encoding'])
  t.notMatch(String(res.headers.vary ?? ''), /accept-encoding/i, 'the same answer for every client: no Vary')
  t.same(res.json(), { ok: true })
})

t.test('text/event-stream is never compressed', async (t) => {
  const a = await app(t)
  for (const url of ['/test/events', '/test/event-stream']) {
    const res = await a.inject({ url, headers: { 'accept-encoding': 'gzip, br, deflate, zstd' } })
    t.equal(res.statusCode, 200, url)
    t.notOk(res.headers['content-encoding'], `${url} is sent as written`)
    t.match(res.body, /^(id: 0\n)?data: /)
  }
})

t.test('compressed request bodies are accepted in gzip, deflate and br', async (t) => {
  const a = await app(t)
  const body = jsonOf(5000)
  for (const [coding, encode] of Object.entries(encoders)) {
    const res = await a.inject({ method: 'POST', url: '/test/echo', headers: { 'content-type': 'application/json', 'content-encoding': coding }, payload: encode(body) })
    t.equal(res.statusCode, 200, coding)
    t.same(res.json(), { bytes: body.length }, `${coding}: the handler sees the inflated body`)
  }
})

t.test('a bad compressed request body gets a clear problem+json error', async (t) => {
  const a = await app(t)
  const corrupt = await a.inject({ method: 'POST', url: '/test/echo', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, payload: Buffer.from('not gzip at all') })
  t.equal(corrupt.statusCode, 400, 'corrupt gzip → 400')
  t.match(corrupt.headers['content-type'], /^application\/problem\+json/)
  const unknown = await a.inject({ method: 'POST', url: '/test/echo', headers: { 'content-type': 'application/json', 'content-encoding': 'compress' }, payload: '{}' })
  t.equal(unknown.statusCode, 415, 'unsupported Content-Encoding → 415')
  t.match(unknown.headers['content-type'], /^application\/problem\+json/)
  if (hasZstd) {
    const zstd = await a.inject({ method: 'POST', url: '/test/echo', headers: { 'content-type': 'application/json', 'content-encoding': 'zstd' }, payload: zlib.zstdCompressSync(Buffer.from('{}')) })
    t.equal(zstd.statusCode, 415, 'zstd request bodies are not accepted')
  }
})

t.test('a gzip bomb gets 413 problem+json and the process stays far below the inflated size', async (t) => {
  const a = await app(t)
  const inflated = 100 * 1024 * 1024
  const bomb = await gzipBomb(inflated)
  t.ok(bomb.length < 200 * 1024, `the bomb is ${bomb.length} bytes on the wire`)
  const rssBefore = process.memoryUsage().rss
  const res = await a.inject({ method: 'POST', url: '/test/echo', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, payload: bomb })
  const growth = process.memoryUsage().rss - rssBefore
  t.equal(res.statusCode, 413)
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  t.equal(res.json().code, 'PAYLOAD_TOO_LARGE')
  t.ok(growth < inflated / 4, `RSS grew ${Math.round(growth / 1024 / 1024)} MiB for a body inflating to 100 MiB`)
})

t.test('the 413 for a bomb reaches the client over real sockets (HTTP/1.1 and HTTP/2)', async (t) => {
  const { url, ca } = await listening(t)
  const bomb = await gzipBomb(64 * 1024 * 1024)
  const headers = { 'content-type': 'application/json', 'content-encoding': 'gzip' }
  const h1 = await h1raw(`${url}/test/echo`, headers, bomb, ca)
  t.equal(h1.status, 413, 'HTTP/1.1')
  t.equal(JSON.parse(h1.body.toString()).code, 'PAYLOAD_TOO_LARGE')
  const session = await h2session(url, { ca })
  t.teardown(() => session.close())
  const h2 = await h2raw(session, { ':method': 'POST', ':path': '/test/echo', ...headers }, bomb)
  t.equal(h2.status, 413, 'HTTP/2')
  t.equal(JSON.parse(h2.body.toString()).code, 'PAYLOAD_TOO_LARGE')
  const after = await h2raw(session, { ':path': '/health/live' })
  t.equal(after.status, 200, 'the HTTP/2 session stays usable')
})

t.test('inflation stops at the cap instead of running through the bomb', async (t) => {
  const inner = zlib.createGunzip()
  let innerOut = 0
  inner.on('data', (chunk: Buffer) => { innerOut += chunk.length })
  const capped = new CappedInflation(inner, 1024 * 1024)
  let out = 0
  capped.on('data', (chunk: Buffer) => { out += chunk.length })
  const failed = once(capped, 'error')
  capped.end(await gzipBomb(64 * 1024 * 1024))
  const [err] = await failed as [{ statusCode: number, code: string }]
  t.match(err, { statusCode: 413, code: 'PAYLOAD_TOO_LARGE' })
  t.ok(out <= 1024 * 1024, 'never passes more than the cap on')
  t.ok(innerOut < 4 * 1024 * 1024, `the inflater stopped after ${innerOut} of 64 MiB`)
  t.ok(inner.destroyed)
})

t.test('a route\'s own bodyLimit is its inflation cap, below or above the app\'s', async (t) => {
  const a = await app(t, { BODY_LIMIT_BYTES: '4096' })
  const gz = (n: number) => zlib.gzipSync(jsonOf(n))
  const post = (url: string, n: number) => a.inject({ method: 'POST', url, headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, payload: gz(n) })
  t.equal((await post('/test/limited', 1500)).statusCode, 200, 'under the route limit')
  t.equal((await post('/test/limited', 3000)).statusCode, 413, 'over the route limit (2 KiB), under the app limit')
  t.equal((await post('/test/echo', 6000)).statusCode, 413, 'over the app limit (4 KiB)')
  t.equal((await post('/test/roomy', 30_000)).statusCode, 200, 'a route allowing 64 KiB takes 30 KB inflated')
})

interface RawResponse { status: number, headers: Record<string, string | string[] | undefined>, body: Buffer }

async function h2raw (session: ClientHttp2Session, headers: Record<string, string>, body?: Buffer): Promise<RawResponse> {
  const stream = session.request(headers, { endStream: body === undefined })
  if (body !== undefined) stream.end(body)
  const [responseHeaders] = await once(stream, 'response') as [Record<string, string>]
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return { status: Number(responseHeaders[':status']), headers: responseHeaders, body: Buffer.concat(chunks) }
}

async function h1raw (url: string, headers: Record<string, string>, body: Buffer, ca: Buffer): Promise<RawResponse> {
  // No ALPN offered: the server's HTTP/2 listener falls back to HTTP/1.1.
  const req = httpsRequest(url, { method: 'POST', headers, ca, servername: 'localhost', agent: false })
  req.on('error', () => {}) // the server may stop reading the rest of a refused body
  req.end(body)
  const [res] = await once(req, 'response') as [IncomingMessage]
  const chunks: Buffer[] = []
  for await (const chunk of res) chunks.push(chunk as Buffer)
  return { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }
}
