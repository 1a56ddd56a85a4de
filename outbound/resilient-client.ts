// `createResilientClient`: calls to one upstream that survive it being slow or sick. Per call: a
// circuit-breaker check, a bulkhead slot, a total deadline (its own AbortSignal), then attempts with
// connect/headers/body timeouts, retried with jittered backoff within a retry budget. Framework-free;
// outbound/plugin.ts wires the observer to metrics and logs.
// The transport is an undici Pool (keep-alive, bounded connections). The retry loop is ours because
// undici's RetryAgent has no jitter, no retry budget, no deadline, and caps Retry-After at 30 s.

import { randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { Readable } from 'node:stream'
import { Pool, errors as undiciErrors, type Dispatcher } from 'undici'
import type { Static, TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import { backoffDelay, parseRetryAfter, type BackoffPolicy } from './backoff.ts'
import { createRetryBudget, type RetryBudgetOptions } from './retry-budget.ts'
import { createBulkhead } from './bulkhead.ts'
import { createCircuitBreaker, type CircuitState } from './circuit-breaker.ts'
import { boundTracestate, childTraceparent, newTrace, parseTraceparent, type TraceParent } from './trace-context.ts'
import {
  BulkheadFullError, CircuitOpenError, RetryStop, UpstreamAbortedError, UpstreamConnectionError, UpstreamError,
  UpstreamHttpError, UpstreamResponseInvalidError, UpstreamTimeoutError
} from './upstream-errors.ts'

export type { CircuitState } from './circuit-breaker.ts'

/** Time, injectable so tests can observe and skip waits. `now` is epoch milliseconds (Retry-After dates). */
export interface Clock {
  now: () => number
  /** Resolves after `ms`; rejects with `signal.reason` when the signal aborts first. */
  sleep: (ms: number, signal: AbortSignal) => Promise<void>
}

export interface BreakerPolicy {
  /** Failed attempts, in % of the window's attempts, above which the breaker opens. */
  errorThresholdPercentage: number
  /** Attempts the window must hold before it may open. */
  volumeThreshold: number
  /** How long it stays open before one probe may go through. */
  resetTimeoutMs: number
  rollingWindowMs: number
}

/** `outcome` label values: `success`, or an upstream error's code without its `UPSTREAM_` prefix, lowercased. */
export type CallOutcome = string

/** Hooks for metrics and logs; each is optional and must not throw. */
export interface ResilientClientObserver {
  attempt?: () => void
  retry?: () => void
  retryBudgetExhausted?: () => void
  outcome?: (outcome: CallOutcome, seconds: number) => void
  circuitStateChange?: (state: CircuitState) => void
}

export interface ResilientClientOptions {
  /** Short, log- and label-safe name (`quotes`). */
  name: string
  /** `http(s)://host[:port][/prefix]`; request paths are appended to it. */
  baseUrl: string
  /** Total time of one call, retries and waits included (a call's `deadlineAt` may shorten it). */
  timeoutMs?: number
  connectTimeoutMs?: number
  /** Per attempt: time to receive the response headers. */
  headersTimeoutMs?: number
  /** Per attempt: longest silence between two chunks of the response body. */
  bodyTimeoutMs?: number
  /** No attempt starts with less than this left before the deadline: it could not finish. */
  minAttemptMs?: number
  maxRetries?: number
  backoff?: BackoffPolicy
  retryBudget?: Omit<RetryBudgetOptions, 'now'>
  breaker?: BreakerPolicy
  /** Concurrent calls (and pooled connections) to this upstream. */
  maxConcurrency?: number
  /** Calls that may wait for a slot; beyond that, `BulkheadFullError` at once. */
  maxQueue?: number
  /** Larger response bodies are refused (`UpstreamResponseInvalidError`), never buffered. */
  maxResponseBytes?: number
  keepAliveTimeoutMs?: number
  /** Negotiate HTTP/2 over TLS (one connection multiplexes; keep `maxConcurrency` in mind). */
  allowH2?: boolean
  observer?: ResilientClientObserver
  /** Test seams. */
  random?: () => number
  clock?: Clock
}

/** What a call may say about itself; all optional. */
export interface CallOptions {
  /** Propagated as `x-request-id`. */
  requestId?: string
  /** The inbound `traceparent`; the trace continues (or starts) with a new span per attempt. */
  traceparent?: string | string[]
  tracestate?: string | string[]
  /** An absolute deadline (clock epoch ms), e.g. the inbound request's: caps the call's own timeout. */
  deadlineAt?: number
  /** Overrides the client's `timeoutMs` for this call. */
  timeoutMs?: number
  /** Aborts the call (e.g. when the inbound request goes away). */
  signal?: AbortSignal
  /** Extra request headers, lowercase names. */
  headers?: Record<string, string>
  /** Makes a non-idempotent method retryable: `true` generates a key, a string is sent as is. */
  idempotencyKey?: string | true
}

export interface RequestOptions extends CallOptions {
  method?: string
  /** Path (and query) appended to the base URL; starts with `/`. */
  path: string
  body?: string | Buffer
}

export interface UpstreamResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
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

const DEFAULTS = {
  timeoutMs: 3000,
  connectTimeoutMs: 1000,
  headersTimeoutMs: 2000,
  bodyTimeoutMs: 2000,
  minAttemptMs: 50,
  maxRetries: 2,
  backoff: { baseMs: 100, maxMs: 2000 },
  retryBudget: { ratio: 0.2, minPerSecond: 5, windowMs: 10_000 },
  breaker: { errorThresholdPercentage: 50, volumeThreshold: 10, resetTimeoutMs: 10_000, rollingWindowMs: 10_000 },
  maxConcurrency: 64,
  maxQueue: 64,
  maxResponseBytes: 1024 * 1024,
  keepAliveTimeoutMs: 4000
}

// RFC 9110 §9.2.2. POST and PATCH become retryable only with an Idempotency-Key.
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])
const RETRYABLE_STATUS = new Set([429, 502, 503, 504])
// An error response's body is read (to keep the connection) only up to this; larger ones close it.
const ERROR_BODY_LIMIT = 4096

