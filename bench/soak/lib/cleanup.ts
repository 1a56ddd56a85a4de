// What a run opened and must close however it ends: clients, sockets, servers. Has the `teardown(fn)`
// shape of a tap test, so the suite's helpers (openSocket, spawnServer) can register into it.

export interface Cleanup {
  teardown: (fn: () => unknown) => void
  /** Runs every registered function, last registered first; one failing does not stop the others. */
  run: () => Promise<void>
}

export function createCleanup (): Cleanup {
  const fns: Array<() => unknown> = []
  return {
    teardown: (fn) => { fns.push(fn) },
    run: async () => {
      for (const fn of fns.splice(0).reverse()) {
        try {
          await fn()
        } catch {
          // Closing something already broken is expected at the end of a punishment.
        }
      }
    }
  }
}

/** Runs `body` with a fresh cleanup and runs the cleanup however `body` ends. */
export async function withCleanup<T> (body: (cleanup: Cleanup) => Promise<T>): Promise<T> {
  const cleanup = createCleanup()
  try {
    return await body(cleanup)
  } finally {
    await cleanup.run()
  }
}
