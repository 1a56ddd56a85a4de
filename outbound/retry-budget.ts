// A retry budget (Finagle's RetryBudget, Envoy's retry_budget): over a sliding window, retries may
// not exceed `ratio` × the calls made plus a small reserve of `minPerSecond` × window seconds. Under
// a full outage the upstream then sees about (1 + ratio) × the normal request rate instead of
// (1 + maxRetries) ×, while a quiet client (few calls) can still retry thanks to the reserve.

export interface RetryBudgetOptions {
  /** Retries allowed per call made, e.g. 0.2 = 20 %. */
  ratio: number
  /** Retries per second always allowed, whatever the traffic (the reserve). */
  minPerSecond: number
  /** Length of the sliding window; calls and retries older than this no longer count. */
  windowMs: number
  now?: () => number
}

export interface RetryBudget {
  /** Counts one call (not a retry): it earns `ratio` retries for the next window. */
  recordCall: () => void
  /** Spends one retry when the budget has one; false means "do not retry". */
  tryRetry: () => boolean
  /** Retries still available now (for tests and diagnostics). */
  available: () => number
}

// Ten buckets: the window slides in steps of a tenth of its length, which is plenty for a budget.
const BUCKETS = 10

export function createRetryBudget (options: RetryBudgetOptions): RetryBudget {
  const { ratio, minPerSecond, windowMs, now = Date.now } = options
  if (!(ratio >= 0) || !(minPerSecond >= 0) || !(windowMs >= BUCKETS)) {
    throw new RangeError(`a retry budget needs ratio >= 0, minPerSecond >= 0 and windowMs >= ${BUCKETS}`)
  }
  const bucketMs = windowMs / BUCKETS
  const reserve = minPerSecond * windowMs / 1000
  // Ring of buckets; `epochs[i]` says which time slice bucket i currently holds.
  const epochs = new Array<number>(BUCKETS).fill(-1)
  const calls = new Array<number>(BUCKETS).fill(0)
  const retries = new Array<number>(BUCKETS).fill(0)

  function current (): number {
    const epoch = Math.floor(now() / bucketMs)
    const i = epoch % BUCKETS
    if (epochs[i] !== epoch) {
      epochs[i] = epoch
      calls[i] = 0
      retries[i] = 0
    }
    return i
  }

  function available (): number {
    const oldest = Math.floor(now() / bucketMs) - BUCKETS
    let c = 0
    let r = 0
    for (let i = 0; i < BUCKETS; i++) {
      if (epochs[i]! > oldest) {
        c += calls[i]!
        r += retries[i]!
      }
    }
    return reserve + ratio * c - r
  }

  return {
    recordCall () { calls[current()]!++ },
    tryRetry () {
      if (available() < 1) return false
      retries[current()]!++
      return true
    },
    available
  }
}
