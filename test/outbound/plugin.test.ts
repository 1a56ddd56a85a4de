// The outbound plugin as a resource uses it: it names no upstream of its own; a resource adds its
// client by name and gets the configured policy, metrics, a readiness check and shutdown with it.

import t from 'tap'
import { build } from '../helpers/app.ts'
import { scrapeMetrics } from '../helpers/metrics.ts'
import { fault, startFaultUpstream } from '../helpers/fault-upstream.ts'
import type { ResilientClient } from '../../outbound/resilient-client.ts'

declare module '../../outbound/upstreams.ts' {
  interface Upstreams {
    payments?: ResilientClient
  }
}

t.test('a resource adds its own upstream by name: client, metrics, readiness check and shutdown come with it', async (t) => {
  const upstream = await startFaultUpstream(t)
  const { app } = await build(t, { UPSTREAM_MAX_RETRIES: '0' })
  t.equal(app.upstreams.payments, undefined, 'nothing until a resource adds it')
  const client = app.addUpstream('payments', upstream.url)
  t.equal(app.upstreams.payments, client)

  t.equal((await client.request({ path: '/quotes/X' })).status, 200)
  const metrics = await scrapeMetrics(app)
  t.match(metrics, /upstream_attempts_total\{upstream="payments"\} 1/)
  t.match(metrics, /upstream_retries_total\{upstream="payments"\} 0/)
  t.match((await app.inject('/health/ready')).json(), { checks: { 'upstream:payments': { status: 'ok' } } })

  upstream.otherwise(fault.unavailable())
  await t.rejects(client.request({ path: '/quotes/X' }), { code: 'UPSTREAM_HTTP_ERROR', attempts: 1 }, 'the configured policy applies (no retries)')

  t.throws(() => app.addUpstream('payments', upstream.url), /already added/, 'a name is added once')
  await app.close()
  await t.rejects(client.request({ path: '/quotes/X' }), 'closed with the app')
})
