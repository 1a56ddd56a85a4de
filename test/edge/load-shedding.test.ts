// Load shedding: past a limit, requests get 503 problem+json with Retry-After; probes and metrics
// still answer, /health/ready says why, and each shed request is counted.

import t from 'tap'
import { build, listenOn } from '../helpers/app.ts'
import { metricsUrl, scrapeMetrics } from '../helpers/metrics.ts'
import { h1request } from '../helpers/http.ts'
import { loadConfig } from '../../core/config.ts'
import { tempDir } from '../helpers/app.ts'
import { PROBE_PATH, probeResource } from '../helpers/probe-resource.ts'
import { SHED_RETRY_AFTER_S } from '../../edge/load-shedding.ts'
import type { App } from '../../app.ts'

/** Waits (bounded) for the plugin's next samples to see the pressure; `provoke` runs before each check. */
async function untilUnderPressure (app: App, provoke: () => void = () => {}, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    provoke()
    if (app.isUnderPressure()) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`not under pressure after ${timeoutMs} ms`)
}

t.test('over a memory limit: 503 problem+json with Retry-After; probes and metrics answer; readiness says why', async (t) => {
  // Any heap is over one byte: the first sample (about 1 s after start) turns shedding on.
  const built = await build(t, { SHED_MAX_HEAP_USED_BYTES: '1' })
  const { app, logs } = built
  await app.register(probeResource)
  // Listening, so the metrics listener is scraped for real while the API sheds.
  await listenOn(built)
  await untilUnderPressure(app)

  for (const url of [PROBE_PATH, '/no/such/route', '/docs/json']) {
    const res = await app.inject({ url, headers: { 'x-request-id': 'shed-1' } })
    t.equal(res.statusCode, 503, url)
    t.equal(res.json().requestId, 'shed-1', `${url}: the request id`)
    t.equal(res.headers['retry-after'], String(SHED_RETRY_AFTER_S), `${url}: Retry-After`)
    t.match(res.headers['content-type'], /^application\/problem\+json/)
    t.match(res.json(), { status: 503, code: 'SERVICE_UNAVAILABLE', instance: url.split('?')[0], detail: /overloaded/ })
    t.notMatch(res.body, /heap|bytes/, `${url}: the client is not told the server's internals`)
    t.equal(res.headers['content-security-policy'], "default-src 'none';frame-ancestors 'none'", `${url}: security headers still on`)
  }

  const live = await app.inject('/health/live')
  t.equal(live.statusCode, 200, 'liveness is never shed')
  const ready = await app.inject('/health/ready')
  t.equal(ready.statusCode, 503, 'not ready while shedding: balancers send traffic elsewhere')
  t.match(ready.json(), { status: 'unavailable', checks: { load: { status: 'fail', detail: /^heap used \d+ bytes is over the 1 bytes limit$/ } } })

  const metrics = await h1request(metricsUrl(app))
  t.equal(metrics.status, 200, 'the metrics scrape is never shed')
  const shed = /^http_requests_shed_total\{reason="heapUsedBytes"\} (\d+)$/m.exec(metrics.body)
  t.equal(Number(shed?.[1]), 3, 'every shed request is counted, by reason')
  await logs.waitFor(/shedding load: answering 503/)
  t.equal(logs.lines().filter((l) => l.msg === 'shedding load: answering 503').length, 1, 'one warning, not one per request')
})

t.test('over the event-loop delay limit, requests are shed and readiness names the delay', async (t) => {
  const { app } = await build(t, { SHED_MAX_EVENT_LOOP_DELAY_MS: '1' })
  await app.register(probeResource)
  // Block the loop between samples so the plugin's mean delay passes 1 ms; a sample taken between the
  // two requests may clear it, so both are read again until they agree (bounded by the deadline).
  const block = () => { const end = Date.now() + 100; while (Date.now() < end); }
  const deadline = Date.now() + 10_000
  let shed, ready
  while (Date.now() < deadline) {
    await untilUnderPressure(app, block)
    shed = await app.inject(PROBE_PATH)
    ready = await app.inject('/health/ready')
    if (shed.statusCode === 503 && ready.statusCode === 503) break
  }
  t.equal(shed?.statusCode, 503)
  t.equal(shed?.headers['retry-after'], String(SHED_RETRY_AFTER_S))
  t.match(ready?.json(), { checks: { load: { status: 'fail', detail: /^event-loop delay \d+ ms is over the 1 ms limit$/ } } })
})

t.test('within its limits the app sheds nothing and readiness reports the load check ok', async (t) => {
  const { app } = await build(t)
  t.notOk(app.isUnderPressure())
  const ready = await app.inject('/health/ready')
  t.equal(ready.statusCode, 200)
  t.match(ready.json(), { checks: { load: { status: 'ok' } } })
  t.match(await scrapeMetrics(app), /# TYPE http_requests_shed_total counter/)
})

t.test('a memory reading that fails (no free file descriptor) is logged, and sampling goes on', async (t) => {
  const { app, logs } = await build(t, { SHED_MAX_HEAP_USED_BYTES: '1' })
  // On Linux the resident set size is read from /proc: with every descriptor taken, the read throws EMFILE.
  const memoryUsage = process.memoryUsage
  const failing = Object.assign(() => {
    throw Object.assign(new Error('EMFILE: too many open files, uv_resident_set_memory'), { code: 'EMFILE', syscall: 'uv_resident_set_memory' })
  }, { rss: memoryUsage.rss })
  process.memoryUsage = failing
  t.teardown(() => { process.memoryUsage = memoryUsage })
  await logs.waitFor(/cannot read memory usage/)
  process.memoryUsage = memoryUsage
  await untilUnderPressure(app)
  t.pass('the next readings are taken and acted on')
})

t.test('a bad SHED_* value stops the start with a message naming it', async (t) => {
  for (const [variable, value] of [['SHED_MAX_EVENT_LOOP_DELAY_MS', '-1'], ['SHED_MAX_EVENT_LOOP_DELAY_MS', 'fast'], ['SHED_MAX_HEAP_USED_BYTES', '-5'], ['SHED_MAX_RSS_BYTES', '2GB']]) {
    t.throws(() => loadConfig({ [variable!]: value }, tempDir()), { name: 'ConfigError', variable, message: new RegExp(`${variable}.*expected`) }, `${variable}=${value}`)
  }
  const config = loadConfig({}, tempDir())
  t.same(config.loadShedding, { maxEventLoopDelayMs: 1000, maxHeapUsedBytes: 0, maxRssBytes: 0 }, 'defaults: 1 s delay, memory checks off')
})
