// /metrics off the public port: the API port answers it 404; a plain-HTTP listener of its own
// (METRICS_PORT, METRICS_HOST) serves the app's registry, opens only when the app listens, binds only
// the configured host, closes with the app, and a port clash stops the start with one line.

import t from 'tap'
import { createServer, connect } from 'node:net'
import { once } from 'node:events'
import { build, listen, spawnServer, tempDir, waitListening } from '../helpers/app.ts'
import { h1request } from '../helpers/http.ts'
import { metricsUrl } from '../helpers/metrics.ts'
import { loadConfig } from '../../core/config.ts'

// Load shedding is not under test: on a loaded machine its event-loop check would answer the API's 503.
const UNSHED = { SHED_MAX_EVENT_LOOP_DELAY_MS: '0' }

/** Resolves with the error code of a TCP connection attempt (undefined when it connected). */
async function connectOutcome (host: string, port: number): Promise<string | undefined> {
  const socket = connect({ host, port })
  try {
    await once(socket, 'connect')
    return undefined
  } catch (err) {
    return (err as NodeJS.ErrnoException).code
  } finally {
    socket.destroy()
  }
}

t.test('GET /metrics on the API port is the normal 404 problem+json', async (t) => {
  const server = await listen(t, UNSHED)
  const res = await h1request(`${server.url}/metrics`, { ca: server.ca })
  t.equal(res.status, 404)
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  t.match(JSON.parse(res.body), { status: 404, title: 'Not Found', instance: '/metrics' })
  t.notMatch(res.body, /http_request_duration_seconds/)
})