function sleep (ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}
const realClock: Clock = { now: Date.now, sleep }

const compiled = new WeakMap<TSchema, TypeCheck<TSchema>>()
/** Compiles each schema once, however many calls use it. */
function checkerFor (schema: TSchema): TypeCheck<TSchema> {
  let check = compiled.get(schema)
  if (check === undefined) {
    check = TypeCompiler.Compile(schema)
    compiled.set(schema, check)
  }
  return check
}

function positive (name: string, value: number, min = 1): number {
  if (!Number.isFinite(value) || value < min) throw new RangeError(`createResilientClient: ${name} must be a number >= ${min}, got ${value}`)
  return value
}

function parseBaseUrl (baseUrl: string): { origin: string, prefix: string } {
  let url: URL
  try {
    url = new URL(baseUrl)
  } catch {
    throw new TypeError(`createResilientClient: baseUrl "${baseUrl}" is not a URL`)
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.search !== '' || url.hash !== '' || url.username !== '') {
    throw new TypeError('createResilientClient: baseUrl must be http(s)://host[:port][/prefix] without credentials, query or fragment')
  }
  return { origin: url.origin, prefix: url.pathname.replace(/\/+$/, '') }
}

const SYSTEM_CONNECTION_ERRORS = new Set(['UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_DESTROYED'])
const INVALID_RESPONSE_ERRORS = new Set(['UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'UND_ERR_HEADERS_OVERFLOW', 'UND_ERR_RES_EXCEEDED_MAX_SIZE'])

/** undici's and the OS's errors as ours; anything else (a bug, e.g. an invalid header) is returned unchanged. */
function classify (name: string, err: unknown): unknown {
  if (err instanceof UpstreamError) return err
  const { code, syscall } = (err ?? {}) as { code?: unknown, syscall?: unknown }
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return new UpstreamTimeoutError(name, 'connect', err)
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return new UpstreamTimeoutError(name, 'headers', err)
  if (code === 'UND_ERR_BODY_TIMEOUT') return new UpstreamTimeoutError(name, 'body', err)
  if (typeof code === 'string' && (INVALID_RESPONSE_ERRORS.has(code) || code.startsWith('HPE_'))) {
    return new UpstreamResponseInvalidError(name, code, err)
  }
  // undici's parser errors often carry no code at all (bytes that are not HTTP, e.g. the wrong port).
  if (err instanceof undiciErrors.HTTPParserError) return new UpstreamResponseInvalidError(name, 'not an HTTP response', err)
  if (typeof syscall === 'string' || (typeof code === 'string' && SYSTEM_CONNECTION_ERRORS.has(code))) {
    return new UpstreamConnectionError(name, err)
  }
  return err
}

/** Errors after which another attempt may succeed (and the request may be sent again). */
function isRetryable (err: UpstreamError): boolean {
  if (err.stoppedBy !== undefined) return false
  if (err instanceof UpstreamConnectionError) return true
  if (err instanceof UpstreamTimeoutError) return err.phase !== 'deadline'
  return err instanceof UpstreamHttpError && RETRYABLE_STATUS.has(err.status)
}

/** Errors that say the upstream is unwell; the breaker counts only these. */
function countsAgainstHealth (err: unknown): boolean {
  if (err instanceof UpstreamHttpError) return err.status >= 500
  return err instanceof UpstreamTimeoutError || err instanceof UpstreamConnectionError || err instanceof UpstreamResponseInvalidError
}

function stop (err: UpstreamError, reason: RetryStop): UpstreamError {
  err.stoppedBy = reason
  return err
}

export function outcomeOf (err: unknown): CallOutcome {
  return err instanceof UpstreamError ? err.code.slice('UPSTREAM_'.length).toLowerCase() : 'error'
}

interface Prepared<T> {
  method: string
  path: string
  body?: string | Buffer
  headers: Record<string, string>
  trace: TraceParent
  idempotent: boolean
  decode?: (body: Buffer) => T
}

/** One call's deadline and cancellation: a single AbortSignal aborted with a typed reason. */
interface CallScope {
  at: number
  signal: AbortSignal
  attempts: number
  end: () => void
}

export function createResilientClient (options: ResilientClientOptions): ResilientClient {
  const { name, observer = {}, random = Math.random, clock = realClock } = options
  if (!/^[a-z][a-z0-9_-]{0,63}$/.test(name)) throw new TypeError(`createResilientClient: name "${name}" must be lowercase [a-z0-9_-], starting with a letter`)
  const { origin, prefix } = parseBaseUrl(options.baseUrl)
  const timeoutMs = positive('timeoutMs', options.timeoutMs ?? DEFAULTS.timeoutMs)
  const headersTimeout = positive('headersTimeoutMs', options.headersTimeoutMs ?? DEFAULTS.headersTimeoutMs)
  const bodyTimeout = positive('bodyTimeoutMs', options.bodyTimeoutMs ?? DEFAULTS.bodyTimeoutMs)
  const minAttemptMs = positive('minAttemptMs', options.minAttemptMs ?? DEFAULTS.minAttemptMs, 0)
  const maxRetries = positive('maxRetries', options.maxRetries ?? DEFAULTS.maxRetries, 0)
  const backoff = options.backoff ?? DEFAULTS.backoff
  positive('backoff.baseMs', backoff.baseMs, 0)
  positive('backoff.maxMs', backoff.maxMs, 0)
  const maxResponseBytes = positive('maxResponseBytes', options.maxResponseBytes ?? DEFAULTS.maxResponseBytes)
  const maxConcurrency = positive('maxConcurrency', options.maxConcurrency ?? DEFAULTS.maxConcurrency)

  const budget = createRetryBudget({ ...(options.retryBudget ?? DEFAULTS.retryBudget), now: clock.now })
  const bulkhead = createBulkhead(maxConcurrency, options.maxQueue ?? DEFAULTS.maxQueue, () => new BulkheadFullError(name))
  const breaker = options.breaker ?? DEFAULTS.breaker
  const circuit = createCircuitBreaker({
    name,
    ...breaker,
    isFailure: countsAgainstHealth,
    onStateChange: (state) => observer.circuitStateChange?.(state)
  })
  // One connection per concurrent call: with HTTP/1.1 (no pipelining) a call never waits in undici's queue.
  const pool = new Pool(origin, {
    connections: maxConcurrency,
    connectTimeout: positive('connectTimeoutMs', options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs),
    keepAliveTimeout: options.keepAliveTimeoutMs ?? DEFAULTS.keepAliveTimeoutMs,
    headersTimeout,
    bodyTimeout,
    allowH2: options.allowH2 ?? false
  })

  function openScope (callOptions: CallOptions): CallScope {
    const now = clock.now()
    const at = Math.min(now + (callOptions.timeoutMs ?? timeoutMs), callOptions.deadlineAt ?? Infinity)
    const controller = new AbortController()
    // A real timer even with an injected clock: the deadline must abort an attempt in flight.
    const timer = setTimeout(() => controller.abort(new UpstreamTimeoutError(name, 'deadline')), Math.max(0, at - now))
    const caller = callOptions.signal
    const onCallerAbort = () => controller.abort(new UpstreamAbortedError(name, caller?.reason))
    if (caller?.aborted === true) onCallerAbort()
    else caller?.addEventListener('abort', onCallerAbort, { once: true })
    return {
      at,
      signal: controller.signal,
      attempts: 0,
      end () {
        clearTimeout(timer)
        caller?.removeEventListener('abort', onCallerAbort)
      }
    }
  }

  async function attempt<T> (req: Prepared<T>, scope: CallScope): Promise<T> {
    scope.attempts++
    observer.attempt?.()
    const headers = {
      ...req.headers,
      traceparent: childTraceparent(req.trace),
      // The time left, so the upstream can stop working on an answer nobody will wait for (gRPC-style).
      'x-request-timeout-ms': String(Math.max(0, Math.floor(scope.at - clock.now())))
    }
    let response
    try {
      response = await pool.request({ origin, method: req.method as Dispatcher.HttpMethod, path: req.path, headers, body: req.body, signal: scope.signal, headersTimeout, bodyTimeout })
    } catch (err) {
      throw classify(name, err)
    }
    const { statusCode, headers: responseHeaders, body } = response
    if (statusCode >= 400) {
      const retryAfterMs = parseRetryAfter(responseHeaders['retry-after'], clock.now())
      await body.dump({ limit: ERROR_BODY_LIMIT }).catch(() => {})
      throw new UpstreamHttpError(name, statusCode, retryAfterMs)
    }
    const bytes = await readBody(body)
    if (req.decode === undefined) return { status: statusCode, headers: responseHeaders, body: bytes } as T
    return req.decode(bytes)
  }

  /** The whole body, at most `maxResponseBytes`; errors are typed, and final once a byte has arrived. */
  function readBody (body: Readable): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = []
      let received = 0
      body.on('data', (chunk: Buffer) => {
        received += chunk.length
        if (received > maxResponseBytes) body.destroy(new UpstreamResponseInvalidError(name, `body over ${maxResponseBytes} bytes`))
        else chunks.push(chunk)
      })
      body.on('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received)))
      body.on('error', (err) => {
        const failure = classify(name, err)
        // Part of the answer is in: sending the request again could double its effects downstream.
        if (received > 0 && failure instanceof UpstreamError) failure.stoppedBy ??= RetryStop.BODY_CONSUMED
        reject(failure)
      })
    })
  }

  async function withRetries<T> (req: Prepared<T>, scope: CallScope): Promise<T> {
    budget.recordCall()
    let previous: UpstreamError | undefined
    for (let retry = 0; ; retry++) {
      let failure: UpstreamError
      try {
        return await circuit.run(() => attempt(req, scope))
      } catch (err) {
        if (!(err instanceof UpstreamError)) throw err
        failure = err
      }
      // The breaker opened while this call was backing off: its last real answer is the one to report.
      if (failure instanceof CircuitOpenError && previous !== undefined) throw stop(previous, RetryStop.CIRCUIT_OPEN)
      if (!isRetryable(failure)) throw failure
      if (!req.idempotent) throw stop(failure, RetryStop.NOT_IDEMPOTENT)
      if (retry >= maxRetries) throw stop(failure, RetryStop.MAX_RETRIES)
      // The upstream's Retry-After wins over the jittered delay, past the cap, if the deadline allows it.
      const retryAfterMs = failure instanceof UpstreamHttpError ? failure.retryAfterMs ?? 0 : 0
      const delay = Math.max(backoffDelay(retry + 1, backoff, random), retryAfterMs)
      if (clock.now() + delay + minAttemptMs > scope.at) throw stop(failure, RetryStop.DEADLINE)
      if (circuit.refuses()) throw stop(failure, RetryStop.CIRCUIT_OPEN)
      if (!budget.tryRetry()) {
        observer.retryBudgetExhausted?.()
        throw stop(failure, RetryStop.RETRY_BUDGET_EXHAUSTED)
      }
      observer.retry?.()
      if (delay > 0) await clock.sleep(delay, scope.signal)
      previous = failure
    }
  }

  async function call<T> (req: Prepared<T>, callOptions: CallOptions): Promise<T> {
    const started = performance.now()
    let scope: CallScope | undefined
    try {
      // Fail fast before any work when the breaker is open: no slot, no timer, no socket.
      if (circuit.refuses()) throw new CircuitOpenError(name, circuit.retryAfterMs())
      scope = openScope(callOptions)
      if (!bulkhead.tryAcquire()) await bulkhead.acquire(scope.signal)
      let value: T
      try {
        scope.signal.throwIfAborted()
        if (scope.at - clock.now() < minAttemptMs) throw new UpstreamTimeoutError(name, 'deadline')
        value = await withRetries(req, scope)
      } finally {
        bulkhead.release()
      }
      observer.outcome?.('success', (performance.now() - started) / 1000)
      return value
    } catch (err) {
      if (err instanceof UpstreamError && scope !== undefined) err.attempts = scope.attempts
      observer.outcome?.(outcomeOf(err), (performance.now() - started) / 1000)
      throw err
    } finally {
      scope?.end()
    }
  }

  function prepare<T> (method: string, path: string, callOptions: CallOptions, body?: string | Buffer, decode?: (body: Buffer) => T): Prepared<T> {
    if (!path.startsWith('/')) throw new TypeError(`${name}: request path must start with "/"`)
    const headers: Record<string, string> = { ...callOptions.headers }
    if (callOptions.requestId !== undefined) headers['x-request-id'] = callOptions.requestId
    const inbound = parseTraceparent(callOptions.traceparent)
    // The inbound state belongs to the inbound trace: a trace started here starts without one.
    const tracestate = inbound === undefined ? undefined : boundTracestate(callOptions.tracestate)
    if (tracestate !== undefined) headers.tracestate = tracestate
    if (callOptions.idempotencyKey !== undefined) {
      headers['idempotency-key'] = callOptions.idempotencyKey === true ? randomUUID() : callOptions.idempotencyKey
    }
    return {
      method,
      path: prefix + path,
      body,
      headers,
      trace: inbound ?? newTrace(),
      idempotent: IDEMPOTENT_METHODS.has(method) || headers['idempotency-key'] !== undefined,
      decode
    }
  }

  function jsonDecoder<T extends TSchema> (schema: T): (body: Buffer) => Static<T> {
    const check = checkerFor(schema)
    return (body) => {
      let value: unknown
      try {
        value = JSON.parse(body.toString('utf8'))
      } catch (err) {
        throw new UpstreamResponseInvalidError(name, 'body is not JSON', err)
      }
      if (!check.Check(value)) {
        const first = check.Errors(value).First()
        throw new UpstreamResponseInvalidError(name, `body does not match the schema at ${first?.path ?? '/'}: ${first?.message ?? 'invalid'}`)
      }
      return value as Static<T>
    }
  }

  const jsonHeaders = { accept: 'application/json' }

  return {
    name,
    request (requestOptions) {
      const method = (requestOptions.method ?? 'GET').toUpperCase()
      return call(prepare<UpstreamResponse>(method, requestOptions.path, requestOptions, requestOptions.body), requestOptions)
    },
    getJson (path, schema, callOptions = {}) {
      const withAccept = { ...callOptions, headers: { ...jsonHeaders, ...callOptions.headers } }
      return call(prepare('GET', path, withAccept, undefined, jsonDecoder(schema)), callOptions)
    },
    postJson (path, body, schema, callOptions = {}) {
      const withType = { ...callOptions, headers: { ...jsonHeaders, 'content-type': 'application/json', ...callOptions.headers } }
      return call(prepare('POST', path, withType, JSON.stringify(body), jsonDecoder(schema)), callOptions)
    },
    circuitState: () => ({ state: circuit.state, retryAfterMs: circuit.retryAfterMs() }),
    async close () {
      circuit.shutdown()
      await pool.close()
    }
  }
}
