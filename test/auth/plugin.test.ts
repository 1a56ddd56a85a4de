// Authentication and authorization as a client meets them over HTTP: tokens accepted and rejected by
// one verifier in every mode, scopes as route config, RFC 6750 challenges in problem+json, the
// secure default for undeclared routes, the development secret, and the invalid-token throttle.

import t, { type Test } from 'tap'
import { statSync, readFileSync, writeFileSync } from 'node:fs'
import { generateKeyPairSync } from 'node:crypto'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { build, tempDir, TEST_JWT_SECRET, type BuildResult } from '../helpers/app.ts'
import { generateTestKey, goodClaims, signHs256, signWithKey, testToken, tokenFixture, nowSec, ISSUER, AUDIENCE } from '../helpers/tokens.ts'

/** Routes with each kind of `config.auth`, added to a built app before it is ready. */
async function testRoutes (fastify: FastifyInstance): Promise<void> {
  fastify.get('/test/scoped', { config: { auth: { scopes: ['items:write'] } } }, async (request) => ({ sub: request.user.sub, scopes: request.user.scopes }))
  fastify.get('/test/two-scopes', { config: { auth: { scopes: ['items:write', 'admin'] } } }, async () => ({ ok: true }))
  fastify.get('/test/default', async (request) => ({ sub: request.user.sub }))
  fastify.get('/test/optional', { config: { auth: 'optional' } }, async (request) => ({ sub: request.user?.sub ?? null }))
  fastify.get('/test/public', { config: { auth: false } }, async (request) => ({ user: request.user }))
  // How /ws and /sse use the verifier: public route config, then authenticate with the query form allowed.
  fastify.get('/test/stream', { config: { auth: false } }, async (request) => {
    const user = await fastify.authenticate(request, { allowQueryToken: true })
    return { sub: user.sub }
  })
}

async function appWithRoutes (t: Test, env: Record<string, string | undefined> = {}, cwd?: string): Promise<BuildResult> {
  const built = await build(t, env, cwd)
  await built.app.register(testRoutes)
  return built
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

function assertChallenge (t: Test, res: { statusCode: number, headers: Record<string, unknown>, body: string }, status: number, challenge: RegExp): void {
  t.equal(res.statusCode, status)
  t.match(String(res.headers['content-type']), /^application\/problem\+json/)
  t.match(String(res.headers['www-authenticate']), challenge)
  const problem = JSON.parse(res.body) as Record<string, unknown>
  t.equal(problem.status, status)
  t.notMatch(res.body, /\bat .+\.(ts|js):\d+/, 'no stack trace')
}

t.test('a valid token carrying the route\'s scope reaches the handler as request.user', async (t) => {
  const { app } = await appWithRoutes(t)
  const res = await app.inject({ url: '/test/scoped', headers: bearer(testToken({ scope: 'items:write' })) })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { sub: 'user-1', scopes: ['items:write'] })
})

t.test('scopes are read from scp as an array too', async (t) => {
  const { app } = await appWithRoutes(t)
  const res = await app.inject({ url: '/test/scoped', headers: bearer(testToken({ scp: ['items:write'] })) })
  t.equal(res.statusCode, 200)
})

t.test('a valid token without the scope → 403 insufficient_scope naming the scopes', async (t) => {
  const { app } = await appWithRoutes(t)
  let res = await app.inject({ url: '/test/scoped', headers: bearer(testToken({ scope: 'items:read' })) })
  assertChallenge(t, res, 403, /^Bearer realm="keel", error="insufficient_scope", scope="items:write"$/)
  res = await app.inject({ url: '/test/two-scopes', headers: bearer(testToken({ scope: 'items:write' })) })
  assertChallenge(t, res, 403, /scope="items:write admin"/)
})

t.test('no token → 401 with a bare Bearer challenge (no error attribute)', async (t) => {
  const { app } = await appWithRoutes(t)
  for (const url of ['/test/scoped', '/test/default', '/test/stream']) {
    const res = await app.inject({ url })
    assertChallenge(t, res, 401, /^Bearer realm="keel"$/)
  }
})

t.test('a malformed Authorization header → 401 invalid_token, not 400', async (t) => {
  const { app } = await appWithRoutes(t)
  for (const authorization of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer ', 'Bearer a b', 'Token abc', `Bearer ${'a'.repeat(9000)}`]) {
    const res = await app.inject({ url: '/test/default', headers: { authorization } })
    assertChallenge(t, res, 401, /^Bearer realm="keel", error="invalid_token"/)
  }
})

