// Tracing is off unless an OTLP endpoint is configured: the real entry point, serving requests,
// loads no OpenTelemetry SDK package and keeps the API's no-op tracer provider; its log lines carry
// no trace fields. With an endpoint the same probe sees the SDK (so the probe can see it at all).

import t, { type Test } from 'tap'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { spawnServer, waitListening, waitOutput, type Spawned } from '../helpers/app.ts'
import { h1request } from '../helpers/http.ts'

const PROBE = pathToFileURL(join(import.meta.dirname, 'fixtures', 'module-probe.ts')).href

/** Starts Keel with the probe, sends a few requests, stops it, and returns everything it printed. */
async function run (t: Test, env: Record<string, string>): Promise<Spawned> {
  const keel = await waitListening(spawnServer(t, { TLS: 'off', SHED_MAX_EVENT_LOOP_DELAY_MS: '0', ...env }, undefined, { imports: [PROBE] }), 60_000)
  for (const path of ['/api/v1/items', '/health/ready', '/api/v1/items/none']) {
    await h1request(`${keel.url}${path}`, { headers: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' } })
  }
  keel.proc.kill('SIGTERM')
  t.equal(await keel.exited, 0)
  await waitOutput(keel, /module-probe: tracer provider/)
  return keel
}

t.test('without OTEL_EXPORTER_OTLP_ENDPOINT no SDK is loaded and the tracer provider stays the no-op one', async (t) => {
  const keel = await run(t, {})
  t.match(keel.output(), /module-probe: watching/)
  t.notMatch(keel.output(), /module-probe: loaded/, 'no @opentelemetry/sdk-* module')
  t.match(keel.output(), /module-probe: tracer provider NoopTracerProvider/)
  t.notMatch(keel.output(), /trace_id|span_id/, 'log lines carry no trace fields')
})

t.test('OTEL_SDK_DISABLED=true keeps it off even with an endpoint', async (t) => {
  const keel = await run(t, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', OTEL_SDK_DISABLED: 'true' })
  t.notMatch(keel.output(), /module-probe: loaded/)
  t.match(keel.output(), /module-probe: tracer provider NoopTracerProvider/)
})

t.test('with an endpoint the SDK is loaded before the app and registers its tracer provider', async (t) => {
  // Nothing listens on port 9: the exports fail, which must not disturb the service.
  const keel = await run(t, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' })
  t.match(keel.output(), /module-probe: loaded @opentelemetry\/sdk-node/)
  t.notMatch(keel.output(), /module-probe: tracer provider NoopTracerProvider/)
  t.match(keel.output(), /"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"/)
})
