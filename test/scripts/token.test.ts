// `npm run token` as a developer uses it: one token line on stdout that a server started from the
// same checkout and environment accepts; bad arguments and unusable environments → one line, exit 1.

import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { readFileSync } from 'node:fs'
import { ROOT, build, spawnServer, tempDir, waitListening } from '../helpers/app.ts'
import { h1request } from '../helpers/http.ts'
import { PROBE_PATH, PROBE_WRITE_SCOPE } from '../helpers/probe-resource.ts'

interface Run { code: number | null, stdout: string, stderr: string }

/** Runs scripts/token.ts as `npm run token` does (`node scripts/token.ts …`), in `cwd`. */
async function runToken (args: string[], env: Record<string, string> = {}, cwd = tempDir()): Promise<Run> {
  const proc = spawn(process.execPath, [join(ROOT, 'scripts/token.ts'), ...args], { cwd, env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  proc.stdout.on('data', (c: Buffer) => { stdout += c.toString() })
  proc.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  const [code] = await once(proc, 'close') as [number | null]
  return { code, stdout, stderr }
}

const JWT_LINE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n$/

t.test('npm run token prints exactly one JWT line that a server from the same checkout accepts (both spawned)', async (t) => {
  const cwd = tempDir()
  const server = spawnServer(t, { JWT_SECRET: '', TLS: 'off' }, cwd, { probeResource: {} })
  const run = await runToken(['--sub', 'dev-user', '--scope', `${PROBE_WRITE_SCOPE},things:read`, '--ttl', '10m'], {}, cwd)
  t.equal(run.code, 0, run.stderr)
  t.match(run.stdout, JWT_LINE)
  t.equal(run.stderr, '')
  await waitListening(server)
  t.match(server.output(), /development JWT secret/)
  t.notOk(server.output().includes(readFileSync(join(cwd, 'certs', 'jwt-dev-secret'), 'utf8').trim()), 'the secret is never logged')

  // A route that needs a token with a scope, as a resource's writes do.
  const probe = await h1request(`${server.url}${PROBE_PATH}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":"from npm run token"}' })
  t.equal(probe.status, 401, 'without the token: 401')
  const res = await h1request(`${server.url}${PROBE_PATH}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${run.stdout.trim()}` },
    body: '{"name":"from npm run token"}'
  })
  t.equal(res.status, 201, res.body)
})

t.test('npm run token output verifies in an app built from the same working directory and environment', async (t) => {
  const cwd = tempDir()
  const run = await runToken(['--sub', 'dev-user', '--scope', 'items:write'], { JWT_ISSUER: 'https://keel.local/', JWT_AUDIENCE: 'keel' }, cwd)
  t.equal(run.code, 0, run.stderr)
  const { app } = await build(t, { JWT_SECRET: undefined, JWT_ISSUER: 'https://keel.local/', JWT_AUDIENCE: 'keel' }, cwd)
  await app.ready()
  const user = await app.verifyAccessToken(run.stdout.trim())
  t.equal(user.sub, 'dev-user')
  t.same(user.scopes, ['items:write'])
  const ttl = user.exp - Math.floor(Date.now() / 1000)
  t.ok(ttl > 800 && ttl <= 900, `default TTL 15 minutes (${ttl}s left)`)
})

t.test('with JWT_SECRET set, npm run token signs with it', async (t) => {
  const secret = 'a-secret-the-operator-chose-0123456789'
  const run = await runToken(['--sub', 'ops'], { JWT_SECRET: secret })
  t.equal(run.code, 0, run.stderr)
  const { app } = await build(t, { JWT_SECRET: secret })
  await app.ready()
  t.equal((await app.verifyAccessToken(run.stdout.trim())).sub, 'ops')
})

const badRuns: Array<[string, string[], Record<string, string>, RegExp]> = [
  ['without --sub', [], {}, /--sub ID is required/],
  ['with an empty --sub', ['--sub', ' '], {}, /--sub ID is required/],
  ['with an unknown option', ['--sub', 'a', '--admin'], {}, /Unknown option '--admin'/],
  ['with a positional argument', ['--sub', 'a', 'extra'], {}, /positional/],
  ['with a malformed --ttl', ['--sub', 'a', '--ttl', '15 minutes'], {}, /--ttl "15 minutes" must be a duration like 30s, 15m/],
  ['with a zero --ttl', ['--sub', 'a', '--ttl', '0s'], {}, /--ttl "0s"/],
  ['with a --ttl over 7 days', ['--sub', 'a', '--ttl', '8d'], {}, /at most 7d/],
  ['with a scope holding a quote', ['--sub', 'a', '--scope', 'items:"write'], {}, /--scope "items:"write" is not a valid scope/],
  ['in production without a key setting', ['--sub', 'a'], { NODE_ENV: 'production', TLS: 'off' }, /JWT_SECRET is missing in production/],
  ['when the server verifies through JWKS_URL', ['--sub', 'a'], { JWKS_URL: 'https://idp.example/jwks.json' }, /verifies tokens with JWKS_URL; only its identity provider can sign them/],
  ['with a bad environment variable', ['--sub', 'a'], { JWT_SECRET: 'short' }, /JWT_SECRET .*expected a secret of at least 32 characters/]
]

for (const [what, args, env, message] of badRuns) {
  t.test(`npm run token ${what}: one line on stderr, nothing on stdout, exit 1`, async (t) => {
    const run = await runToken(args, env)
    t.equal(run.code, 1)
    t.equal(run.stdout, '')
    t.match(run.stderr, /^token: [^\n]+\n$/)
    t.match(run.stderr, message)
  })
}

t.test('npm run token never prints a secret from the environment in its error line', async (t) => {
  const short = 'thirty-one-characters-secret-31'
  const envs: Array<Record<string, string>> = [
    { JWT_SECRET: short },
    { JWT_SECRET: 'a-long-enough-secret-0123456789-abcdef', JWKS_URL: 'https://keel:SECRETPW@idp.example/jwks.json' },
    { JWKS_URL: 'https://keel:SECRETPW@idp.example/jwks.json' }
  ]
  for (const env of envs) {
    const run = await runToken(['--sub', 'a'], env)
    t.equal(run.code, 1, run.stderr)
    for (const secret of [short, 'a-long-enough-secret', 'SECRETPW']) t.notOk(run.stderr.includes(secret), `${Object.keys(env).join('+')}: ${run.stderr.trim()}`)
  }
})