t.test('a route without config.auth requires a valid token (secure by default), HEAD included', async (t) => {
  const { app } = await appWithRoutes(t)
  t.equal((await app.inject({ url: '/test/default' })).statusCode, 401)
  t.equal((await app.inject({ method: 'HEAD', url: '/test/default' })).statusCode, 401)
  const res = await app.inject({ url: '/test/default', headers: bearer(testToken()) })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { sub: 'user-1' })
})

t.test('auth: false routes never look at tokens; /health is public', async (t) => {
  const { app } = await appWithRoutes(t)
  t.same((await app.inject({ url: '/test/public', headers: bearer('garbage') })).json(), { user: null })
  t.equal((await app.inject({ url: '/health/live' })).statusCode, 200)
  t.equal((await app.inject({ url: '/health/ready' })).statusCode, 200)
})

t.test('auth: optional passes without a token and rejects an invalid one', async (t) => {
  const { app } = await appWithRoutes(t)
  t.same((await app.inject({ url: '/test/optional' })).json(), { sub: null })
  t.same((await app.inject({ url: '/test/optional', headers: bearer(testToken()) })).json(), { sub: 'user-1' })
  assertChallenge(t, await app.inject({ url: '/test/optional', headers: bearer('x.y.z') }), 401, /error="invalid_token"/)
})

t.test('a token in ?access_token= counts only where the route allows it (the /ws and /sse form)', async (t) => {
  const { app } = await appWithRoutes(t)
  const token = testToken()
  t.same((await app.inject({ url: `/test/stream?access_token=${token}` })).json(), { sub: 'user-1' })
  const ignored = await app.inject({ url: `/test/default?access_token=${token}` })
  assertChallenge(t, ignored, 401, /^Bearer realm="keel"$/)
  t.match(ignored.json().detail, /Authorization header only/)
  const twice = await app.inject({ url: `/test/stream?access_token=${token}`, headers: bearer(token) })
  assertChallenge(t, twice, 401, /error="invalid_token"/)
  const repeated = await app.inject({ url: `/test/stream?access_token=${token}&access_token=${token}` })
  assertChallenge(t, repeated, 401, /error="invalid_token"/)
  t.notMatch(ignored.body, /access_token=/, 'the problem never echoes the query string')
})

t.test('config.auth of another shape stops the start at route registration', async (t) => {
  const { app } = await build(t)
  for (const auth of [{ scopes: 'items:write' }, true, 'required', { scopes: ['has space'] }]) {
    t.throws(() => app.get('/bad', { config: { auth: auth as unknown as false } }, async () => 'no'),
      /GET \/bad: config\.auth must be false, 'optional' or \{ scopes: string\[\] \}/, JSON.stringify(auth))
  }
})

t.test('JWT_SECRET mode (HS256) rejects every other algorithm', async (t) => {
  const { app } = await appWithRoutes(t)
  const rsa = generateTestKey('RS256', 'k')
  const now = nowSec()
  const claims = { sub: 'user-1', iat: now, exp: now + 60 }
  for (const token of [signWithKey(rsa, claims), signHs256('another-secret-another-secret-0123456', claims), signHs256(TEST_JWT_SECRET, claims, { alg: 'HS512' })]) {
    assertChallenge(t, await app.inject({ url: '/test/default', headers: bearer(token) }), 401, /error="invalid_token"/)
  }
  t.equal((await app.inject({ url: '/test/default', headers: bearer(signHs256(TEST_JWT_SECRET, claims)) })).statusCode, 200)
})

t.test('JWT_ISSUER and JWT_AUDIENCE are enforced in JWT_SECRET mode too', async (t) => {
  const { app } = await appWithRoutes(t, { JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE })
  const ok = signHs256(TEST_JWT_SECRET, goodClaims())
  t.equal((await app.inject({ url: '/test/default', headers: bearer(ok) })).statusCode, 200)
  const verdicts: Array<[Record<string, unknown>, number, RegExp?]> = [
    [{ iss: undefined }, 401, /no iss claim/],
    [{ aud: undefined }, 401, /no aud claim/],
    [{ iss: 'https://evil.example/' }, 401, /iss is not accepted/],
    [{ aud: ['other', AUDIENCE] }, 200]
  ]
  for (const [extra, status, detail] of verdicts) {
    const res = await app.inject({ url: '/test/default', headers: bearer(signHs256(TEST_JWT_SECRET, goodClaims(extra))) })
    t.equal(res.statusCode, status, JSON.stringify(extra))
    if (detail !== undefined) t.match(res.json().detail, detail)
  }
})

