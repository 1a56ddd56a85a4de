// Open-loop load: calls leave on a fixed schedule whatever the earlier ones are doing, as independent
// clients would, so a slow server meets more concurrent work instead of a politely waiting client
// (the closed loop of bench/soak/lib/clients.ts `steadyLoad`). Bounded in count; stoppable.

import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'

export interface OpenLoop {
  /** No more calls start; `done` still waits for those in flight. */
  stop: () => void
  /** Resolves with the number of calls started once every one of them has settled. */
  done: Promise<number>
}

/** Starts `fire(i)` `ratePerSecond` times a second, at most `maxCalls` times. `fire` must not reject. */
export function openLoop (ratePerSecond: number, maxCalls: number, fire: (i: number) => Promise<void>): OpenLoop {
  const intervalMs = 1000 / ratePerSecond
  const began = performance.now()
  const inFlight: Array<Promise<void>> = []
  const stopped = new AbortController()
  const done = (async () => {
    for (let i = 0; i < maxCalls && !stopped.signal.aborted; i++) {
      const wait = began + i * intervalMs - performance.now()
      if (wait > 0) await sleep(wait, undefined, { signal: stopped.signal }).catch(() => {})
      if (stopped.signal.aborted) break
      inFlight.push(fire(i))
    }
    await Promise.all(inFlight)
    return inFlight.length
  })()
  return { stop: () => stopped.abort(), done }
}
