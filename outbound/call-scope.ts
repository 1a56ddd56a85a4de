// One call's time: its deadline (the client's timeout, capped by the caller's `deadlineAt`) and its
// cancellation, as one AbortSignal aborted with a typed reason (`UpstreamTimeoutError` at the
// deadline, `UpstreamAbortedError` when the caller's signal fires). Also the clock every part reads.

import { UpstreamAbortedError, UpstreamTimeoutError } from './upstream-errors.ts'
import type { CallTrace } from './call-trace.ts'

/** Time, injectable so tests can observe and skip waits. `now` is epoch milliseconds (Retry-After dates). */
export interface Clock {
  now: () => number
  /** Resolves after `ms`; rejects with `signal.reason` when the signal aborts first. */
  sleep: (ms: number, signal: AbortSignal) => Promise<void>
}

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

export const realClock: Clock = { now: Date.now, sleep }

/** What bounds one call in time. */
export interface ScopeOptions {
  /** The call's own timeout, from now. */
  timeoutMs: number
  /** An absolute deadline (clock epoch ms) that may end the call sooner. */
  deadlineAt?: number
  /** The caller's cancellation. */
  signal?: AbortSignal
}

/** One call's deadline and cancellation; `end()` once the call is over. */
export interface CallScope {
  /** The deadline, clock epoch ms. */
  at: number
  /** Aborted at the deadline or by the caller, with a typed reason. */
  signal: AbortSignal
  /** Attempts sent so far (reported on the call's error). */
  attempts: number
  /** The call's spans (outbound/call-trace.ts). */
  trace: CallTrace
  end: () => void
}

export function openCallScope (name: string, options: ScopeOptions, clock: Clock, trace: CallTrace): CallScope {
  const now = clock.now()
  const at = Math.min(now + options.timeoutMs, options.deadlineAt ?? Infinity)
  const controller = new AbortController()
  // A real timer even with an injected clock: the deadline must abort an attempt in flight.
  const timer = setTimeout(() => controller.abort(new UpstreamTimeoutError(name, 'deadline')), Math.max(0, at - now))
  const caller = options.signal
  const onCallerAbort = () => controller.abort(new UpstreamAbortedError(name, caller?.reason))
  if (caller?.aborted === true) onCallerAbort()
  else caller?.addEventListener('abort', onCallerAbort, { once: true })
  return {
    at,
    signal: controller.signal,
    attempts: 0,
    trace,
    end () {
      clearTimeout(timer)
      caller?.removeEventListener('abort', onCallerAbort)
    }
  }
}
