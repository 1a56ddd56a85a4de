// The process entry: load configuration, build the app, listen, and handle signals.
// SIGTERM/SIGINT → not ready at once, stop accepting, finish in-flight work, exit 0 within
// SHUTDOWN_TIMEOUT_MS (a second signal or the timeout forces exit 1), the last spans exported when
// tracing runs. SIGHUP → reload TLS files. Started as `node --import ./telemetry/register.ts server.ts`.

import closeWithGrace from 'close-with-grace'
import { loadConfig, ConfigError, type Config } from './core/config.ts'
import { buildApp, type App } from './app.ts'
import { shutdownTelemetry } from './telemetry/lifecycle.ts'

function fail (message: string): never {
  process.stderr.write(`keel: ${message}\n`)
  process.exit(1)
}

let config: Config
try {
  config = loadConfig()
} catch (err) {
  fail(err instanceof ConfigError ? err.message : `cannot read configuration: ${(err as Error).message}`)
}

let app: App
try {
  app = await buildApp(config)
} catch (err) {
  fail(`cannot start: ${(err as Error).message}`)
}

closeWithGrace({
  delay: config.shutdownTimeoutMs,
  skip: ['SIGHUP'],
  logger: { error: (message: string) => app.log.error(message) }
}, async ({ signal, err }) => {
  if (err !== undefined) app.log.fatal({ err }, 'fatal error; shutting down')
  else app.log.info({ signal }, 'shutting down')
  app.health.markShuttingDown()
  if (config.shutdownDrainMs > 0) await new Promise((resolve) => setTimeout(resolve, config.shutdownDrainMs))
  await app.close()
  app.log.info('closed')
  const unexported = await shutdownTelemetry()
  if (unexported !== undefined) app.log.warn({ err: unexported }, 'the last spans were not exported')
})

process.on('SIGHUP', () => {
  if (config.tls.enabled) app.reloadTls()
})

try {
  await app.listen({ host: config.host, port: config.port })
} catch (err) {
  // The API port's own errors name its address (listen EADDRINUSE: … 127.0.0.1:3000); the metrics listener's name theirs.
  fail(`cannot listen: ${(err as Error).message}`)
}
