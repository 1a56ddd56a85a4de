// Secret-bearing configuration never reaches the process output: the real entry point runs with
// values that pass validation but fail at run time (Redis, JWKS and upstream URLs carrying
// credentials, all pointing at closed ports), requests drive every failing path, and every line the
// process wrote is searched for the secrets.

import t, { type Test } from 'tap'
import { createServer } from 'node:net'
import { once } from 'node:events'
import { spawnServer, waitListening, waitOutput, type Spawned } from '../helpers/app.ts'
import { h1request } from '../helpers/http.ts'
import { nowSec, signHs256 } from '../helpers/tokens.ts'
import { PROBE_PATH, PROBE_UPSTREAM_PATH, PROBE_WRITE_SCOPE } from '../helpers/probe-resource.ts'

const PASSWORD = 'SECRETPW-9f3a1c'
const JWT_SECRET = 'jwt-secret-never-printed-5b8e2d7a41c9'

/** A port nothing listens on: bound, then released. */
async function closedPort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

function assertNoSecret (t: Test, server: Spawned, secrets: string[]): void {
  const lines = server.output().split('\n')
  t.ok(lines.length > 1, `the process wrote ${lines.length} lines`)
  for (const secret of secrets) {
    const leaking = lines.filter((line) => line.includes(secret))
    t.same(leaking, [], `no output line contains ${secret.slice(0, 6)}…`)
  }
}

async function stop (server: Spawned): Promise<void> {
  server.proc.kill('SIGTERM')
  await server.exited
}

t.test('REDIS_URL credentials and JWT_SECRET never appear in any line the process writes, even at LOG_LEVEL=trace', async (t) => {
  const [redisPort, upstreamPort] = [await closedPort(), await closedPort()]
  const server = await waitListening(spawnServer(t, {
    TLS: 'off',
    LOG_LEVEL: 'trace',
    JWT_SECRET,
    REDIS_URL: `redis://keel:${PASSWORD}@127.0.0.1:${redisPort}/0`
  }, undefined, { probeResource: { upstreamUrl: `http://127.0.0.1:${upstreamPort}/v1` } }))
  const token = signHs256(JWT_SECRET, { sub: 'user-1', exp: nowSec() + 60, scope: PROBE_WRITE_SCOPE })
  await h1request(`${server.url}/health/ready`)
  await h1request(`${server.url}${PROBE_UPSTREAM_PATH}`)
  await h1request(`${server.url}${PROBE_PATH}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"name":"x"}' })
  await h1request(`${server.url}${PROBE_PATH}`, { method: 'POST', headers: { authorization: 'Bearer not.a.token' } })
  const expired = signHs256(JWT_SECRET, { sub: 'user-1', exp: nowSec() - 3600 })
  await h1request(`${server.url}/sse?room=lobby&access%5Ftoken=${expired}`, { headers: { accept: 'text/event-stream' } })
  // The rate limiter and the room hub both report Redis down.
  await waitOutput(server, /Redis unreachable/)
  await waitOutput(server, /room hub/)
  await stop(server)
  t.match(server.output(), /ECONNREFUSED 127\.0\.0\.1/, 'the failures were logged, with their host')
  assertNoSecret(t, server, [PASSWORD, JWT_SECRET, ...token.split('.'), ...expired.split('.')])
})

t.test('an upstream base URL with credentials stops the start without printing them', async (t) => {
  const server = spawnServer(t, { TLS: 'off' }, undefined, { probeResource: { upstreamUrl: `http://keel:${PASSWORD}@127.0.0.1:${await closedPort()}/v1` } })
  t.equal(await server.exited, 1)
  t.match(server.output(), /credentials/)
  assertNoSecret(t, server, [PASSWORD])
})

t.test('a JWKS_URL with credentials stops the start naming the variable, without printing them', async (t) => {
  const server = spawnServer(t, { TLS: 'off', JWT_SECRET: '', JWKS_URL: `https://keel:${PASSWORD}@127.0.0.1:${await closedPort()}/jwks.json` })
  t.equal(await server.exited, 1)
  t.match(server.output(), /JWKS_URL .*credentials/)
  assertNoSecret(t, server, [PASSWORD])
})