t.test('the metrics listener serves the app\'s own registry: a request to the API shows there', async (t) => {
  const server = await listen(t, UNSHED)
  t.equal((await h1request(`${server.url}/health/live`, { ca: server.ca })).status, 200)
  const res = await h1request(metricsUrl(server.app))
  t.equal(res.status, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  t.match(res.body, /http_request_duration_seconds_count\{method="GET",route="\/health\/live",status_code="200"\} 1/)
  t.match(res.body, /process_cpu_seconds_total/, 'default process metrics')
})

t.test('the metrics listener answers GET and HEAD /metrics only: 405 for other methods, 404 elsewhere', async (t) => {
  const server = await listen(t, UNSHED)
  const url = metricsUrl(server.app)
  const head = await h1request(url, { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.body, '', 'HEAD: headers only')
  const post = await h1request(url, { method: 'POST', body: '{}' })
  t.equal(post.status, 405)
  t.equal(post.headers.allow, 'GET, HEAD')
  for (const path of ['/', '/health/live', '/metrics/', '/api/v1/items']) {
    t.equal((await h1request(new URL(path, url).href)).status, 404, path)
  }
  t.equal((await h1request(`${url}?name[]=x`)).status, 200, 'a query string is ignored')
})

t.test('the metrics listener binds the configured host only, and logs where metrics are served', async (t) => {
  const server = await listen(t, { ...UNSHED, METRICS_HOST: '127.0.0.1' })
  const address = server.app.metricsAddress()
  t.equal(address?.address, '127.0.0.1')
  t.not(address?.port, server.port, 'a port of its own')
  t.equal(await connectOutcome('127.0.0.1', address!.port), undefined, 'reachable on the configured host')
  // All of 127.0.0.0/8 reaches the loopback interface: a wildcard bind would accept 127.0.0.2 too.
  t.equal(await connectOutcome('127.0.0.2', address!.port), 'ECONNREFUSED', 'not on another address of the machine')
  const line = server.logs.lines().filter((l) => /metrics/i.test(String(l.msg)))
  t.equal(line.length, 1, 'one line')
  t.match(line[0], { level: 30, msg: `metrics served at http://127.0.0.1:${address!.port}/metrics` })
})

t.test('an app that never listens (inject only) opens no metrics port', async (t) => {
  const { app } = await build(t, UNSHED)
  t.equal((await app.inject('/health/live')).statusCode, 200)
  t.equal(app.metricsAddress(), null)
})

t.test('listen() in its callback form is refused with an error, not left hanging', async (t) => {
  const { app } = await build(t, UNSHED)
  const called: unknown[] = []
  const result = app.listen({ host: '127.0.0.1', port: 0 }, (err) => { called.push(err) }) as unknown as Promise<string>
  await t.rejects(result, { name: 'TypeError', message: /promise form/ })
  t.same(called, [], 'its callback is never called')
  t.equal(app.server.listening, false)
  t.equal(app.metricsAddress(), null)
})

t.test('the metrics listener closes with the app', async (t) => {
  const server = await listen(t, UNSHED)
  const port = server.app.metricsAddress()!.port
  await h1request(metricsUrl(server.app), { headers: { connection: 'keep-alive' } })
  await server.app.close()
  t.equal(server.app.metricsAddress(), null)
  t.equal(await connectOutcome('127.0.0.1', port), 'ECONNREFUSED')
})

t.test('METRICS_PORT=off serves the registry nowhere; the app still listens and says so once', async (t) => {
  const server = await listen(t, { ...UNSHED, METRICS_PORT: 'off' })
  t.equal(server.app.metricsAddress(), null)
  t.equal((await h1request(`${server.url}/health/live`, { ca: server.ca })).status, 200)
  t.match(server.logs.lines().filter((l) => /metrics/i.test(String(l.msg))), [{ msg: /metrics .*off/ }])
})

/** A loopback port held by another listener for the test's duration. */
async function occupiedPort (t: { teardown: (fn: () => unknown) => void }): Promise<number> {
  const squatter = createServer()
  squatter.listen(0, '127.0.0.1')
  await once(squatter, 'listening')
  t.teardown(() => squatter.close())
  return (squatter.address() as { port: number }).port
}

t.test('a metrics port in use fails listen() with a message naming it, before the API port opens', async (t) => {
  const port = await occupiedPort(t)
  const { app } = await build(t, { METRICS_PORT: String(port) })
  await t.rejects(app.listen({ host: '127.0.0.1', port: 0 }), { message: new RegExp(`^metrics listener: cannot listen on 127\\.0\\.0\\.1:${port} \\(METRICS_HOST, METRICS_PORT\\): address already in use$`) })
  t.equal(app.server.listening, false, 'the API port never opened')
  t.equal(app.metricsAddress(), null)
})

t.test('a metrics port in use stops the real entry point with exit 1 and one line', async (t) => {
  const port = await occupiedPort(t)
  const server = spawnServer(t, { METRICS_PORT: String(port) })
  t.equal(await server.exited, 1)
  const errors = server.output().split('\n').filter((l) => l.startsWith('keel:'))
  t.same(errors, [`keel: cannot listen: metrics listener: cannot listen on 127.0.0.1:${port} (METRICS_HOST, METRICS_PORT): address already in use`])
  t.notMatch(server.output(), /\n\s+at /, 'no stack trace')
})

t.test('a spawned server logs its metrics address, and /health/ready and /health/live stay on the API port', async (t) => {
  const server = await waitListening(spawnServer(t, { ...UNSHED, TLS: 'off' }), 60_000)
  t.match(server.metricsUrl, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
  t.not(server.metricsUrl, `${server.url}/metrics`)
  for (const path of ['/health/ready', '/health/live']) {
    t.equal((await h1request(`${server.url}${path}`)).status, 200, `${path} on the API port`)
    t.equal((await h1request(new URL(path, server.metricsUrl).href)).status, 404, `${path} not on the metrics port`)
  }
  t.equal((await h1request(server.metricsUrl!)).status, 200)
})

t.test('METRICS_PORT and METRICS_HOST: defaults, and bad values are one-line configuration errors', async (t) => {
  const defaults = loadConfig({}, tempDir())
  t.same(defaults.metrics, { enabled: true, host: '127.0.0.1', port: 9464 })
  t.same(loadConfig({ METRICS_PORT: 'off' }, tempDir()).metrics.enabled, false)
  t.same(loadConfig({ METRICS_PORT: '0', METRICS_HOST: '::1' }, tempDir()).metrics, { enabled: true, host: '::1', port: 0 })
  for (const [variable, value, expected] of [
    ['METRICS_PORT', 'nine', /METRICS_PORT has an invalid value "nine"; expected an integer 0–65535 \(0 = any free port\) or off$/],
    ['METRICS_PORT', '70000', /METRICS_PORT has an invalid value "70000"; expected an integer 0–65535/],
    ['METRICS_PORT', '1.5', /METRICS_PORT has an invalid value "1\.5"/],
    ['METRICS_HOST', 'a host', /METRICS_HOST has an invalid value "a host"; expected a hostname or IP address$/]
  ] as const) {
    t.throws(() => loadConfig({ [variable]: value }, tempDir()), { name: 'ConfigError', variable, message: expected }, `${variable}=${value}`)
  }
})
