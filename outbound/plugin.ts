// The outbound plugin (`keel-upstreams`): clients for the upstreams that resources add
// (`fastify.addUpstream(name, baseUrl)`, then `fastify.upstreams[name]`), all with the one configured
// resilience policy; their attempts, retries, budget exhaustion, outcomes, latency and breaker state
// as metrics; breaker changes as log lines; breaker state on /health/ready (degraded, never
// not-ready: Keel still serves everything else); clients closed on shutdown. It names no upstream:
// each resource declares and adds its own (outbound/upstreams.ts has the types they import).

import fp from 'fastify-plugin'
import type { FastifyBaseLogger } from 'fastify'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type { UpstreamPolicy } from '../core/config.ts'
import type { CheckResult } from '../core/health.ts'
import {
  createResilientClient, type CircuitState, type ResilientClient, type ResilientClientObserver, type ResilientClientOptions
} from './resilient-client.ts'
import type { Upstreams } from './upstreams.ts'

export interface UpstreamsPluginOptions {
  /** How every upstream client behaves (config section `upstreams`). */
  policy: UpstreamPolicy
}

/** The client options the configured policy stands for (windows and backoff keep the client's defaults). */
export function clientOptions (policy: UpstreamPolicy): Omit<ResilientClientOptions, 'name' | 'baseUrl'> {
  return {
    timeoutMs: policy.timeoutMs,
    connectTimeoutMs: policy.connectTimeoutMs,
    headersTimeoutMs: policy.headersTimeoutMs,
    bodyTimeoutMs: policy.bodyTimeoutMs,
    maxRetries: policy.maxRetries,
    retryBudget: { ratio: policy.retryBudgetRatio, minPerSecond: policy.retryMinPerSecond, windowMs: 10_000 },
    breaker: {
      errorThresholdPercentage: policy.breakerErrorPercent,
      volumeThreshold: policy.breakerVolume,
      resetTimeoutMs: policy.breakerResetMs,
      rollingWindowMs: 10_000
    },
    maxConcurrency: policy.maxConcurrency,
    maxQueue: policy.maxQueue
  }
}

const STATE_VALUE: Record<CircuitState, number> = { closed: 0, 'half-open': 1, open: 2 }

type UpstreamSeries = Required<ResilientClientObserver>

/** The upstream metrics, and for each upstream an observer writing to its own series. */
function upstreamMetrics (registers: Registry[]): (name: string) => UpstreamSeries {
  const labelNames = ['upstream'] as const
  const attempts = new Counter({ name: 'upstream_attempts_total', help: 'Requests sent to an upstream, retries included', labelNames, registers })
  const retries = new Counter({ name: 'upstream_retries_total', help: 'Retries sent to an upstream', labelNames, registers })
  const exhausted = new Counter({
    name: 'upstream_retry_budget_exhausted_total', help: 'Retries not sent because the retry budget was spent', labelNames, registers
  })
  const calls = new Histogram({
    name: 'upstream_call_duration_seconds',
    help: 'Outbound calls by upstream and outcome (success, http_error, circuit_open, deadline_exceeded, ...), retries included',
    labelNames: ['upstream', 'outcome'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers
  })
  const circuitState = new Gauge({ name: 'upstream_circuit_state', help: 'Circuit breaker state: 0 closed, 1 half-open, 2 open', labelNames, registers })

  return (name) => {
    const label = { upstream: name }
    // Children bound once: no label lookup per call.
    const attempt = attempts.labels(label)
    const retry = retries.labels(label)
    const budgetExhausted = exhausted.labels(label)
    const state = circuitState.labels(label)
    // Every series exists from the start, so dashboards and alerts see 0 rather than nothing.
    for (const counter of [attempt, retry, budgetExhausted]) counter.inc(0)
    state.set(0)
    return {
      attempt: () => attempt.inc(),
      retry: () => retry.inc(),
      retryBudgetExhausted: () => budgetExhausted.inc(),
      outcome: (outcome, seconds) => calls.observe({ upstream: name, outcome }, seconds),
      circuitStateChange: (next) => state.set(STATE_VALUE[next])
    }
  }
}

function logStateChange (log: FastifyBaseLogger, state: CircuitState, client: ResilientClient): void {
  if (state === 'open') log.warn({ state, retryAfterMs: client.circuitState().retryAfterMs }, 'upstream circuit opened: calls fail fast')
  else log.info({ state }, state === 'closed' ? 'upstream circuit closed' : 'upstream circuit half-open: one probe may go through')
}

function readiness (client: ResilientClient): CheckResult {
  const { state, retryAfterMs } = client.circuitState()
  if (state === 'closed') return { status: 'ok' }
  return { status: 'degraded', detail: state === 'open' ? `circuit open; next probe in ${Math.ceil(retryAfterMs / 1000)} s` : 'circuit half-open; probing' }
}

export default fp<UpstreamsPluginOptions>(async function upstreams (fastify, opts) {
  const seriesFor = upstreamMetrics([fastify.metrics])
  const policy = clientOptions(opts.policy)
  const clients: Record<string, ResilientClient> = {}

  function addUpstream (name: string, baseUrl: string): ResilientClient {
    if (Object.hasOwn(clients, name)) throw new Error(`upstream "${name}" is already added`)
    const series = seriesFor(name)
    const log = fastify.log.child({ upstream: name })
    const client: ResilientClient = createResilientClient({
      name,
      baseUrl,
      ...policy,
      observer: {
        ...series,
        circuitStateChange (state) {
          series.circuitStateChange(state)
          logStateChange(log, state, client)
        }
      }
    })
    clients[name] = client
    fastify.health.addCheck(`upstream:${name}`, () => readiness(client), { required: false })
    return client
  }

  fastify.decorate('upstreams', clients satisfies Upstreams)
  fastify.decorate('addUpstream', addUpstream)
  fastify.addHook('onClose', async () => {
    await Promise.all(Object.values(clients).map((client) => client.close()))
  })
}, { name: 'keel-upstreams', dependencies: ['keel-metrics', 'keel-health'] })
