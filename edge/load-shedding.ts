// Load shedding: while the event loop lags or memory is over its limit, requests get 503 problem+json
// with Retry-After at once instead of queueing behind the overload. /health/ready reports why (and
// answers 503, so balancers send traffic elsewhere). Routes with `config: { loadShedding: false }` are
// never shed: liveness (a shed probe would get a busy process killed), readiness (it must be able to
// say why) and the metrics scrape (overload is when you need it).
// The readings are @fastify/under-pressure's (mean event-loop delay, heap used, RSS, once a second),
// sampled here because its timer lets a failed memory read escape: reading RSS opens a file under
// /proc, which fails with EMFILE exactly when connections have taken every descriptor.

import { monitorEventLoopDelay } from 'node:perf_hooks'
import fp from 'fastify-plugin'
import { Counter } from 'prom-client'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from '../core/config.ts'
import { AppError, ErrorCode } from '../core/errors.ts'
import { problemReply, type Problem } from '../core/error-handler.ts'

export type LoadSheddingOptions = Config['loadShedding']

// Clients come back after 10 s: ten of the plugin's 1 s samples, long enough for a spike to pass,
// short enough that a recovered instance does not sit idle.
export const SHED_RETRY_AFTER_S = 10
// At most one warning per 10 s while shedding: an overload must not also flood the logs.
const WARN_INTERVAL_MS = 10_000
const SAMPLE_INTERVAL_MS = 1000
// The delay histogram's resolution: its mean never falls below it, so it is taken off the reading.
const LOOP_RESOLUTION_MS = 10

declare module 'fastify' {
  interface FastifyInstance {
    /** True while the last sample is over a load-shedding limit. */
    isUnderPressure: () => boolean
  }
}

interface Usage { eventLoopDelay: number, heapUsed: number, rssBytes: number }

/**
 * Samples the event-loop delay and memory once a second into `usage`, then calls `onSample`. A memory
 * read that fails keeps the last reading and is logged (once per failure spell): it must never stop
 * the sampling nor reach the process's uncaught-exception handler.
 */
function startSampling (usage: Usage, onSample: () => void, log: { warn: (obj: object, msg: string) => void }): () => void {
  const histogram = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS })
  histogram.enable()
  let failing = false
  const timer = setInterval(() => {
    // No delay sample in a whole interval means the loop was blocked throughout: NaN becomes Infinity.
    const delay = Math.max(0, histogram.mean / 1e6 - LOOP_RESOLUTION_MS)
    usage.eventLoopDelay = Number.isNaN(delay) ? Infinity : delay
    histogram.reset()
    try {
      const memory = process.memoryUsage()
      usage.heapUsed = memory.heapUsed
      usage.rssBytes = memory.rss
      failing = false
    } catch (err) {
      if (!failing) log.warn({ code: (err as NodeJS.ErrnoException).code }, 'cannot read memory usage; keeping the last reading')
      failing = true
    }
    onSample()
  }, SAMPLE_INTERVAL_MS)
  timer.unref()
  return () => {
    clearInterval(timer)
    histogram.disable()
  }
}

export default fp(async function loadShedding (fastify, options: LoadSheddingOptions) {
  const limits = [
    { type: 'eventLoopDelay', limit: options.maxEventLoopDelayMs, read: (u: Usage) => u.eventLoopDelay, unit: 'ms', what: 'event-loop delay' },
    { type: 'heapUsedBytes', limit: options.maxHeapUsedBytes, read: (u: Usage) => u.heapUsed, unit: 'bytes', what: 'heap used' },
    { type: 'rssBytes', limit: options.maxRssBytes, read: (u: Usage) => u.rssBytes, unit: 'bytes', what: 'resident memory' }
  ].filter((l) => l.limit > 0)

  function describe (type: string, value: number | undefined): string {
    const l = limits.find((candidate) => candidate.type === type)
    if (l === undefined) return type
    return `${l.what} ${Math.round(value ?? 0)} ${l.unit} is over the ${l.limit} ${l.unit} limit`
  }

  // The last sample, and the first limit it passes (checked in this order) or undefined.
  const usage: Usage = { eventLoopDelay: 0, heapUsed: 0, rssBytes: 0 }
  let over: { type: string, value: number } | undefined
  function checkLimits (): void {
    const passed = limits.find((l) => l.read(usage) > l.limit)
    over = passed === undefined ? undefined : { type: passed.type, value: passed.read(usage) }
  }

  /** Why the server is shedding now, or undefined when it is not (the last sample). */
  function pressure (): string | undefined {
    return over === undefined ? undefined : describe(over.type, over.value)
  }

  const shed = new Counter({
    name: 'http_requests_shed_total',
    help: 'Requests answered 503 by load shedding, by the limit that was passed',
    labelNames: ['reason'] as const,
    registers: [fastify.metrics]
  })
  const overloaded = new AppError(ErrorCode.SERVICE_UNAVAILABLE, `the server is overloaded; retry after ${SHED_RETRY_AFTER_S} s`,
    { headers: { 'retry-after': String(SHED_RETRY_AFTER_S) } })
  let lastWarning = 0
  let shedSinceWarning = 0

  /**
   * Called only while a limit is passed. Returning nothing lets the request through; returning a body
   * sends it and ends the hook chain there.
   */
  function shedOrAdmit (request: FastifyRequest, reply: FastifyReply, type: string, value: number | undefined): Problem | undefined {
    if (request.routeOptions.config.loadShedding === false) return undefined
    shed.inc({ reason: type })
    shedSinceWarning++
    const now = Date.now()
    if (now - lastWarning >= WARN_INTERVAL_MS) {
      request.log.warn({ reason: describe(type, value), shed: shedSinceWarning }, 'shedding load: answering 503')
      lastWarning = now
      shedSinceWarning = 0
    }
    // The client learns only that it should come back; the reason is for operators (metrics, readiness).
    return problemReply(request, reply, overloaded)
  }

  fastify.decorate('isUnderPressure', () => over !== undefined)
  if (limits.length > 0) {
    const stopSampling = startSampling(usage, checkLimits, fastify.log)
    fastify.addHook('onClose', async () => stopSampling())
    // A callback hook: it runs on every request, and an async one costs each a promise and a microtask turn.
    fastify.addHook('onRequest', function shedWhenOverloaded (request, reply, done) {
      const problem = over === undefined ? undefined : shedOrAdmit(request, reply, over.type, over.value)
      // Sending ends the hook chain here: the route never runs.
      if (problem === undefined) done()
      else reply.send(problem)
    })
  }

  fastify.health.addCheck('load', () => {
    const reason = pressure()
    return reason === undefined ? { status: 'ok' } : { status: 'fail', detail: reason }
  })
}, { name: 'keel-load-shedding', dependencies: ['keel-errors', 'keel-health', 'keel-metrics'] })
