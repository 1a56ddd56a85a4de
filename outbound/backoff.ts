// How long to wait before a retry: exponential backoff with full jitter and a cap (AWS's "full
// jitter": spreads synchronized clients evenly), and the upstream's own `Retry-After`.
// Pure functions — randomness and the current time are passed in, so tests need no clock.

export interface BackoffPolicy {
  /** Upper bound of the first retry's delay. */
  baseMs: number
  /** No jittered delay exceeds this (a `Retry-After` may: the upstream asked for it). */
  maxMs: number
}

/** Delay before retry number `retry` (1 = first retry): uniform in [0, min(max, base·2^(retry−1))). */
export function backoffDelay (retry: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** (retry - 1))
  return Math.floor(random() * ceiling)
}

// IMF-fixdate and the obsolete RFC 850 form (RFC 9110 §5.6.7): a weekday, a comma, GMT. The asctime
// form carries no zone and `Date.parse` would read it as local time, so it is treated as malformed.
const HTTP_DATE = /^[A-Za-z]{3,9}, .+ GMT$/

/**
 * `Retry-After` in milliseconds from `now`: delay-seconds or an HTTP-date (a date in the past = 0).
 * Undefined when absent or malformed — a malformed header is ignored, not trusted.
 */
export function parseRetryAfter (value: string | string[] | undefined, now: number): number | undefined {
  const header = Array.isArray(value) ? value[0] : value
  if (header === undefined) return undefined
  const text = header.trim()
  if (/^\d{1,10}$/.test(text)) return Number(text) * 1000
  if (!HTTP_DATE.test(text)) return undefined
  const at = Date.parse(text)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}
