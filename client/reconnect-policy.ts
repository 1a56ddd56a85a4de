// When to try again after a lost connection: exponential backoff with full jitter under a cap, so a
// crowd of clients that lost one server spreads its reconnects instead of arriving all at once.

export interface ReconnectPolicy {
  /** Ceiling of the first retry's delay. Default 500 ms. */
  baseMs?: number
  /** No delay exceeds this. Default 30 s. */
  capMs?: number
  /** Consecutive failed attempts before giving up (`close` with `reconnect: false`). Default unlimited; 0 = never reconnect. */
  maxAttempts?: number
}

export type ResolvedReconnectPolicy = Required<ReconnectPolicy>

export function resolveReconnectPolicy (policy: ReconnectPolicy = {}): ResolvedReconnectPolicy {
  return { baseMs: policy.baseMs ?? 500, capMs: policy.capMs ?? 30_000, maxAttempts: policy.maxAttempts ?? Infinity }
}

/** Delay before attempt `attempt` (1 = the first after a loss): uniform in [0, min(cap, base·2^(attempt−1))). */
export function reconnectDelay (attempt: number, policy: ResolvedReconnectPolicy, random: () => number): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** (attempt - 1))
  return Math.floor(random() * ceiling)
}