for (const mode of ['JWKS_URL', 'JWT_PUBLIC_KEY_FILE'] as const) {
  t.test(`${mode} mode: every row of the shared token table gets its verdict over HTTP (401 invalid_token, never 500)`, async (t) => {
    const fixture = await tokenFixture(t)
    const { app } = await appWithRoutes(t, mode === 'JWKS_URL' ? fixture.jwksEnv : fixture.publicKeyEnv)
    for (const row of fixture.cases) {
      const res = await app.inject({ url: '/test/default', headers: bearer(row.token) })
      if (row.accepted) t.equal(res.statusCode, 200, row.name)
      else assertChallenge(t, res, 401, /^Bearer realm="keel", error="invalid_token", error_description="[^"]+"$/)
    }
  })
}

t.test('JWT_PUBLIC_KEY_FILE pins the algorithm from the key type', async (t) => {
  for (const alg of ['ES256', 'EdDSA'] as const) {
    const key = generateTestKey(alg, 'k')
    const file = join(tempDir(), 'key.pem')
    writeFileSync(file, key.publicPem)
    const { app } = await appWithRoutes(t, { JWT_SECRET: undefined, JWT_PUBLIC_KEY_FILE: file })
    const claims = { sub: 'user-1', exp: nowSec() + 60 }
    t.equal((await app.inject({ url: '/test/default', headers: bearer(signWithKey(key, claims)) })).statusCode, 200, `${alg} accepted`)
    const other = generateTestKey(alg === 'ES256' ? 'EdDSA' : 'ES256', 'k')
    t.equal((await app.inject({ url: '/test/default', headers: bearer(signWithKey(other, claims)) })).statusCode, 401, `${other.alg} refused`)
    t.equal((await app.inject({ url: '/test/default', headers: bearer(signHs256(key.publicPem, claims)) })).statusCode, 401, 'HS256 with the PEM refused')
  }
})

t.test('a JWT_PUBLIC_KEY_FILE Keel cannot pin stops the start with a message naming the variable', async (t) => {
  const dir = tempDir()
  const files = {
    'not a key': 'hello',
    'an EC P-384 key': generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ type: 'spki', format: 'pem' }),
    'a 1024-bit RSA key': generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' })
  }
  for (const [what, pem] of Object.entries(files)) {
    const file = join(dir, `${what.replaceAll(' ', '-')}.pem`)
    writeFileSync(file, pem)
    await t.rejects(build(t, { JWT_SECRET: undefined, JWT_PUBLIC_KEY_FILE: file }), /JWT_PUBLIC_KEY_FILE .* (does not hold a PEM public key|holds an unsupported key)/, what)
  }
})

t.test('without a verification setting, development generates a secret once (0600) and reuses it', async (t) => {
  const cwd = tempDir()
  const first = await appWithRoutes(t, { JWT_SECRET: undefined, LOG_LEVEL: 'info' }, cwd)
  await first.app.ready()
  const file = join(cwd, 'certs', 'jwt-dev-secret')
  const secret = readFileSync(file, 'utf8').trim()
  t.ok(secret.length >= 32)
  t.equal(statSync(file).mode & 0o777, 0o600)
  t.match(first.logs.text(), /generated a development JWT secret/)
  t.notOk(first.logs.text().includes(secret), 'the secret is never logged')

  const second = await appWithRoutes(t, { JWT_SECRET: undefined, LOG_LEVEL: 'info' }, cwd)
  const token = signHs256(secret, { sub: 'dev', exp: nowSec() + 60 })
  t.equal((await second.app.inject({ url: '/test/default', headers: bearer(token) })).statusCode, 200, 'the reused secret verifies')
  t.match(second.logs.text(), /verifying tokens with the development JWT secret/)
  t.equal(readFileSync(file, 'utf8').trim(), secret, 'not regenerated')
})

