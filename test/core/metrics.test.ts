// The app's Prometheus registry: request durations by route, method and status, and the process's
// default metrics (served by the metrics listener, test/core/metrics-listener.test.ts).

import t from 'tap'
import { build } from '../helpers/app.ts'
import { scrapeMetrics } from '../helpers/metrics.ts'

t.test('a request is counted under its route pattern', async (t) => {
  // Load shedding is not under test: on a loaded machine it would answer 503 instead of 404.
  const { app } = await build(t, { SHED_MAX_EVENT_LOOP_DELAY_MS: '0' })
  await app.inject('/health/live')
  await app.inject('/no/such/route')
  const text = await scrapeMetrics(app)
  t.match(text, /http_request_duration_seconds_count\{method="GET",route="\/health\/live",status_code="200"\} 1/)
  t.match(text, /http_request_duration_seconds_count\{method="GET",route="\(unmatched\)",status_code="404"\} 1/)
  t.match(text, /process_cpu_seconds_total/, 'default process metrics')
})
