// /metrics: Prometheus text with request durations by route, method and status.

import t from 'tap'
import { build } from '../helpers/app.ts'

t.test('a request is counted under its route pattern', async (t) => {
  const { app } = await build(t)
  await app.inject('/health/live')
  await app.inject('/no/such/route')
  const res = await app.inject('/metrics')
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain/)
  t.match(res.body, /http_request_duration_seconds_count\{method="GET",route="\/health\/live",status_code="200"\} 1/)
  t.match(res.body, /http_request_duration_seconds_count\{method="GET",route="\(unmatched\)",status_code="404"\} 1/)
  t.match(res.body, /process_cpu_seconds_total/, 'default process metrics')
})
