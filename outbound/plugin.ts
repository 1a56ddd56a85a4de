// The named upstream clients (`fastify.upstreams.quotes`), built from config with one resilience
// policy; their attempts, retries, budget exhaustion, outcomes, latency and breaker state as metrics;
// breaker changes as log lines; breaker state on /health/ready (degraded, never not-ready: Keel
// still serves everything else); pools closed on shutdown. `callOptionsFor` carries an inbound
// request's id, trace and deadline into the calls it makes.

import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Counter, Gauge, Histogram } from 'prom-client'
import type { Config, UpstreamPolicy } from '../core/config.ts'
import {
  createResilientClient, type CallOptions, type CircuitState, type ResilientClient, type ResilientClientOptions
} from './resilient-client.ts'

/** Every configured upstream client; a name is absent when its URL is not configured. */
export interface Upstreams {
  quotes?: ResilientClient
}

declare module 'fastify' {
  interface FastifyInstance {
    upstreams: Upstreams
  }
}

export interface UpstreamsPluginOptions {
  upstreams: Config['upstreams']
}

/**
 * The inbound time budget: how many milliseconds the caller will wait, counted from when it sent the
 * request (relative, like gRPC's `grpc-timeout` and Envoy's `x-envoy-expected-rq-timeout-ms`, so the
 * two clocks need not agree). Outbound calls made for the request end by then, and carry what is left.
 */
export const DEADLINE_HEADER = 'x-request-timeout-ms'

/**
 * Aborts when the inbound client goes away before its response was sent, so the outbound call (and
 * its bulkhead slot) ends with it. The response is watched, not the request: a request's 'close'
 * (and so Fastify's `request.signal`) fires as soon as its body has been read.
 */
function clientGoneSignal (reply: FastifyReply): AbortSignal {
  const controller = new AbortController()
  reply.raw.once('close', () => {
    if (!reply.raw.writableEnded) controller.abort(new Error('the client went away before its response was sent'))
  })
  return controller.signal
}

/** Call options for an outbound call made while handling `request`: its id, trace, remaining time and cancellation. */
export function callOptionsFor (request: FastifyRequest, reply: FastifyReply): CallOptions {
  const options: CallOptions = {
    requestId: String(request.id),
    traceparent: request.headers.traceparent,
    tracestate: request.headers.tracestate,
    signal: clientGoneSignal(reply)
  }
  const budget = Number(request.headers[DEADLINE_HEADER])
  // Routes validate the header in their schema; elsewhere a malformed one is simply not a deadline.
  if (Number.isInteger(budget) && budget > 0) options.deadlineAt = Date.now() - reply.elapsedTime + budget
  return options
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

export default fp<UpstreamsPluginOptions>(async function upstreams (fastify, opts) {
  const registers = [fastify.metrics]
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

  const configured: Record<keyof Upstreams, string | undefined> = { quotes: opts.upstreams.quotesUrl }
  const policy = clientOptions(opts.upstreams.policy)
  const clients: Upstreams = {}

  for (const [name, baseUrl] of Object.entries(configured) as Array<[keyof Upstreams, string | undefined]>) {
    if (baseUrl === undefined) continue
    const label = { upstream: name }
    // Children bound once: no label lookup per call.
    const attempt = attempts.labels(label)
    const retry = retries.labels(label)
    const budgetExhausted = exhausted.labels(label)
    const state = circuitState.labels(label)
    // Every series exists from the start, so dashboards and alerts see 0 rather than nothing.
    for (const counter of [attempt, retry, budgetExhausted]) counter.inc(0)
    state.set(0)
    const log = fastify.log.child({ upstream: name })
    const client = createResilientClient({
      name,
      baseUrl,
      ...policy,
      observer: {
        attempt: () => attempt.inc(),
        retry: () => retry.inc(),
        retryBudgetExhausted: () => budgetExhausted.inc(),
        outcome: (outcome, seconds) => calls.observe({ upstream: name, outcome }, seconds),
        circuitStateChange (next) {
          state.set(STATE_VALUE[next])
          if (next === 'open') log.warn({ state: next, retryAfterMs: client.circuitState().retryAfterMs }, 'upstream circuit opened: calls fail fast')
          else log.info({ state: next }, next === 'closed' ? 'upstream circuit closed' : 'upstream circuit half-open: one probe may go through')
        }
      }
    })
    clients[name] = client
    fastify.health.addCheck(`upstream:${name}`, () => {
      const { state, retryAfterMs } = client.circuitState()
      if (state === 'closed') return { status: 'ok' }
      return { status: 'degraded', detail: state === 'open' ? `circuit open; next probe in ${Math.ceil(retryAfterMs / 1000)} s` : 'circuit half-open; probing' }
    }, { required: false })
  }

  fastify.decorate('upstreams', clients)
  fastify.addHook('onClose', async () => {
    await Promise.all(Object.values(clients).map((client: ResilientClient) => client.close()))
  })
}, { name: 'keel-upstreams', dependencies: ['keel-metrics', 'keel-health'] })
