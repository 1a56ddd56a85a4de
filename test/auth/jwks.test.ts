// JWKS_URL mode against a real JWKS server on loopback: keys by kid, rotation picked up with one
// refetch, floods of invented kids absorbed by the refetch interval, a provider outage survived by
// the cached keys, and a provider that never answers bounded by the fetch timeout.

import t, { type Test } from 'tap'
import { createServer, type Socket } from 'node:net'
import { once } from 'node:events'
import { randomUUID, generateKeyPairSync } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { build } from '../helpers/app.ts'
import { generateTestKey, goodClaims, signWithKey, startJwksServer, tokenFixture, ISSUER, AUDIENCE, type TestKey } from '../helpers/tokens.ts'
import { createJwksKeys } from '../../auth/jwks-keys.ts'

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const jwksEnv = (url: string) => ({ JWT_SECRET: undefined, JWKS_URL: url, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE })

/** An app verifying through `url`, with one route under the default policy (a valid token). */
async function jwksApp (t: Test, url: string): Promise<FastifyInstance> {
  const { app } = await build(t, jwksEnv(url))
  app.get('/private', async (request) => ({ sub: request.user.sub }))
  await app.ready()
  return app
}

t.test('a token signed with the published key verifies; the rotated-in key B verifies after exactly one refetch', async (t) => {
  const keyA = generateTestKey('RS256', 'key-a')
  const keyB = generateTestKey('ES256', 'key-b')
  const jwks = await startJwksServer(t, [keyA])
  const app = await jwksApp(t, jwks.url)

  t.equal((await app.verifyAccessToken(signWithKey(keyA, goodClaims()))).sub, 'user-1')
  t.equal(jwks.requests(), 1, 'key A fetched once')
  await app.verifyAccessToken(signWithKey(keyA, goodClaims({ sub: 'again' })))
  t.equal(jwks.requests(), 1, 'then served from the cache')

  jwks.publish([keyB])
  t.equal((await app.verifyAccessToken(signWithKey(keyB, goodClaims()))).sub, 'user-1', 'B verifies')
  t.equal(jwks.requests(), 2, 'after exactly one refetch')
  await app.verifyAccessToken(signWithKey(keyA, goodClaims({ sub: 'cached' })))
  t.equal(jwks.requests(), 2, 'A still verifies from the cache, no fetch')
})

t.test('100 tokens with random unknown kids: each 401 invalid_token, at most one refetch per interval', async (t) => {
  const keyA = generateTestKey('RS256', 'key-a')
  const jwks = await startJwksServer(t, [keyA])
  const app = await jwksApp(t, jwks.url)
  await app.verifyAccessToken(signWithKey(keyA, goodClaims()))
  t.equal(jwks.requests(), 1)

  const forger = generateTestKey('RS256', 'unused')
  const flood = Array.from({ length: 100 }, () => signWithKey(forger, goodClaims(), { kid: randomUUID() }))
  const results = await Promise.allSettled(flood.map(async (token) => await app.verifyAccessToken(token)))
  t.ok(results.every((r) => r.status === 'rejected' && (r.reason as { statusCode?: number }).statusCode === 401), 'all rejected with 401')
  t.equal(jwks.requests(), 2, 'one refetch for the whole flood')

  // Over HTTP too (distinct client addresses, so the invalid-token throttle stays out of the picture).
  for (let i = 0; i < 10; i++) {
    const res = await app.inject({ url: '/private', headers: bearer(signWithKey(forger, goodClaims(), { kid: randomUUID() })), remoteAddress: `127.0.1.${i}` })
    t.equal(res.statusCode, 401)
    t.match(String(res.headers['www-authenticate']), /error="invalid_token"/)
  }
  t.equal(jwks.requests(), 2, 'still one refetch')
  t.equal((await app.inject({ url: '/private', headers: bearer(signWithKey(keyA, goodClaims())) })).statusCode, 200, 'the known key still verifies')
})

t.test('JWKS server down: unknown kids → 401, cached keys keep working', async (t) => {
  const keyA = generateTestKey('EdDSA', 'key-a')
  const jwks = await startJwksServer(t, [keyA])
  const app = await jwksApp(t, jwks.url)
  await app.verifyAccessToken(signWithKey(keyA, goodClaims()))
  await jwks.close()

  const stranger = generateTestKey('EdDSA', 'key-new')
  await t.rejects(app.verifyAccessToken(signWithKey(stranger, goodClaims())), { statusCode: 401, message: /no signing key is known/ })
  t.equal((await app.verifyAccessToken(signWithKey(keyA, goodClaims({ sub: 'still-works' })))).sub, 'still-works')
})

