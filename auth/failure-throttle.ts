// The invalid-token budget: failed token presentations per client IP in fixed one-minute windows.
// It throttles failures only — a client over its budget still gets in with a valid token (many users
// share one address behind a NAT) — and answers its further invalid tokens 429 instead of 401.

import { AppError, ErrorCode } from '../core/errors.ts'

export const FAILURE_WINDOW_MS = 60_000
// Bounds the throttle's memory whatever the number of client addresses.
const MAX_CLIENTS = 10_000

/**
 * Entries are kept in creation order, which is also expiry order, so pruning reads only the front of
 * the map.
 */
export class AuthFailureThrottle {
  readonly limit: number
  readonly #counts = new Map<string, { count: number, resetAt: number }>()

  constructor (limit: number) {
    this.limit = limit
  }

  /** Seconds until the client's budget is back; 0 while it has failures left. */
  retryAfterSec (ip: string, now: number): number {
    const entry = this.#counts.get(ip)
    if (entry === undefined || entry.resetAt <= now || entry.count < this.limit) return 0
    return Math.ceil((entry.resetAt - now) / 1000)
  }

  /** Counts one failure; true when it is the one that spends the budget. */
  record (ip: string, now: number): boolean {
    let entry = this.#counts.get(ip)
    if (entry === undefined || entry.resetAt <= now) {
      this.#counts.delete(ip)
      this.#prune(now)
      entry = { count: 0, resetAt: now + FAILURE_WINDOW_MS }
      this.#counts.set(ip, entry)
    }
    entry.count++
    return entry.count === this.limit
  }

  #prune (now: number): void {
    for (const [ip, entry] of this.#counts) {
      if (entry.resetAt > now && this.#counts.size < MAX_CLIENTS) return
      this.#counts.delete(ip)
    }
  }
}

/** The 429 for an invalid token past the budget: Retry-After plus the RateLimit-* headers of this budget. */
export function tooManyInvalidTokens (retryAfterSec: number, limit: number): AppError {
  return new AppError(ErrorCode.RATE_LIMITED, 'too many invalid access tokens from this client; retry later', {
    headers: { 'retry-after': String(retryAfterSec), 'ratelimit-limit': String(limit), 'ratelimit-remaining': '0', 'ratelimit-reset': String(retryAfterSec) }
  })
}
