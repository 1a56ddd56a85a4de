// A token bucket: `burst` tokens, refilled continuously at `ratePerSec`. Used per WebSocket
// connection to bound its message rate. Time is passed in (milliseconds) so tests need no clock.

export class TokenBucket {
  readonly #ratePerMs: number
  readonly #burst: number
  #tokens: number
  #updatedAt: number

  constructor (ratePerSec: number, burst: number, now: number) {
    if (!(ratePerSec > 0) || !(burst >= 1)) throw new RangeError('a token bucket needs ratePerSec > 0 and burst >= 1')
    this.#ratePerMs = ratePerSec / 1000
    this.#burst = burst
    this.#tokens = burst
    this.#updatedAt = now
  }

  #refill (now: number): void {
    if (now > this.#updatedAt) {
      this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#updatedAt) * this.#ratePerMs)
      this.#updatedAt = now
    }
  }

  /** Takes one token; false when the bucket is empty (the caller is over its rate). */
  take (now: number): boolean {
    this.#refill(now)
    if (this.#tokens < 1) return false
    this.#tokens -= 1
    return true
  }

  /** True when the bucket has refilled completely: the client has been within its rate for a while. */
  isFull (now: number): boolean {
    this.#refill(now)
    return this.#tokens >= this.#burst
  }
}
