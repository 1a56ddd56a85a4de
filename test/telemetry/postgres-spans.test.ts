// The database half of tracing on PostgreSQL: with DATABASE_URL the items route's queries are spans of
// the request's trace, written by the pg instrumentation (hooked although Keel imports pg as ESM).

import t from 'tap'
import { spawnServer, waitListening } from '../helpers/app.ts'
import { h1request } from '../helpers/http.ts'
import { startOtlpReceiver } from '../helpers/otlp-receiver.ts'
import { startPostgres, postgresSkipReason } from '../helpers/postgres.ts'
import { itemsSkipReason } from '../helpers/examples.ts'

t.test('a request reading items from PostgreSQL has its query as a span of the request\'s trace', { skip: postgresSkipReason() || itemsSkipReason }, async (t) => {
  const postgres = await startPostgres(t)
  const receiver = await startOtlpReceiver(t)
  const keel = await waitListening(spawnServer(t, {
    TLS: 'off',
    SHED_MAX_EVENT_LOOP_DELAY_MS: '0',
    DATABASE_URL: await postgres.createDatabase(),
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_BSP_SCHEDULE_DELAY: '100'
  }), 60_000)
  const traceId = '0af7651916cd43dd8448eb211c80319c'
  const res = await h1request(`${keel.url}/api/v1/items`, { headers: { traceparent: `00-${traceId}-b7ad6b7169203331-01` } })
  t.equal(res.status, 200, res.body)

  const inbound = await receiver.waitForSpan((s) => s.traceId === traceId && s.parentSpanId === 'b7ad6b7169203331')
  t.equal(inbound.name, 'GET /api/v1/items')
  const query = await receiver.waitForSpan((s) => s.traceId === traceId && s.scope.includes('pg') && /select/i.test(String(s.attributes['db.query.text'] ?? s.attributes['db.statement'] ?? '')))
  t.equal(query.kind, 3, 'a client span')
  t.match(query.attributes, { 'db.system.name': 'postgresql' })
  t.notMatch(JSON.stringify(query.attributes), /keel-test-password/, 'no credentials in its attributes')
})
