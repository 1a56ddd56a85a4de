// Loaded before the app (`node --import ./telemetry/register.ts server.ts`): starts tracing when the
// configuration asks for it, so the instrumented modules (pg, ioredis) are hooked before the app
// imports them. Without an OTLP endpoint it loads nothing else: the SDK is never imported. A bad
// configuration is left for server.ts to report, as the same one-line error as every other variable.

import { loadConfig, type Config } from '../core/config.ts'

function configured (): Config | undefined {
  try {
    return loadConfig()
  } catch {
    return undefined
  }
}

const config = configured()
if (config?.otel.enabled === true) {
  const { startTracing } = await import('./tracing.ts')
  await startTracing(config.otel)
}
