// A bulkhead: at most `capacity` calls to one upstream at a time, at most `queue` more waiting for a
// slot, and everything beyond refused at once — a slow upstream can tie up that many calls, never
// all of the process's memory and sockets. (opossum's `capacity` has no queue, hence this file.)

export interface Bulkhead {
  /** Takes a free slot at once (true), or does nothing (false): the fast path, no promise. */
  tryAcquire: () => boolean
  /** Takes a slot, waiting in the queue when all are busy; rejects with `onFull()` when the queue is full too. */
  acquire: (signal: AbortSignal) => Promise<void>
  /** Frees a slot (hands it straight to the next waiter, if any). Call once per successful acquire. */
  release: () => void
  readonly active: number
  readonly queued: number
}

interface Waiter { resolve: () => void, reject: (err: unknown) => void, signal: AbortSignal, onAbort: () => void }

export function createBulkhead (capacity: number, queue: number, onFull: () => Error): Bulkhead {
  if (!Number.isInteger(capacity) || capacity < 1 || !Number.isInteger(queue) || queue < 0) {
    throw new RangeError('a bulkhead needs an integer capacity >= 1 and queue >= 0')
  }
  let active = 0
  const waiters: Waiter[] = []
  const free = Promise.resolve()

  function tryAcquire (): boolean {
    if (active >= capacity) return false
    active++
    return true
  }

  return {
    tryAcquire,
    acquire (signal) {
      if (signal.aborted) return Promise.reject(signal.reason)
      if (tryAcquire()) return free
      if (waiters.length >= queue) return Promise.reject(onFull())
      return new Promise<void>((resolve, reject) => {
        const waiter: Waiter = {
          resolve,
          reject,
          signal,
          onAbort () {
            // Leaving the queue: the slot it waited for goes to whoever is next.
            waiters.splice(waiters.indexOf(waiter), 1)
            reject(signal.reason)
          }
        }
        signal.addEventListener('abort', waiter.onAbort, { once: true })
        waiters.push(waiter)
      })
    },
    release () {
      const next = waiters.shift()
      if (next === undefined) {
        active--
        return
      }
      next.signal.removeEventListener('abort', next.onAbort)
      next.resolve()
    },
    get active () { return active },
    get queued () { return waiters.length }
  }
}
