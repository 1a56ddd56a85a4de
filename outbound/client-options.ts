// What a resilient client and each of its calls may be told, the defaults, and the checks:
// `resolveClientOptions` turns the caller's options into complete settings, refusing a bad one
// with a message that names it, before anything (timer, socket, breaker) is created.

import type { BackoffPolicy } from './backoff.ts'
import type { RetryBudgetOptions } from './retry-budget.ts'
import type { CircuitState } from './circuit-breaker.ts'
import type { CallOutcome } from './failure-classification.ts'
import { realClock, type Clock } from './call-scope.ts'

export interface BreakerPolicy {
  /** Failed attempts, in % of the window's attempts, above which the breaker opens. */
  errorThresholdPercentage: number
  /** Attempts the window must hold before it may open. */
  volumeThreshold: number
  /** How long it stays open before one probe may go through. */
  resetTimeoutMs: number
  rollingWindowMs: number
}

/** Hooks for metrics and logs; each is optional and must not throw. */
export interface ResilientClientObserver {
  attempt?: () => void
  retry?: () => void
  retryBudgetExhausted?: () => void
  outcome?: (outcome: CallOutcome, seconds: number) => void
  circuitStateChange?: (state: CircuitState) => void
}

export interface ResilientClientOptions {
  /** Short, log- and label-safe name (`payments`). */
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
  /** The inbound `tracestate`; forwarded, within the W3C limits, only with a valid `traceparent`. */
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

/** Every option with its value decided, and the base URL split into the pool's origin and a path prefix. */
export type ClientSettings = Required<Omit<ResilientClientOptions, 'baseUrl'>> & { origin: string, prefix: string }

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

export function resolveClientOptions (options: ResilientClientOptions): ClientSettings {
  const { name } = options
  if (!/^[a-z][a-z0-9_-]{0,63}$/.test(name)) throw new TypeError(`createResilientClient: name "${name}" must be lowercase [a-z0-9_-], starting with a letter`)
  const backoff = options.backoff ?? DEFAULTS.backoff
  positive('backoff.baseMs', backoff.baseMs, 0)
  positive('backoff.maxMs', backoff.maxMs, 0)
  return {
    name,
    ...parseBaseUrl(options.baseUrl),
    timeoutMs: positive('timeoutMs', options.timeoutMs ?? DEFAULTS.timeoutMs),
    connectTimeoutMs: positive('connectTimeoutMs', options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs),
    headersTimeoutMs: positive('headersTimeoutMs', options.headersTimeoutMs ?? DEFAULTS.headersTimeoutMs),
    bodyTimeoutMs: positive('bodyTimeoutMs', options.bodyTimeoutMs ?? DEFAULTS.bodyTimeoutMs),
    minAttemptMs: positive('minAttemptMs', options.minAttemptMs ?? DEFAULTS.minAttemptMs, 0),
    maxRetries: positive('maxRetries', options.maxRetries ?? DEFAULTS.maxRetries, 0),
    backoff,
    retryBudget: options.retryBudget ?? DEFAULTS.retryBudget,
    breaker: options.breaker ?? DEFAULTS.breaker,
    maxConcurrency: positive('maxConcurrency', options.maxConcurrency ?? DEFAULTS.maxConcurrency),
    maxQueue: options.maxQueue ?? DEFAULTS.maxQueue,
    maxResponseBytes: positive('maxResponseBytes', options.maxResponseBytes ?? DEFAULTS.maxResponseBytes),
    keepAliveTimeoutMs: options.keepAliveTimeoutMs ?? DEFAULTS.keepAliveTimeoutMs,
    allowH2: options.allowH2 ?? false,
    observer: options.observer ?? {},
    random: options.random ?? Math.random,
    clock: options.clock ?? realClock
  }
}
