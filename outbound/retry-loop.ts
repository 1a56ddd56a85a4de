// The retry loop of one call: attempts through the breaker, another one only while the failure is
// retryable, the request idempotent, retries remain, the deadline leaves room for the wait (the
// jittered backoff, or the upstream's Retry-After, which wins) and an attempt, the breaker is
// closed and the retry budget allows it. When it stops, the error it lets through says why (`stoppedBy`).

import { backoffDelay, type BackoffPolicy } from './backoff.ts'
import type { RetryBudget } from './retry-budget.ts'
import type { UpstreamCircuit } from './circuit-breaker.ts'
import type { CallScope, Clock } from './call-scope.ts'
import type { Attempt } from './attempt.ts'
import type { OutboundRequest } from './outbound-request.ts'
import { isRetryable } from './failure-classification.ts'
import { CircuitOpenError, RetryStop, UpstreamError, UpstreamHttpError } from './upstream-errors.ts'

export interface RetryPolicy {
  maxRetries: number
  backoff: BackoffPolicy
  /** No attempt starts with less than this left before the deadline. */
  minAttemptMs: number
  budget: RetryBudget
  circuit: UpstreamCircuit
  random: () => number
  clock: Clock
  onRetry?: () => void
  onRetryBudgetExhausted?: () => void
}

function stop (err: UpstreamError, reason: RetryStop): UpstreamError {
  err.stoppedBy = reason
  return err
}

/** The first success, or the error to report once no further attempt is allowed. */
export async function runWithRetries<T> (policy: RetryPolicy, attempt: Attempt, req: OutboundRequest<T>, scope: CallScope): Promise<T> {
  const { budget, circuit, clock } = policy
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
    if (failure instanceof CircuitOpenError) scope.trace.refused('circuit_open')
    // The breaker opened while this call was backing off: its last real answer is the one to report.
    if (failure instanceof CircuitOpenError && previous !== undefined) throw stop(previous, RetryStop.CIRCUIT_OPEN)
    if (!isRetryable(failure)) throw failure
    if (!req.idempotent) throw stop(failure, RetryStop.NOT_IDEMPOTENT)
    if (retry >= policy.maxRetries) throw stop(failure, RetryStop.MAX_RETRIES)
    // The upstream's Retry-After wins over the jittered delay, past the cap, if the deadline allows it.
    const retryAfterMs = failure instanceof UpstreamHttpError ? failure.retryAfterMs ?? 0 : 0
    const delay = Math.max(backoffDelay(retry + 1, policy.backoff, policy.random), retryAfterMs)
    if (clock.now() + delay + policy.minAttemptMs > scope.at) throw stop(failure, RetryStop.DEADLINE)
    if (circuit.refuses()) {
      scope.trace.refused('circuit_open')
      throw stop(failure, RetryStop.CIRCUIT_OPEN)
    }
    if (!budget.tryRetry()) {
      policy.onRetryBudgetExhausted?.()
      scope.trace.refused('retry_budget_exhausted')
      throw stop(failure, RetryStop.RETRY_BUDGET_EXHAUSTED)
    }
    policy.onRetry?.()
    scope.trace.retrying(failure, delay)
    if (delay > 0) await clock.sleep(delay, scope.signal)
    previous = failure
  }
}
