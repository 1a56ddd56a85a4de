// The floor contender of scenario 1: a raw node:http server that must answer exactly what Keel answers
// (same headers, same values but the per-request ones, same body), with a fresh request id and a hashed
// ETag per request. Real server processes; the harness refuses a floor whose response differs from Keel's.

import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { weakETagOf } from '../../edge/conditional.ts'
import { PER_REQUEST_HEADERS, httpContender, responseDifferences, type HttpContenderSpec } from '../lib/http-contender.ts'
import { probe, type ProbeResponse } from '../lib/load.ts'
import type { RunSettings } from '../lib/scenario.ts'
import { startServer } from '../lib/server-process.ts'
import { BENCH_ORIGIN, SMALL_PATH } from '../lib/workload.ts'
import { httpScenarios } from '../scenarios/http.ts'

const BROWSER = { origin: BENCH_ORIGIN, 'accept-encoding': 'gzip, deflate, br, zstd' }
const settings = (): RunSettings => ({ seconds: 1, rounds: 1, warmupSeconds: 0, profile: false, workDir: mkdtempSync(join(tmpdir(), 'keel-bench-test-')) })
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

function response (headers: Record<string, string>, body = '{"a":1}'): ProbeResponse {
  const bytes = Buffer.from(body)
  return { status: 200, headers, bytes: bytes.length, body: bytes }
}

t.test('a mirrored response must carry the same header names in the same order, the same values but the per-request ones, and the same body', async (t) => {
  const keel = response({ 'x-request-id': 'a', vary: 'Origin', etag: 'W/"1"', 'ratelimit-remaining': '9', date: 'Mon' })
  t.same(responseDifferences(keel, response({ 'x-request-id': 'b', vary: 'Origin', etag: 'W/"1"', 'ratelimit-remaining': '8', date: 'Tue' })), [],
    'request id, rate-limit counter and date may differ')
  t.same(responseDifferences(keel, response({ 'x-request-id': 'a', etag: 'W/"1"', 'ratelimit-remaining': '9', date: 'Mon', server: 'x' })),
    ['missing header vary', 'extra header server'])
  t.same(responseDifferences(keel, response({ vary: 'Origin', 'x-request-id': 'a', etag: 'W/"1"', 'ratelimit-remaining': '9', date: 'Mon' })),
    ['headers in another order: vary, x-request-id, etag, ratelimit-remaining, date'])
  t.same(responseDifferences(keel, response({ 'x-request-id': 'a', vary: 'origin', etag: 'W/"2"', 'ratelimit-remaining': '9', date: 'Mon' })),
    ['vary: "origin" instead of "Origin"', 'etag: "W/"2"" instead of "W/"1""'])
  t.same(responseDifferences(keel, response(keel.headers as Record<string, string>, '{"a":2}')), ['a different body'])
  t.same(responseDifferences(keel, { ...keel, status: 404 }), ['status 404 instead of 200'])
  t.ok(PER_REQUEST_HEADERS.has('x-request-id'))
})

t.test('the raw node:http floor answers with Keel\'s headers and body, a fresh request id, a counting rate limit and the ETag of its body', async (t) => {
  const keel = await startServer({ script: 'keel.ts' })
  t.teardown(keel.stop)
  const reference = await probe(`http://127.0.0.1:${keel.port}`, SMALL_PATH, BROWSER)
  const floor = await startServer({ script: 'node-http-floor.ts', options: { mirror: reference.headers } })
  t.teardown(floor.stop)

  const first = await probe(`http://127.0.0.1:${floor.port}`, SMALL_PATH, BROWSER)
  const second = await probe(`http://127.0.0.1:${floor.port}`, SMALL_PATH, BROWSER)
  t.same(responseDifferences(reference, first), [], 'the same response as Keel')
  t.same(responseDifferences(reference, second), [])
  t.match(first.headers['x-request-id'], UUID)
  t.not(first.headers['x-request-id'], second.headers['x-request-id'], 'a fresh request id per request')
  t.equal(Number(first.headers['ratelimit-remaining']) - Number(second.headers['ratelimit-remaining']), 1, 'the rate-limit counter counts')
  t.equal(first.headers.etag, weakETagOf(first.body.toString()), 'the ETag is hashed from the body')
  t.equal((await probe(`http://127.0.0.1:${floor.port}`, '/elsewhere')).status, 404)
})

t.test('scenario 1 measures the floor after Keel, with Keel\'s response, and compares every row with it', async (t) => {
  const edge = httpScenarios.find((s) => s.name === 'edge')!
  const ids = edge.contenders.map((c) => c.id)
  t.ok(ids.indexOf('node-http') > ids.indexOf('keel'), 'the floor starts after the Keel it mirrors')
  t.ok(edge.baselines.includes('node-http'), 'every row is compared with the floor')

  const run = settings()
  const keel = await edge.contenders.find((c) => c.id === 'keel')!.start(run)
  t.teardown(keel.stop)
  const floor = await edge.contenders.find((c) => c.id === 'node-http')!.start(run)
  t.teardown(floor.stop)
  t.match(floor.notes.join('\n'), /same response as Keel \(full edge stack\)/)
})

t.test('a contender whose response differs from the one it mirrors, or that starts before it, is refused before any load', async (t) => {
  const load = { path: SMALL_PATH, headers: BROWSER, connections: 1 }
  const keelSpec: HttpContenderSpec = { id: 'keel', label: 'Keel', script: 'keel.ts', load }
  // Bare Fastify ignores the headers it is handed: its response is not Keel's.
  const impostor = httpContender({ id: 'fastify', label: 'bare Fastify', script: 'fastify.ts', mirrors: keelSpec, load })
  const run = settings()
  await t.rejects(impostor.start(run), /bare Fastify mirrors Keel, which has not answered yet: list it first/)
  const keel = await httpContender(keelSpec).start(run)
  t.teardown(keel.stop)
  await t.rejects(impostor.start(run), /bare Fastify does not answer what Keel answers: missing header x-request-id;/)
})
