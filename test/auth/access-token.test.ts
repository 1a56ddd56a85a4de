// The framework-free pieces of access tokens: scopes, challenges, claims → user, algorithm pinning,
// and the development secret file.

import t from 'tap'
import { generateKeyPairSync, createSecretKey } from 'node:crypto'
import { chmodSync, writeFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import {
  algorithmForKey, hasScopes, insufficientScope, invalidToken, missingToken, parseScopes, signAccessToken, userFromClaims, wwwAuthenticate
} from '../../auth/access-token.ts'
import { ensureDevJwtSecret } from '../../auth/dev-secret.ts'
import { tempDir } from '../helpers/app.ts'

t.test('scopes come from scope (space-separated) and scp (array or string); other shapes grant nothing', async (t) => {
  t.same(parseScopes({ scope: 'a b  c' }), ['a', 'b', 'c'])
  t.same(parseScopes({ scp: ['a', 'b'] }), ['a', 'b'])
  t.same(parseScopes({ scp: 'a b' }), ['a', 'b'])
  t.same(parseScopes({ scope: 'a b', scp: ['b', 'c'] }), ['a', 'b', 'c'])
  t.same(parseScopes({ scope: 42, scp: { a: true } }), [])
  t.same(parseScopes({ scp: ['a', 7, null, ''] }), ['a'])
  t.same(parseScopes({}), [])
})

t.test('hasScopes needs every scope', async (t) => {
  const user = { sub: 'u', scopes: ['a', 'b'], exp: 1 }
  t.ok(hasScopes(user, []))
  t.ok(hasScopes(user, ['a', 'b']))
  t.notOk(hasScopes(user, ['a', 'c']))
})

t.test('WWW-Authenticate follows RFC 6750', async (t) => {
  t.equal(wwwAuthenticate(), 'Bearer realm="keel"')
  t.equal(wwwAuthenticate({ error: 'invalid_token', description: 'the "x" is bad' }), 'Bearer realm="keel", error="invalid_token", error_description="the \'x\' is bad"')
  t.equal(wwwAuthenticate({ error: 'insufficient_scope', scopes: ['a', 'b'] }), 'Bearer realm="keel", error="insufficient_scope", scope="a b"')
  t.match(missingToken(), { statusCode: 401, code: 'UNAUTHORIZED', headers: { 'www-authenticate': 'Bearer realm="keel"' } })
  t.match(invalidToken('gone'), { statusCode: 401, message: 'gone', headers: { 'www-authenticate': /error="invalid_token"/ } })
  t.match(insufficientScope(['a']), { statusCode: 403, code: 'FORBIDDEN', message: 'this route needs the scope a' })
  t.match(insufficientScope(['a', 'b']), { message: 'this route needs the scopes a, b' })
})

t.test('claims become a frozen AuthUser; no sub, no exp or a future iat are invalid tokens', async (t) => {
  const user = userFromClaims({ sub: 'u', exp: 200, iat: 100, scope: 'a' }, 100, 5)
  t.same(user, { sub: 'u', scopes: ['a'], exp: 200 })
  t.ok(Object.isFrozen(user) && Object.isFrozen(user.scopes))
  t.ok(userFromClaims({ sub: 'u', exp: 200, iat: 105 }, 100, 5), 'iat within the tolerance')
  t.throws(() => userFromClaims({ sub: 'u', exp: 200, iat: 106 }, 100, 5), { statusCode: 401, message: /issued in the future/ })
  t.throws(() => userFromClaims({ sub: 'u', exp: 200, iat: 'yesterday' }, 100, 5), { message: /issued in the future/ })
  t.throws(() => userFromClaims({ exp: 200 }, 100, 5), { message: /no subject/ })
  t.throws(() => userFromClaims({ sub: 7, exp: 200 }, 100, 5), { message: /no subject/ })
  t.throws(() => userFromClaims({ sub: 'u' }, 100, 5), { message: /no expiry/ })
})

t.test('each key type pins exactly one algorithm; weak or unusual keys pin none', async (t) => {
  const pub = (k: { publicKey: import('node:crypto').KeyObject }) => k.publicKey
  t.equal(algorithmForKey(pub(generateKeyPairSync('rsa', { modulusLength: 2048 }))), 'RS256')
  t.equal(algorithmForKey(pub(generateKeyPairSync('ec', { namedCurve: 'P-256' }))), 'ES256')
  t.equal(algorithmForKey(pub(generateKeyPairSync('ed25519'))), 'EdDSA')
  t.equal(algorithmForKey(pub(generateKeyPairSync('rsa', { modulusLength: 1024 }))), undefined)
  t.equal(algorithmForKey(pub(generateKeyPairSync('ec', { namedCurve: 'P-384' }))), undefined)
  t.equal(algorithmForKey(pub(generateKeyPairSync('ed448'))), undefined)
  t.equal(algorithmForKey(generateKeyPairSync('ed25519').privateKey), undefined)
  t.equal(algorithmForKey(createSecretKey(Buffer.alloc(32))), undefined)
})

t.test('signAccessToken writes sub, scope, exp and, when given, iss and aud', async (t) => {
  const token = signAccessToken('s'.repeat(32), { sub: 'u', scopes: ['a', 'b'], ttlSec: 60, issuer: 'i', audience: 'x' })
  const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>
  t.match(claims, { sub: 'u', scope: 'a b', iss: 'i', aud: 'x' })
  t.equal((claims.exp as number) - (claims.iat as number), 60)
  const bare = JSON.parse(Buffer.from(signAccessToken('s'.repeat(32), { sub: 'u', ttlSec: 1 }).split('.')[1]!, 'base64url').toString()) as Record<string, unknown>
  t.notOk('scope' in bare || 'iss' in bare || 'aud' in bare)
})

t.test('the development secret is created once and a damaged one is reported, not replaced', async (t) => {
  const dir = join(tempDir(), 'certs')
  const first = ensureDevJwtSecret(dir)
  t.ok(first.generated)
  const again = ensureDevJwtSecret(dir)
  t.same(again, { ...first, generated: false })
  writeFileSync(first.file, 'short\n')
  t.throws(() => ensureDevJwtSecret(dir), /fewer than 32 characters; delete it/)

  const unreadable = join(tempDir(), 'certs')
  mkdirSync(unreadable)
  writeFileSync(join(unreadable, 'jwt-dev-secret'), 'x'.repeat(40))
  chmodSync(join(unreadable, 'jwt-dev-secret'), 0o000)
  if (process.getuid?.() === 0) t.equal(ensureDevJwtSecret(unreadable).secret, 'x'.repeat(40), 'root reads it anyway')
  else t.throws(() => ensureDevJwtSecret(unreadable), { code: 'EACCES' })
})
