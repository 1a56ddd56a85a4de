// `createResilientClient`: calls to one upstream that survive it being slow or sick. It composes the
// parts, each in its own file: options and defaults (client-options.ts), a breaker check and a
// bulkhead slot per call (circuit-breaker.ts, bulkhead.ts), the call's deadline and cancellation
// (call-scope.ts), the request prepared once (outbound-request.ts), attempts with connect/headers/body
// timeouts and decoding (attempt.ts), retried with jittered backoff within a retry budget
// (retry-loop.ts), failures typed and sorted (failure-classification.ts), a span per call and per
// attempt (call-trace.ts, with OpenTelemetry's API: no-ops unless tracing runs). Framework-free;
// outbound/plugin.ts wires the observer to metrics and logs.
// The transport is an undici Pool (keep-alive, bounded connections). The retry loop is ours because
// undici's RetryAgent has no jitter, no retry budget, no deadline, and caps Retry-After at 30 s.

import { performance } from 'node:perf_hooks'
import { Pool } from 'undici'
import type { Static, TSchema } from '@sinclair/typebox'
import { createRetryBudget } from './retry-budget.ts'
import { createBulkhead, type Bulkhead } from './bulkhead.ts'
import { createCircuitBreaker, type CircuitState, type UpstreamCircuit } from './circuit-breaker.ts'
import { resolveClientOptions, type CallOptions, type ClientSettings, type ResilientClientOptions } from './client-options.ts'
import { openCallScope, type CallScope } from './call-scope.ts'
import { CallTrace } from './call-trace.ts'
import { prepareRequest, type OutboundRequest, type RequestSpec, type UpstreamResponse } from './outbound-request.ts'
import { createAttempt, jsonDecoder, type Attempt } from './attempt.ts'
import { runWithRetries, type RetryPolicy } from './retry-loop.ts'
import { countsAgainstHealth, outcomeOf } from './failure-classification.ts'
import { BulkheadFullError, CircuitOpenError, UpstreamError, UpstreamTimeoutError } from './upstream-errors.ts'

export type { CircuitState } from './circuit-breaker.ts'
export type { Clock } from './call-scope.ts'
export type { BreakerPolicy, CallOptions, ResilientClientObserver, ResilientClientOptions } from './client-options.ts'
export type { UpstreamResponse } from './outbound-request.ts'
export { outcomeOf, type CallOutcome } from './failure-classification.ts'

export interface RequestOptions extends CallOptions {
  method?: string
  /** Path (and query) appended to the base URL; starts with `/`. */
  path: string
  body?: string | Buffer
}

export interface ResilientClient {
  readonly name: string
  /** Any method; a status >= 400 throws `UpstreamHttpError`. */
  request: (options: RequestOptions) => Promise<UpstreamResponse>
  /** GET and validate the JSON body against `schema` (invalid → `UpstreamResponseInvalidError`). */
  getJson: <T extends TSchema>(path: string, schema: T, options?: CallOptions) => Promise<Static<T>>
  /** POST a JSON body; retried only with an `idempotencyKey`. */
  postJson: <T extends TSchema>(path: string, body: unknown, schema: T, options?: CallOptions) => Promise<Static<T>>
  circuitState: () => { state: CircuitState, retryAfterMs: number }
  /** Stops the breaker's timers and closes the pool once in-flight calls finish. */
  close: () => Promise<void>
}

const rawResponse = (response: UpstreamResponse): UpstreamResponse => response
const JSON_HEADERS = { accept: 'application/json' }

/** What one client is made of; a call goes through each part in turn. */
interface ClientParts {
  settings: ClientSettings
  circuit: UpstreamCircuit
  bulkhead: Bulkhead
  attempt: Attempt
  retryPolicy: RetryPolicy
}

