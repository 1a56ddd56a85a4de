// How Keel's Redis connections are configured (core/redis.ts opens them): bounded connect and command
// times and no offline queue, so a dead Redis fails a command at once instead of queueing it (a queued
// command makes requests hang). ioredis keeps reconnecting in the background.

import { Redis } from 'ioredis'

// A healthy Redis answers in well under a millisecond; these bound what a sick one can cost.
const CONNECT_TIMEOUT_MS = 1000
const COMMAND_TIMEOUT_MS = 500
// Reconnect attempts back off to this ceiling, so service resumes within it once Redis is back.
const MAX_RECONNECT_DELAY_MS = 1000

export interface RedisClientOptions {
  /** A subscriber connection: it only (re)subscribes, and its owner re-issues its subscriptions on `ready`. */
  subscriber?: boolean
}

export function createRedisClient (url: string, options: RedisClientOptions = {}): Redis {
  return new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    connectTimeout: CONNECT_TIMEOUT_MS,
    commandTimeout: COMMAND_TIMEOUT_MS,
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt) => Math.min(attempt * 100, MAX_RECONNECT_DELAY_MS),
    // Subscriptions that failed while Redis was down were never recorded by ioredis: the owner
    // subscribes everything again on `ready`, so ioredis's own (partial) resubscribe is off.
    ...(options.subscriber === true ? { autoResubscribe: false } : {})
  })
}

/** Logs at most one warning per interval, counting the repeats in between. */
export function throttledWarning (
  log: (fields: { reason: string, suppressed: number }, message: string) => void,
  intervalMs: number,
  now: () => number = Date.now
): (reason: string, message: string) => void {
  let lastAt = -Infinity
  let suppressed = 0
  return (reason, message) => {
    const at = now()
    if (at - lastAt < intervalMs) {
      suppressed++
      return
    }
    log({ reason, suppressed }, message)
    lastAt = at
    suppressed = 0
  }
}
