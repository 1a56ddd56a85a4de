// How the entry point flushes what tracing holds on shutdown, without knowing whether tracing runs:
// telemetry/tracing.ts sets the flush when it starts the SDK; otherwise flushing does nothing.

let flush: () => Promise<void> = async () => {}

/** Called once by the tracing start-up with the SDK's shutdown. */
export function setTelemetryShutdown (shutdown: () => Promise<void>): void {
  flush = shutdown
}

/** Exports the spans still buffered and stops the SDK; a no-op when tracing is off. */
export function shutdownTelemetry (): Promise<void> {
  return flush()
}