t.test('a JWKS endpoint that accepts but never answers → 401 within the fetch timeout, not a hung request', async (t) => {
  const sockets = new Set<Socket>()
  const silent = createServer((socket) => { sockets.add(socket) })
  silent.listen(0, '127.0.0.1')
  await once(silent, 'listening')
  t.teardown(() => { for (const s of sockets) s.destroy(); silent.close() })
  const { port } = silent.address() as AddressInfo
  const app = await jwksApp(t, `http://127.0.0.1:${port}/jwks.json`)
  const key = generateTestKey('RS256', 'key-a')
  const res = await app.inject({ url: '/private', headers: bearer(signWithKey(key, goodClaims())) })
  t.equal(res.statusCode, 401)
  t.ok(sockets.size >= 1, 'the provider was asked')
})

t.test('the shared token table in JWKS mode, straight through verifyAccessToken', async (t) => {
  const fixture = await tokenFixture(t)
  const { app } = await build(t, fixture.jwksEnv)
  await app.ready()
  for (const row of fixture.cases) {
    const verdict = await app.verifyAccessToken(row.token).then(() => 'accepted', (err: { statusCode?: number }) => err.statusCode)
    t.equal(verdict, row.accepted ? 'accepted' : 401, row.name)
  }
})

t.test('lib/jwks-keys: another unknown kid may refetch once the interval has passed', async (t) => {
  const keyA = generateTestKey('RS256', 'key-a')
  const jwks = await startJwksServer(t, [keyA])
  let clock = 1_000_000
  const keys = createJwksKeys({ url: jwks.url, refetchIntervalMs: 30_000, now: () => clock })
  t.teardown(keys.close)

  await t.rejects(keys.keyFor({ kid: 'ghost-1', alg: 'RS256' }), { code: 'JWK_NOT_FOUND' })
  t.equal(jwks.requests(), 1)
  clock += 29_999
  await t.rejects(keys.keyFor({ kid: 'ghost-2', alg: 'RS256' }), { message: /refetch interval/ })
  t.equal(jwks.requests(), 1, 'within the interval: no fetch')
  clock += 1
  await t.rejects(keys.keyFor({ kid: 'ghost-3', alg: 'RS256' }))
  t.equal(jwks.requests(), 2, 'interval over: one more fetch')
  clock += 30_000
  t.match(await keys.keyFor({ kid: 'key-a', alg: 'RS256' }), /BEGIN PUBLIC KEY/, 'a real kid found by the next fetch')
  t.equal(jwks.requests(), 3)
  await t.rejects(keys.keyFor({ kid: 'ghost-4', alg: 'RS256' }))
  t.equal(jwks.requests(), 4, 'a fetch that found a real key does not hold the next unknown kid back')
})

t.test('lib/jwks-keys: the algorithm is pinned per key, and keys Keel cannot pin are refused', async (t) => {
  const keyA = generateTestKey('RS256', 'key-a')
  const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' })
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' })
  const enc = { ...generateTestKey('RS256', 'key-enc').jwk, use: 'enc' }
  const odd = (jwk: object, kid: string) => ({ jwk: { ...jwk, kid } }) as unknown as TestKey
  const jwks = await startJwksServer(t, [keyA, odd(weak, 'weak'), odd(p384, 'p384'), odd(enc, 'enc')])
  const keys = createJwksKeys({ url: jwks.url })
  t.teardown(keys.close)

  await t.rejects(keys.keyFor({ kid: 'key-a', alg: 'ES256' }), { code: 'FAST_JWT_INVALID_ALGORITHM' }, 'RSA key, ES256 header')
  await t.rejects(keys.keyFor({ kid: 'key-a', alg: 'HS256' }), { code: 'FAST_JWT_INVALID_ALGORITHM' }, 'RSA key, HS256 header')
  t.match(await keys.keyFor({ kid: 'key-a', alg: 'RS256' }), /BEGIN PUBLIC KEY/, 'a forged alg did not make the real kid look missing')
  for (const kid of ['weak', 'p384', 'enc']) {
    await t.rejects(keys.keyFor({ kid, alg: 'RS256' }), { message: /unsupported type/ }, kid)
  }
  await t.rejects(keys.keyFor({ alg: 'RS256' }), { message: /names no kid/ })
})

t.test('a JWKS_URL without a path, not parseable, or carrying credentials stops the start naming the variable, never the value', async (t) => {
  const urls: Array<[string, RegExp]> = [
    ['https://idp.example', /JWKS_URL names only a host/],
    ['https://idp.example:99999/jwks.json', /JWKS_URL is not a valid URL/],
    ['https://keel:SECRETPW@idp.example/jwks.json', /JWKS_URL carries credentials/]
  ]
  for (const [url, message] of urls) {
    const err = t.throws(() => createJwksKeys({ url }), message) as Error
    t.notMatch(err.message, /SECRETPW|idp\.example/, 'the value is not in the message')
  }
})
