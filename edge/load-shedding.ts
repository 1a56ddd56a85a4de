// Load shedding on @fastify/under-pressure: while the event loop lags or memory is over its limit,
// requests get 503 problem+json with Retry-After at once instead of queueing behind the overload.
// /health/ready reports why (and answers 503, so balancers send traffic elsewhere). Routes with
// `config: { loadShedding: false }` are never shed: liveness (a shed probe would get a busy process
// killed), readiness (it must be able to say why) and the metrics scrape (overload is when you need it).

import fp from 'fastify-plugin'
import underPressure, { type FastifyUnderPressureOptions } from '@fastify/under-pressure'
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

interface Usage { eventLoopDelay: number, heapUsed: number, rssBytes: number }

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

  /** Why the server is shedding now, or undefined when it is not (the plugin's last sample). */
  function pressure (): string | undefined {
    const usage = fastify.memoryUsage()
    const over = limits.find((l) => l.read(usage) > l.limit)
    return over === undefined ? undefined : describe(over.type, over.read(usage))
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
   * Called by the plugin only while a limit is passed. Returning nothing lets the request through;
   * returning a body makes the plugin send it and end the hook chain there.
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

  await fastify.register(underPressure, {
    maxEventLoopDelay: options.maxEventLoopDelayMs,
    maxHeapUsedBytes: options.maxHeapUsedBytes,
    maxRssBytes: options.maxRssBytes,
    retryAfter: SHED_RETRY_AFTER_S,
    // Its types say the handler returns void; at run time a returned value is sent as the reply.
    pressureHandler: shedOrAdmit as unknown as FastifyUnderPressureOptions['pressureHandler']
  })

  fastify.health.addCheck('load', () => {
    const reason = pressure()
    return reason === undefined ? { status: 'ok' } : { status: 'fail', detail: reason }
  })
}, { name: 'keel-load-shedding', dependencies: ['keel-errors', 'keel-health', 'keel-metrics'] })
