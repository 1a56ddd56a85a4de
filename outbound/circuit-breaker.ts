// One upstream's circuit breaker, on opossum: a rolling window of attempt outcomes; when at least
// `volumeThreshold` attempts in it failed more than `errorThresholdPercentage` %, it opens and
// refuses calls for `resetTimeoutMs`, then lets exactly one probe through (half-open) whose outcome
// closes or reopens it. Only failures that say the upstream is unwell count (`isFailure`).
// opossum's own timeout and AbortController are off: the client gives every call its own signal.

import CircuitBreaker from 'opossum'
import { CircuitOpenError } from './upstream-errors.ts'

export type CircuitState = 'closed' | 'open' | 'half-open'

export interface CircuitBreakerOptions {
  /** The upstream's name, used in errors. */
  name: string
  errorThresholdPercentage: number
  /** Attempts the rolling window must hold before the error percentage can open the breaker. */
  volumeThreshold: number
  resetTimeoutMs: number
  rollingWindowMs: number
  /** True for errors that count against the upstream's health (5xx, timeouts, connection errors). */
  isFailure: (err: unknown) => boolean
  onStateChange?: (state: CircuitState) => void
}

export interface UpstreamCircuit {
  /** Runs one attempt through the breaker; throws `CircuitOpenError` without running it when refused. */
  run: <T>(attempt: () => Promise<T>) => Promise<T>
  /** True when a call would be refused right now (open, or half-open with its probe in flight). */
  refuses: () => boolean
  readonly state: CircuitState
  /** Milliseconds until the breaker lets a call through again (0 when closed). */
  retryAfterMs: () => number
  shutdown: () => void
}

// While half-open the probe decides; clients are told to come back in a second rather than the
// whole reset timeout, since a successful probe closes the breaker at once.
const HALF_OPEN_RETRY_MS = 1000

export function createCircuitBreaker (options: CircuitBreakerOptions): UpstreamCircuit {
  const breaker = new CircuitBreaker<[() => Promise<unknown>], unknown>((attempt) => attempt(), {
    name: options.name,
    timeout: false,
    resetTimeout: options.resetTimeoutMs,
    errorThresholdPercentage: options.errorThresholdPercentage,
    volumeThreshold: options.volumeThreshold,
    rollingCountTimeout: options.rollingWindowMs,
    rollingCountBuckets: 10,
    // Percentiles sort every latency in the window on each failure; we keep our own histogram.
    rollingPercentilesEnabled: false,
    enableSnapshots: false,
    // opossum counts a filtered error as a success: 4xx, caller aborts and refusals are not the upstream's fault.
    errorFilter: (err: unknown) => !options.isFailure(err)
  })
  let openedAt = 0
  const notify = (state: CircuitState) => () => options.onStateChange?.(state)
  breaker.on('open', () => { openedAt = Date.now() })
  breaker.on('open', notify('open'))
  breaker.on('halfOpen', notify('half-open'))
  breaker.on('close', notify('closed'))

  const circuit: UpstreamCircuit = {
    // opossum lets a call through when closed, or half-open with the probe not yet taken.
    refuses: () => !breaker.closed && !breaker.pendingClose,
    run<T> (attempt: () => Promise<T>): Promise<T> {
      if (circuit.refuses()) return Promise.reject(new CircuitOpenError(options.name, circuit.retryAfterMs()))
      return breaker.fire(attempt) as Promise<T>
    },
    get state (): CircuitState {
      return breaker.opened ? 'open' : breaker.halfOpen ? 'half-open' : 'closed'
    },
    retryAfterMs () {
      if (breaker.opened) return Math.max(0, openedAt + options.resetTimeoutMs - Date.now())
      return breaker.halfOpen ? Math.min(HALF_OPEN_RETRY_MS, options.resetTimeoutMs) : 0
    },
    shutdown () { breaker.shutdown() }
  }
  return circuit
}
