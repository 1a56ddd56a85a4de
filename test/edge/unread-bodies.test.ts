// Bodies nobody reads cost nothing: an unknown path (404), an unknown method (405), a preflight route
// and a route without a body schema (DELETE) never read, inflate or parse the body they are sent, and
// requests to unknown paths count against the client's rate-limit budget like any other.

import t, { type Test } from 'tap'
import { gzipSync } from 'node:zlib'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { once } from 'node:events'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import type { FastifyInstance } from 'fastify'
import { build, listenOn, type BuildResult } from '../helpers/app.ts'
import { testToken } from '../helpers/tokens.ts'
import { h2request, h2session } from '../helpers/http.ts'
import { PROBE_PATH, PROBE_WRITE_SCOPE, probeResource } from '../helpers/probe-resource.ts'

const MiB = 1024 * 1024
const writer = { authorization: `Bearer ${testToken({ sub: 'writer', scope: PROBE_WRITE_SCOPE })}` }
const json = { 'content-type': 'application/json' }

/** 1 MiB of `[[[…]]]`: valid JSON that takes JSON.parse hundreds of milliseconds. */
const NESTED = Buffer.from('['.repeat(MiB / 2) + ']'.repeat(MiB / 2))

async function createThing (app: FastifyInstance): Promise<string> {
  const res = await app.inject({ method: 'POST', url: PROBE_PATH, headers: writer, payload: { name: 'doomed' } })
  if (res.statusCode !== 201) throw new Error(`create failed: ${res.statusCode} ${res.body}`)
  return (res.json() as { id: string }).id
}

/** A built app with the probe resource (a collection whose DELETE takes no body). */
async function withProbe (t: Test, env: Record<string, string> = {}): Promise<BuildResult> {
  const built = await build(t, env)
  await built.app.register(probeResource)
  return built
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
  const { app } = await withProbe(t, { RATE_LIMIT_MAX: '10' })
  const statuses: number[] = []
  for (let i = 0; i < 12; i++) {
    statuses.push((await app.inject({ method: 'POST', url: '/nope', headers: json, payload: NESTED })).statusCode)
  }
  t.same(statuses.slice(0, 10), Array(10).fill(404), 'within the budget: 404')
  t.same(statuses.slice(10), [429, 429], 'past the budget: 429')
  const limited = await app.inject({ method: 'POST', url: '/nope', headers: json, payload: NESTED })
  t.match(limited.json(), { status: 429, code: 'RATE_LIMITED' })
  t.match(String(limited.headers['retry-after']), /^[1-9][0-9]*$/)
  t.equal((await app.inject({ url: PROBE_PATH })).statusCode, 429, 'one budget per client, known and unknown paths alike')
})

t.test('a 1 MiB nested JSON body sent where no handler reads one never blocks the event loop for 50 ms', async (t) => {
  const { app, url } = await listenOn(await withProbe(t, { TLS: 'off', CORS_ORIGINS: 'https://app.example' }))
  const gzipped = gzipSync(NESTED)
  const kept = await createThing(app)
  const fixed = (path: string) => async () => path
  const newThing = async () => `${PROBE_PATH}/${await createThing(app)}`
  const cases: Array<{ what: string, method: string, path: () => Promise<string>, headers: Record<string, string>, body: Buffer, status: number }> = [
    { what: 'an unknown path', method: 'POST', path: fixed('/nope'), headers: json, body: NESTED, status: 404 },
    { what: 'an unknown method on a known path', method: 'PATCH', path: fixed(`${PROBE_PATH}/x`), headers: json, body: NESTED, status: 405 },
    { what: 'OPTIONS from an unlisted origin', method: 'OPTIONS', path: fixed(PROBE_PATH), headers: { ...json, origin: 'https://evil.example' }, body: NESTED, status: 405 },
    { what: 'DELETE /things/:id', method: 'DELETE', path: newThing, headers: { ...json, ...writer }, body: NESTED, status: 204 },
    { what: 'DELETE /things/:id, gzip', method: 'DELETE', path: newThing, headers: { ...json, ...writer, 'content-encoding': 'gzip' }, body: gzipped, status: 204 }
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
  t.equal((await app.inject({ url: `${PROBE_PATH}/${kept}` })).statusCode, 200, 'a thing nobody deleted is still there')
})

t.test('a body sent to a route that takes none is neither inflated nor parsed: DELETE with a corrupt body still deletes', async (t) => {
  const { app } = await withProbe(t)
  const cases: Array<[string, Record<string, string>, string | Buffer]> = [
    ['malformed JSON', json, '{"broken'],
    ['corrupt gzip', { ...json, 'content-encoding': 'gzip' }, Buffer.from('not gzip at all')],
    ['an unsupported content type', { 'content-type': 'application/xml' }, '<x/>']
  ]
  for (const [what, headers, payload] of cases) {
    const id = await createThing(app)
    const res = await app.inject({ method: 'DELETE', url: `${PROBE_PATH}/${id}`, headers: { ...headers, ...writer }, payload })
    t.equal(res.statusCode, 204, what)
    t.equal((await app.inject({ url: `${PROBE_PATH}/${id}` })).statusCode, 404, `${what}: deleted`)
  }
})

t.test('over HTTP/2 too, a route that takes no body ignores the one it is sent', async (t) => {
  const { app, url, ca } = await listenOn(await withProbe(t))
  const session = await h2session(url, { ca })
  t.teardown(() => session.close())
  const id = await createThing(app)
  const res = await h2request(session, `${PROBE_PATH}/${id}`, { ':method': 'DELETE', ...json, ...writer }, '{"broken')
  t.equal(res.status, 204)
  t.equal((await h2request(session, '/nope', { ':method': 'POST', ...json }, '{"broken')).status, 404)
})

t.test('unknown paths and unknown methods ignore the body: malformed JSON still gets 404 and 405', async (t: Test) => {
  const { app } = await withProbe(t)
  t.equal((await app.inject({ method: 'POST', url: '/nope', headers: json, payload: '{"broken' })).statusCode, 404)
  t.equal((await app.inject({ method: 'PATCH', url: `${PROBE_PATH}/x`, headers: json, payload: '{"broken' })).statusCode, 405)
})
