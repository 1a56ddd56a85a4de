// The OpenTelemetry SDK for Keel, imported only when an OTLP endpoint is configured: spans batched to
// the collector over OTLP/HTTP, the configured sampler and resource, the W3C trace-context propagator,
// and the instrumentations — @fastify/otel for inbound requests (registered on every Fastify instance
// as it is created), pg and ioredis for the database and Redis. Keel's own spans (outbound calls,
// SQLite, realtime events) are written with @opentelemetry/api and need nothing here.

import { randomUUID } from 'node:crypto'
import { register } from 'node:module'
import { NodeSDK, core, resources, tracing } from '@opentelemetry/sdk-node'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg'
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import type { TelemetryConfig } from '../core/config.ts'
import { setTelemetryShutdown } from './lifecycle.ts'
import { inboundRequestHook } from './inbound-span.ts'

// The modules Keel imports as ESM whose instrumentations patch them: only these go through the
// import-in-the-middle loader, so every other module loads exactly as without tracing.
const HOOKED_MODULES = ['pg', 'pg-pool', 'ioredis']

function sampler (config: TelemetryConfig): tracing.Sampler {
  const { AlwaysOnSampler, AlwaysOffSampler, TraceIdRatioBasedSampler, ParentBasedSampler } = tracing
  switch (config.sampler) {
    case 'always_on': return new AlwaysOnSampler()
    case 'always_off': return new AlwaysOffSampler()
    case 'traceidratio': return new TraceIdRatioBasedSampler(config.samplerRatio)
    case 'parentbased_always_off': return new ParentBasedSampler({ root: new AlwaysOffSampler() })
    case 'parentbased_traceidratio': return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.samplerRatio) })
    default: return new ParentBasedSampler({ root: new AlwaysOnSampler() })
  }
}

/** Hooks the instrumented modules' imports, then starts the SDK; the entry point's shutdown flushes it. */
export async function startTracing (config: TelemetryConfig): Promise<void> {
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url, { data: { include: HOOKED_MODULES } })
  const exporter = new OTLPTraceExporter({ url: config.tracesUrl, headers: config.headers })
  const sdk = new NodeSDK({
    resource: resources.resourceFromAttributes({
      // Tells this process's spans from another instance's; OTEL_RESOURCE_ATTRIBUTES may name it instead.
      'service.instance.id': randomUUID(),
      ...config.resourceAttributes,
      'service.name': config.serviceName,
      'service.version': config.serviceVersion
    }),
    // The configuration above is the whole of it: no detector reads the environment again.
    autoDetectResources: false,
    sampler: sampler(config),
    spanProcessors: [new tracing.BatchSpanProcessor(exporter, { scheduledDelayMillis: config.exportDelayMs })],
    // Trace context only: baggage from a client is not relayed to upstreams.
    textMapPropagator: new core.W3CTraceContextPropagator(),
    // Traces only; metrics stay on the Prometheus registry, logs on stdout.
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [
      new FastifyOtelInstrumentation({ registerOnInitialization: true, instrumentHooks: false, requestHook: inboundRequestHook }),
      new PgInstrumentation({ requireParentSpan: false }),
      new IORedisInstrumentation({ requireParentSpan: false })
    ]
  })
  sdk.start()
  setTelemetryShutdown(() => sdk.shutdown())
}
