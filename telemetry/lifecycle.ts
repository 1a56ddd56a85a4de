// How the entry point flushes what tracing holds on shutdown, without knowing whether tracing runs:
// telemetry/tracing.ts sets the flush when it starts the SDK; otherwise flushing does nothing.

// A collector that does not answer must not hold the exit: the last spans get this long.
const FLUSH_TIMEOUT_MS = 3000

let flush: () => Promise<void> = async () => {}

/** Called once by the tracing start-up with the SDK's shutdown. */
export function setTelemetryShutdown (shutdown: () => Promise<void>): void {
  flush = shutdown
}

/**
 * Exports the spans still buffered and stops the SDK; a no-op when tracing is off. Never rejects:
 * resolves with the reason the last spans were not exported, if they were not.
 */
export async function shutdownTelemetry (): Promise<Error | undefined> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<Error>((resolve) => {
    timer = setTimeout(() => resolve(new Error(`the collector did not take the last spans within ${FLUSH_TIMEOUT_MS} ms`)), FLUSH_TIMEOUT_MS)
  })
  try {
    return await Promise.race([flush().then(() => undefined, (err: unknown) => err as Error), timeout])
  } finally {
    clearTimeout(timer)
  }
}
