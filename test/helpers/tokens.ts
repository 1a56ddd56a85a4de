// Test tokens: key pairs, hand-built JWTs (any header, any claims, forged ones included), a real
// JWKS server on loopback, and THE shared table of tokens that every entry point — HTTP, the
// WebSocket upgrade, SSE — must accept or reject alike (`tokenFixture`).

import { createHmac, generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto'
import { createServer } from 'node:http'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { tempDir, TEST_JWT_SECRET } from './app.ts'

interface Teardown { teardown: (fn: () => unknown) => void }

export const ISSUER = 'https://issuer.keel.test/'
export const AUDIENCE = 'keel-api'

export type KeyAlg = 'RS256' | 'ES256' | 'EdDSA'

export interface TestKey {
  kid: string
  alg: KeyAlg
  privateKey: KeyObject
  publicPem: string
  /** The public JWK as a JWKS serves it (with kid, alg and use). */
  jwk: Record<string, unknown>
}

export function generateTestKey (alg: KeyAlg, kid: string): TestKey {
  const { privateKey, publicKey } = alg === 'RS256'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519')
  return {
    kid,
    alg,
    privateKey,
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' }
  }
}

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
export const nowSec = () => Math.floor(Date.now() / 1000)

/** A JWT from any header and claims; the signature is computed over exactly what is sent. */
export function buildJwt (header: Record<string, unknown>, claims: Record<string, unknown>, signature: (input: Buffer) => Buffer | string): string {
  const input = `${b64url(header)}.${b64url(claims)}`
  const sig = signature(Buffer.from(input))
  return `${input}.${typeof sig === 'string' ? sig : sig.toString('base64url')}`
}

export function signWithKey (key: TestKey, claims: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  return buildJwt({ alg: key.alg, typ: 'JWT', kid: key.kid, ...header }, claims, (input) =>
    key.alg === 'EdDSA'
      ? cryptoSign(null, input, key.privateKey)
      : cryptoSign('sha256', input, key.alg === 'ES256' ? { key: key.privateKey, dsaEncoding: 'ieee-p1363' } : key.privateKey))
}

export function signHs256 (secret: string, claims: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  return buildJwt({ alg: 'HS256', typ: 'JWT', ...header }, claims, (input) => createHmac('sha256', secret).update(input).digest())
}

/** Claims that pass every check of the fixture's server; spread overrides on top. */
export function goodClaims (extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = nowSec()
  return { sub: 'user-1', iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 600, scope: 'items:read items:write', ...extra }
}

/** An HS256 token the default test app (`build(t)` with TEST_JWT_SECRET) accepts. */
export function testToken (extra: Record<string, unknown> = {}): string {
  const now = nowSec()
  return signHs256(TEST_JWT_SECRET, { sub: 'user-1', iat: now, exp: now + 600, ...extra })
}

export interface JwksServer {
  url: string
  /** How many times the JWKS document was fetched. */
  requests: () => number
  /** What the provider publishes from now on (a rotation). */
  publish: (keys: TestKey[]) => void
  /** Stops the provider: later fetches fail with a refused connection. */
  close: () => Promise<void>
}

/** A JWKS endpoint on 127.0.0.1, closed when the test ends. */
export async function startJwksServer (t: Teardown, keys: TestKey[]): Promise<JwksServer> {
  let published = keys
  let count = 0
  const server = createServer((req, res) => {
    count++
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ keys: published.map((k) => k.jwk) }))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    server.closeAllConnections()
    server.close()
    await once(server, 'close')
  }
  t.teardown(close)
  return { url: `http://127.0.0.1:${port}/.well-known/jwks.json`, requests: () => count, publish: (k) => { published = k }, close }
}

export interface TokenCase {
  name: string
  token: string
  accepted: boolean
}

export interface TokenFixture {
  /** The RS256 key the server trusts (kid `key-a`). */
  key: TestKey
  jwks: JwksServer
  /** Environment for `build`/`listen`: verify through the JWKS server, with issuer and audience. */
  jwksEnv: Record<string, string | undefined>
  /** The same trust through JWT_PUBLIC_KEY_FILE (the key's PEM in a temp file). */
  publicKeyEnv: Record<string, string | undefined>
  /** The shared table: every entry point must give each row the same verdict. */
  cases: TokenCase[]
}

/**
 * The shared verdict table. Each rejected row must be a 401 `invalid_token` (never a 500, never a
 * 400) from HTTP, the WebSocket upgrade and SSE alike; each accepted row passes on all three.
 */
export async function tokenFixture (t: Teardown): Promise<TokenFixture> {
  const key = generateTestKey('RS256', 'key-a')
  const stranger = generateTestKey('RS256', 'kid-nobody-published')
  const jwks = await startJwksServer(t, [key])
  const keyFile = join(tempDir('keel-jwt-key-'), 'jwt-public.pem')
  writeFileSync(keyFile, key.publicPem)
  const now = nowSec()
  const valid = signWithKey(key, goodClaims())
  const [head, body] = valid.split('.')
  const cases: TokenCase[] = [
    { name: 'a valid token', token: valid, accepted: true },
    { name: 'a valid token with scopes in scp', token: signWithKey(key, goodClaims({ scope: undefined, scp: ['items:write'] })), accepted: true },
    { name: 'a token expired within the clock tolerance', token: signWithKey(key, goodClaims({ exp: now - 2 })), accepted: true },
    { name: 'an expired token', token: signWithKey(key, goodClaims({ exp: now - 120 })), accepted: false },
    { name: 'a token whose nbf is in the future', token: signWithKey(key, goodClaims({ nbf: now + 120 })), accepted: false },
    { name: 'a token issued in the future (iat)', token: signWithKey(key, goodClaims({ iat: now + 120 })), accepted: false },
    { name: 'a token without exp', token: signWithKey(key, goodClaims({ exp: undefined })), accepted: false },
    { name: 'a token without sub', token: signWithKey(key, goodClaims({ sub: undefined })), accepted: false },
    { name: 'a token from the wrong issuer', token: signWithKey(key, goodClaims({ iss: 'https://evil.example/' })), accepted: false },
    { name: 'a token for the wrong audience', token: signWithKey(key, goodClaims({ aud: 'another-api' })), accepted: false },
    { name: 'a token with a bad signature', token: `${head}.${body}.${signWithKey(stranger, goodClaims(), { kid: 'key-a' }).split('.')[2]}`, accepted: false },
    { name: 'a truncated token', token: valid.slice(0, valid.length - 12), accepted: false },
    { name: 'a token without its signature part', token: `${head}.${body}`, accepted: false },
    { name: 'an alg "none" token', token: buildJwt({ alg: 'none', typ: 'JWT', kid: 'key-a' }, goodClaims(), () => ''), accepted: false },
    { name: 'an HS256 token signed with the public key PEM (algorithm confusion)', token: signHs256(key.publicPem, goodClaims(), { kid: 'key-a' }), accepted: false },
    { name: 'a token with an unknown kid', token: signWithKey(stranger, goodClaims()), accepted: false },
    { name: 'a string that is not a JWT', token: 'not-a-jwt', accepted: false }
  ]
  return {
    key,
    jwks,
    jwksEnv: { JWT_SECRET: undefined, JWKS_URL: jwks.url, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE },
    publicKeyEnv: { JWT_SECRET: undefined, JWT_PUBLIC_KEY_FILE: keyFile, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE },
    cases
  }
}
