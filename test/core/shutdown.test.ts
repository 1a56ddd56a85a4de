// Graceful shutdown of the real process: SIGTERM → not ready at once, in-flight requests finish,
// idle keep-alive connections do not hold the exit, exit 0 within the grace period.

import t from 'tap'
import { once } from 'node:events'
import { request as httpsRequest, Agent } from 'node:https'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnServer, tempDir, waitListening, waitOutput } from '../helpers/app.ts'
import { h1request, h2request, h2session } from '../helpers/http.ts'
import { testToken } from '../helpers/tokens.ts'
import { PROBE_PATH, PROBE_WRITE_SCOPE } from '../helpers/probe-resource.ts'

t.test('SIGTERM: readiness goes 503, a slow request completes with its answer, the process exits 0', async (t) => {
  const dir = tempDir()
  const server = await waitListening(spawnServer(t, { SHUTDOWN_DRAIN_MS: '1500', SHUTDOWN_TIMEOUT_MS: '8000' }, dir, { probeResource: {} }))
  const ca = readFileSync(join(dir, 'certs', 'dev-cert.pem'))
  const session = await h2session(server.url, { ca })
  t.teardown(() => session.close())
  t.equal((await h2request(session, '/health/ready')).status, 200, 'ready before the signal')

  // An idle HTTP/1.1 keep-alive connection: it must not hold the exit until keepAliveTimeout.
  const agent = new Agent({ keepAlive: true, ca, servername: 'localhost' })
  t.teardown(() => agent.destroy())
  t.equal((await h1request(`${server.url}/health/live`, { agent, ca })).status, 200)

  // A slow upload: headers now, the body only after the signal.
  const stream = session.request({
    ':method': 'POST',
    ':path': PROBE_PATH,
    authorization: `Bearer ${testToken({ scope: PROBE_WRITE_SCOPE })}`,
    'content-type': 'application/json'
  })
  stream.write('{"name":"written during ')
  const response = once(stream, 'response')
  const started = Date.now()
  await waitOutput(server, new RegExp(`"url":"${PROBE_PATH}"[^\\n]*incoming request`))

  server.proc.kill('SIGTERM')
  // The drain window keeps the listener open so probes can see "not ready" before it closes.
  let ready = 200
  const deadline = Date.now() + 1000
  while (ready !== 503 && Date.now() < deadline) ready = (await h2request(session, '/health/ready')).status
  t.equal(ready, 503, 'readiness reports 503 right after SIGTERM')

  stream.end('shutdown"}')
  const [headers] = await response as [Record<string, string>]
  let body = ''
  for await (const chunk of stream) body += chunk
  t.equal(Number(headers[':status']), 201, 'the in-flight request completed')
  t.match(JSON.parse(body), { name: 'written during shutdown' })

  t.equal(await server.exited, 0, 'exit 0')
  t.ok(Date.now() - started < 8000, 'within SHUTDOWN_TIMEOUT_MS')
  t.match(server.output(), /shutting down/)
})

t.test('a second signal forces exit 1', async (t) => {
  const dir = tempDir()
  const server = await waitListening(spawnServer(t, { SHUTDOWN_DRAIN_MS: '5000' }, dir))
  server.proc.kill('SIGTERM')
  await waitOutput(server, /shutting down/)
  server.proc.kill('SIGINT')
  t.equal(await server.exited, 1)
})

t.test('shutdown that overruns SHUTDOWN_TIMEOUT_MS is forced with exit 1', async (t) => {
  const dir = tempDir()
  const server = await waitListening(spawnServer(t, { SHUTDOWN_DRAIN_MS: '3000', SHUTDOWN_TIMEOUT_MS: '500' }, dir))
  const started = Date.now()
  server.proc.kill('SIGTERM')
  t.equal(await server.exited, 1)
  t.ok(Date.now() - started < 2500, 'forced at the timeout, not after the drain')
})

t.test('new connections are refused once the listener has closed', async (t) => {
  const dir = tempDir()
  const server = await waitListening(spawnServer(t, {}, dir))
  server.proc.kill('SIGTERM')
  t.equal(await server.exited, 0)
  const req = httpsRequest(`${server.url}/health/live`, { rejectUnauthorized: false })
  req.end()
  const [err] = await once(req, 'error') as [NodeJS.ErrnoException]
  t.equal(err.code, 'ECONNREFUSED')
})