t.test('a client over its invalid-token budget still gets in with a valid token; only its further invalid tokens get 429', async (t) => {
  const { app } = await appWithRoutes(t, { AUTH_FAILURE_LIMIT: '5', LOG_LEVEL: 'warn' })
  const nat = { remoteAddress: '127.0.0.7' }
  for (let i = 0; i < 5; i++) {
    t.equal((await app.inject({ url: '/test/default', headers: bearer(`forged.${i}.token`), ...nat })).statusCode, 401, 'within the budget: 401')
  }
  const limited = await app.inject({ url: '/test/default', headers: bearer('forged.6.token'), ...nat })
  t.equal(limited.statusCode, 429, 'past the budget an invalid token gets 429')
  t.match(String(limited.headers['content-type']), /^application\/problem\+json/)
  const retryAfter = Number(limited.headers['retry-after'])
  t.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`)
  t.match(limited.headers, { 'ratelimit-limit': '5', 'ratelimit-remaining': '0', 'ratelimit-reset': String(retryAfter) })
  const user = await app.inject({ url: '/test/default', headers: bearer(testToken({ sub: 'behind-the-same-nat' })), ...nat })
  t.equal(user.statusCode, 200, 'a valid token from the same address is accepted')
  t.same(user.json(), { sub: 'behind-the-same-nat' })
  t.equal((await app.inject({ url: '/test/stream?access_token=' + testToken(), ...nat })).statusCode, 200, 'on the query-token form too')
  t.equal((await app.inject({ url: '/test/default', headers: bearer(testToken({ exp: nowSec() - 3600 })), ...nat })).statusCode, 429, 'an expired one still gets 429')
  t.equal((await app.inject({ url: '/test/default', ...nat })).statusCode, 401, 'no token is a plain 401, not counted')
  t.equal((await app.inject({ url: '/test/public', ...nat })).statusCode, 200, 'public routes stay open')
  t.equal((await app.inject({ url: '/test/default', headers: bearer('forged.7.token'), remoteAddress: '127.0.0.8' })).statusCode, 401, 'another client has its own budget')
})

t.test('over its budget, a client\'s tokens that cannot verify are refused without a signature check', async (t) => {
  const { app } = await appWithRoutes(t, { AUTH_FAILURE_LIMIT: '2', LOG_LEVEL: 'warn', JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE })
  await app.ready()
  let signatureChecks = 0
  const verify = app.jwt.verify.bind(app.jwt)
  app.jwt.verify = ((...args: Parameters<typeof verify>) => { signatureChecks++; return verify(...args) }) as typeof verify
  const client = { remoteAddress: '127.0.0.9' }
  const send = async (token: string) => (await app.inject({ url: '/test/default', headers: bearer(token), ...client })).statusCode
  for (let i = 0; i < 2; i++) t.equal(await send(`spent.${i}.budget`), 401)
  const checksBefore = signatureChecks
  const other = 'another-secret-another-secret-another-0123'
  const implausible = [
    'not-a-jwt',
    'a.b.c',
    signHs256(TEST_JWT_SECRET, goodClaims(), { alg: 'HS512' }),
    signHs256(other, goodClaims({ exp: nowSec() - 3600 })),
    signHs256(other, goodClaims({ nbf: nowSec() + 3600 })),
    signHs256(other, goodClaims({ sub: undefined })),
    signHs256(other, goodClaims({ iss: 'https://evil.example/' })),
    signHs256(other, goodClaims({ aud: 'another-api' })),
    `${signHs256(other, goodClaims()).split('.').slice(0, 2).join('.')}.`
  ]
  for (const token of implausible) t.equal(await send(token), 429)
  t.equal(signatureChecks, checksBefore, 'none of them cost a signature check')
  t.equal(await send(signHs256(other, goodClaims())), 429, 'a plausible forgery is checked, and refused')
  t.equal(signatureChecks, checksBefore + 1)
  t.equal(await send(signHs256(TEST_JWT_SECRET, goodClaims())), 200, 'a valid token passes')
})

for (const mode of ['JWKS_URL', 'JWT_PUBLIC_KEY_FILE'] as const) {
  t.test(`${mode} mode: a client over its budget gets the same verdict on every row of the shared token table (accepted, or 429)`, async (t) => {
    const fixture = await tokenFixture(t)
    const { app } = await appWithRoutes(t, { ...(mode === 'JWKS_URL' ? fixture.jwksEnv : fixture.publicKeyEnv), AUTH_FAILURE_LIMIT: '1', LOG_LEVEL: 'warn' })
    const client = { remoteAddress: '127.0.0.10' }
    t.equal((await app.inject({ url: '/test/default', headers: bearer('spent.the.budget'), ...client })).statusCode, 401)
    for (const row of fixture.cases) {
      const res = await app.inject({ url: '/test/default', headers: bearer(row.token), ...client })
      t.equal(res.statusCode, row.accepted ? 200 : 429, row.name)
    }
  })
}

t.test('verifyAccessToken resolves to { sub, scopes, exp } and throws 401 AppErrors', async (t) => {
  const { app } = await build(t)
  await app.ready()
  const exp = nowSec() + 60
  t.same(await app.verifyAccessToken(testToken({ exp, scope: 'a b' })), { sub: 'user-1', scopes: ['a', 'b'], exp })
  await t.rejects(app.verifyAccessToken('nope'), { statusCode: 401, code: 'UNAUTHORIZED', headers: { 'www-authenticate': /error="invalid_token"/ } })
  await t.rejects(app.verifyAccessToken(testToken({ exp: nowSec() - 3600 })), { message: 'the access token has expired' })
})

t.test('tokens never appear in logs: Authorization headers, ?access_token= on /ws and /sse, rejections', async (t) => {
  const { app, logs } = await appWithRoutes(t, { LOG_LEVEL: 'trace', AUTH_FAILURE_LIMIT: '2' })
  const valid = testToken({ scope: 'items:write' })
  const expired = testToken({ exp: nowSec() - 3600 })
  const forged = signHs256('not-the-server-secret-not-the-server-secret', { sub: 'x', exp: nowSec() + 60 })
  const requests = [
    { url: '/test/scoped', headers: bearer(valid) },
    { url: '/test/default', headers: bearer(expired) },
    { url: '/test/default', headers: bearer(forged) },
    { url: '/test/default', headers: bearer(forged) },
    { url: `/ws?access_token=${valid}` },
    { url: `/sse?room=a&access_token=${expired}` },
    { url: `/test/stream?access_token=${forged}&x=1` },
    { url: `/test/stream?access_token=${valid}` }
  ]
  for (const request of requests) await app.inject(request)
  const text = logs.text()
  t.match(text, /\/ws\?access_token=\[REDACTED\]/, 'the /ws request was logged, its token redacted')
  t.match(text, /\/sse\?room=a&access_token=\[REDACTED\]/)
  t.match(text, /access token rejected/, 'rejections are logged (without the token)')
  t.match(text, /too many invalid access tokens/, 'the throttle tripping is logged')
  for (const token of [valid, expired, forged]) {
    for (const part of token.split('.')) t.notOk(text.includes(part), `no token part in the logs (${part.slice(0, 8)}…)`)
  }
  t.notOk(text.includes(TEST_JWT_SECRET), 'nor the secret')
})

t.test('a query token is redacted from every log line by its decoded name (access%5Ftoken=, %61ccess_token=), on HTTP, SSE and WebSocket upgrades', async (t) => {
  const { app, logs } = await appWithRoutes(t, { LOG_LEVEL: 'trace' })
  const valid = testToken()
  const expired = testToken({ exp: nowSec() - 3600 })
  const accepted = await app.inject({ url: `/test/stream?access%5Ftoken=${valid}` })
  t.equal(accepted.statusCode, 200, 'the query parser decodes the name: the token is accepted')
  await app.inject({ url: `/sse?room=a&%61ccess_token=${expired}` })
  // An upgrade to a route that is not a WebSocket route: the upgrade plugin logs the path it closed.
  const socket = await app.injectWS(`/health/live?access%5Ftoken=${valid}`)
  socket.terminate()
  await logs.waitFor(/closed incoming websocket connection/)
  const text = logs.text()
  t.match(text, /access%5Ftoken=\[REDACTED\]/)
  t.match(text, /%61ccess_token=\[REDACTED\]/)
  for (const token of [valid, expired]) {
    for (const part of token.split('.')) t.notOk(text.includes(part), `no token part in the logs (${part.slice(0, 8)}…)`)
  }
})
