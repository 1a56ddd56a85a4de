// Bodies nobody reads cost nothing: an unknown path (404), an unknown method (405), a preflight route
// and a route without a body schema (DELETE) never read, inflate or parse the body they are sent, and
// requests to unknown paths count against the client's rate-limit budget like any other.

import t, { type Test } from 'tap'
import { gzipSync } from 'node:zlib'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { once } from 'node:events'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import type { FastifyInstance } from 'fastify'
import { build, listen } from '../helpers/app.ts'
import { testToken } from '../helpers/tokens.ts'
import { h2request, h2session } from '../helpers/http.ts'

const ITEMS = '/api/v1/items'
const MiB = 1024 * 1024
const writer = { authorization: `Bearer ${testToken({ sub: 'writer', scope: 'items:write' })}` }
const json = { 'content-type': 'application/json' }

/** 1 MiB of `[[[…]]]`: valid JSON that takes JSON.parse hundreds of milliseconds. */
const NESTED = Buffer.from('['.repeat(MiB / 2) + ']'.repeat(MiB / 2))

async function createItem (app: FastifyInstance): Promise<string> {
  const res = await app.inject({ method: 'POST', url: ITEMS, headers: writer, payload: { name: 'doomed' } })
  if (res.statusCode !== 201) throw new Error(`create failed: ${res.statusCode} ${res.body}`)
  return (res.json() as { id: string }).id
}

/** One HTTP/1.1 request on a fresh connection; resolves with the status once the response has ended. */
async function send (url: string, method: string, headers: Record<string, string>, body: Buffer): Promise<number> {
  const req = httpRequest(url, { method, headers: { ...headers, 'content-length': String(body.length) }, agent: false })
  req.on('error', () => {}) // the server may answer before it has read the body
  req.end(body)
  const [res] = await once(req, 'response') as [IncomingMessage]
  res.resume()
  await once(res, 'end')
  return res.statusCode ?? 0
}

t.test('requests to unknown paths count against the rate limit: 1 MiB POSTs to /nope get 429 after the budget', async (t) => {
  const { app } = await build(t, { RATE_LIMIT_MAX: '10' })
  const statuses: number[] = []
  for (let i = 0; i < 12; i++) {
    statuses.push((await app.inject({ method: 'POST', url: '/nope', headers: json, payload: NESTED })).statusCode)
  }
  t.same(statuses.slice(0, 10), Array(10).fill(404), 'within the budget: 404')
  t.same(statuses.slice(10), [429, 429], 'past the budget: 429')
  const limited = await app.inject({ method: 'POST', url: '/nope', headers: json, payload: NESTED })
  t.match(limited.json(), { status: 429, code: 'RATE_LIMITED' })
  t.match(String(limited.headers['retry-after']), /^[1-9][0-9]*$/)
  t.equal((await app.inject({ url: ITEMS })).statusCode, 429, 'one budget per client, known and unknown paths alike')
})

t.test('a 1 MiB nested JSON body sent where no handler reads one never blocks the event loop for 50 ms', async (t) => {
  const { app, url } = await listen(t, { TLS: 'off', CORS_ORIGINS: 'https://app.example' })
  const gzipped = gzipSync(NESTED)
  const kept = await createItem(app)
  const fixed = (path: string) => async () => path
  const newItem = async () => `${ITEMS}/${await createItem(app)}`
  const cases: Array<{ what: string, method: string, path: () => Promise<string>, headers: Record<string, string>, body: Buffer, status: number }> = [
    { what: 'an unknown path', method: 'POST', path: fixed('/nope'), headers: json, body: NESTED, status: 404 },
    { what: 'an unknown method on a known path', method: 'PATCH', path: fixed(`${ITEMS}/x`), headers: json, body: NESTED, status: 405 },
    { what: 'OPTIONS from an unlisted origin', method: 'OPTIONS', path: fixed(ITEMS), headers: { ...json, origin: 'https://evil.example' }, body: NESTED, status: 405 },
    { what: 'DELETE /items/:id', method: 'DELETE', path: newItem, headers: { ...json, ...writer }, body: NESTED, status: 204 },
    { what: 'DELETE /items/:id, gzip', method: 'DELETE', path: newItem, headers: { ...json, ...writer, 'content-encoding': 'gzip' }, body: gzipped, status: 204 }
  ]
  for (const c of cases) {
    // Parsing the body blocks the loop on every attempt; another process taking the CPU (tests run in
    // parallel on a small machine) delays it only now and then: the best of three attempts tells them apart.
    let best = Infinity
    for (let attempt = 0; attempt < 3 && best >= 50; attempt++) {
      const path = await c.path()
      const delay = monitorEventLoopDelay({ resolution: 5 })
      delay.enable()
      const status = await send(`${url}${path}`, c.method, c.headers, c.body)
      delay.disable()
      t.equal(status, c.status, `${c.what}: ${c.status}`)
      best = Math.min(best, delay.max / 1e6)
    }
    t.ok(best < 50, `${c.what}: the event loop's longest delay was ${best.toFixed(1)} ms`)
  }
  t.equal((await app.inject({ url: `${ITEMS}/${kept}` })).statusCode, 200, 'an item nobody deleted is still there')
})

t.test('a body sent to a route that takes none is neither inflated nor parsed: DELETE with a corrupt body still deletes', async (t) => {
  const { app } = await build(t)
  const cases: Array<[string, Record<string, string>, string | Buffer]> = [
    ['malformed JSON', json, '{"broken'],
    ['corrupt gzip', { ...json, 'content-encoding': 'gzip' }, Buffer.from('not gzip at all')],
    ['an unsupported content type', { 'content-type': 'application/xml' }, '<x/>']
  ]
  for (const [what, headers, payload] of cases) {
    const id = await createItem(app)
    const res = await app.inject({ method: 'DELETE', url: `${ITEMS}/${id}`, headers: { ...headers, ...writer }, payload })
    t.equal(res.statusCode, 204, what)
    t.equal((await app.inject({ url: `${ITEMS}/${id}` })).statusCode, 404, `${what}: deleted`)
  }
})

t.test('over HTTP/2 too, a route that takes no body ignores the one it is sent', async (t) => {
  const { app, url, ca } = await listen(t)
  const session = await h2session(url, { ca })
  t.teardown(() => session.close())
  const id = await createItem(app)
  const res = await h2request(session, `${ITEMS}/${id}`, { ':method': 'DELETE', ...json, ...writer }, '{"broken')
  t.equal(res.status, 204)
  t.equal((await h2request(session, '/nope', { ':method': 'POST', ...json }, '{"broken')).status, 404)
})

t.test('unknown paths and unknown methods ignore the body: malformed JSON still gets 404 and 405', async (t: Test) => {
  const { app } = await build(t)
  t.equal((await app.inject({ method: 'POST', url: '/nope', headers: json, payload: '{"broken' })).statusCode, 404)
  t.equal((await app.inject({ method: 'PATCH', url: `${ITEMS}/x`, headers: json, payload: '{"broken' })).statusCode, 405)
})