/** One call: breaker check, deadline scope, bulkhead slot, retries; its outcome reported (and traced) either way. */
async function callUpstream<T> (parts: ClientParts, req: OutboundRequest<T>, callOptions: CallOptions): Promise<T> {
  const { settings: { name, observer, clock, timeoutMs, origin }, circuit } = parts
  const started = performance.now()
  const trace = new CallTrace({ upstream: name, method: req.method, origin, path: req.path, parent: req.parent, circuitState: () => circuit.state })
  let scope: CallScope | undefined
  try {
    // Fail fast before any work when the breaker is open: no slot, no timer, no socket.
    if (circuit.refuses()) {
      trace.refused('circuit_open')
      throw new CircuitOpenError(name, circuit.retryAfterMs())
    }
    scope = openCallScope(name, { ...callOptions, timeoutMs: callOptions.timeoutMs ?? timeoutMs }, clock, trace)
    const value = await withSlot(parts, req, scope)
    observer.outcome?.('success', (performance.now() - started) / 1000)
    trace.end(undefined, scope.attempts)
    return value
  } catch (err) {
    if (err instanceof UpstreamError && scope !== undefined) err.attempts = scope.attempts
    if (err instanceof BulkheadFullError) trace.refused('bulkhead_full')
    observer.outcome?.(outcomeOf(err), (performance.now() - started) / 1000)
    trace.end(err, scope?.attempts ?? 0)
    throw err
  } finally {
    scope?.end()
  }
}

/** The retries of one call, inside a bulkhead slot taken (or waited for) first and always given back. */
async function withSlot<T> (parts: ClientParts, req: OutboundRequest<T>, scope: CallScope): Promise<T> {
  const { settings, bulkhead } = parts
  if (!bulkhead.tryAcquire()) await bulkhead.acquire(scope.signal)
  try {
    scope.signal.throwIfAborted()
    if (scope.at - settings.clock.now() < settings.minAttemptMs) throw new UpstreamTimeoutError(settings.name, 'deadline')
    return await runWithRetries(parts.retryPolicy, parts.attempt, req, scope)
  } finally {
    bulkhead.release()
  }
}

export function createResilientClient (options: ResilientClientOptions): ResilientClient {
  const settings = resolveClientOptions(options)
  const { name, observer, clock } = settings
  const circuit = createCircuitBreaker({
    name,
    ...settings.breaker,
    isFailure: countsAgainstHealth,
    onStateChange: (state) => observer.circuitStateChange?.(state)
  })
  // One connection per concurrent call: with HTTP/1.1 (no pipelining) a call never waits in undici's queue.
  const pool = new Pool(settings.origin, {
    connections: settings.maxConcurrency,
    connectTimeout: settings.connectTimeoutMs,
    keepAliveTimeout: settings.keepAliveTimeoutMs,
    headersTimeout: settings.headersTimeoutMs,
    bodyTimeout: settings.bodyTimeoutMs,
    allowH2: settings.allowH2
  })
  const parts: ClientParts = {
    settings,
    circuit,
    bulkhead: createBulkhead(settings.maxConcurrency, settings.maxQueue, () => new BulkheadFullError(name)),
    attempt: createAttempt({ ...settings, dispatcher: pool, onAttempt: observer.attempt }),
    retryPolicy: {
      ...settings,
      budget: createRetryBudget({ ...settings.retryBudget, now: clock.now }),
      circuit,
      onRetry: observer.retry,
      onRetryBudgetExhausted: observer.retryBudgetExhausted
    }
  }
  // Prepared before the call starts: a bad path is the caller's bug, thrown at once and never counted.
  const send = <T>(spec: RequestSpec<T>, callOptions: CallOptions): Promise<T> =>
    callUpstream(parts, prepareRequest(settings, spec, callOptions), callOptions)

  return {
    name,
    request (requestOptions) {
      const method = (requestOptions.method ?? 'GET').toUpperCase()
      return send({ method, path: requestOptions.path, body: requestOptions.body, decode: rawResponse }, requestOptions)
    },
    getJson (path, schema, callOptions = {}) {
      const withAccept = { ...callOptions, headers: { ...JSON_HEADERS, ...callOptions.headers } }
      return send({ method: 'GET', path, decode: jsonDecoder(name, schema) }, withAccept)
    },
    postJson (path, body, schema, callOptions = {}) {
      const withType = { ...callOptions, headers: { ...JSON_HEADERS, 'content-type': 'application/json', ...callOptions.headers } }
      return send({ method: 'POST', path, body: JSON.stringify(body), decode: jsonDecoder(name, schema) }, withType)
    },
    circuitState: () => ({ state: circuit.state, retryAfterMs: circuit.retryAfterMs() }),
    async close () {
      circuit.shutdown()
      await pool.close()
    }
  }
}
