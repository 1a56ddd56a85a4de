// Shared test helpers: build the app exactly as production does (buildApp over loadConfig), listen
// on loopback, spawn the real entry point, and read what was logged. Every app is closed by the test.

import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { spawn, type ChildProcess } from 'node:child_process'
import { PassThrough } from 'node:stream'
import { once } from 'node:events'
import { pathToFileURL } from 'node:url'
import { buildApp, type App } from '../../app.ts'
import { loadConfig, type Config } from '../../core/config.ts'
import type { ProbeResourceOptions } from './probe-resource.ts'

export const ROOT = resolve(import.meta.dirname, '../..')
/** HS256 secret every test app verifies with (>= 32 chars). */
export const TEST_JWT_SECRET = 'test-secret-test-secret-test-secret-0123'

interface Teardown { teardown: (fn: () => unknown) => void }

/** A fresh working directory: the dev certificate and JWT secret are generated inside it. */
export function tempDir (prefix = 'keel-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

export function testConfig (env: Record<string, string | undefined> = {}, cwd = tempDir()): Config {
  return loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'info',
    DATABASE_FILE: ':memory:',
    JWT_SECRET: TEST_JWT_SECRET,
    HOST: '127.0.0.1',
    PORT: '0',
    // An ephemeral metrics port: tests in parallel never clash on 9464 (`app.metricsAddress()` says which).
    METRICS_PORT: '0',
    ...env
  }, cwd)
}

export interface LogCapture {
  lines: () => Array<Record<string, unknown>>
  text: () => string
  /** Resolves when a logged line's text matches `pattern` (already logged or later); rejects after `timeoutMs`. */
  waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<void>
}

/** A log stream whose lines the test can read (JSON per line, as pino writes them). */
export function captureLogs (): { stream: PassThrough, logs: LogCapture } {
  const stream = new PassThrough()
  let text = ''
  stream.on('data', (chunk: Buffer) => { text += chunk.toString() })
  return {
    stream,
    logs: {
      text: () => text,
      lines: () => text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>),
      waitFor: async (pattern, timeoutMs = 5000) => {
        if (pattern.test(text)) return
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => { stream.off('data', check); reject(new Error(`no log line matched ${pattern}`)) }, timeoutMs)
          function check (): void {
            if (!pattern.test(text)) return
            clearTimeout(timer)
            stream.off('data', check)
            resolve()
          }
          stream.on('data', check)
        })
      }
    }
  }
}

export interface BuildResult { app: App, config: Config, logs: LogCapture }

/** Builds (not listening) an app; closed when the test ends. Use `app.inject` against it. */
export async function build (t: Teardown, env: Record<string, string | undefined> = {}, cwd?: string): Promise<BuildResult> {
  const config = testConfig(env, cwd)
  const { stream, logs } = captureLogs()
  const app = await buildApp(config, { logStream: stream })
  t.teardown(() => app.close())
  return { app, config, logs }
}

export interface Listening extends BuildResult {
  url: string
  port: number
  /** The server's certificate (PEM) to trust in clients; undefined with TLS=off. */
  ca?: Buffer
}

/** Builds and listens on 127.0.0.1 with a free port. */
export async function listen (t: Teardown, env: Record<string, string | undefined> = {}, cwd?: string): Promise<Listening> {
  return await listenOn(await build(t, env, cwd))
}

/** Listens on 127.0.0.1 with a free port, with an app `build` made (and the test extended, e.g. with a plugin). */
export async function listenOn (built: BuildResult): Promise<Listening> {
  await built.app.listen({ host: '127.0.0.1', port: 0 })
  const address = built.app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  const tls = built.config.tls.enabled
  const ca = tls ? readFileSync(built.config.tls.certFile ?? join(built.config.certsDir, 'dev-cert.pem')) : undefined
  return { ...built, port, url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`, ca }
}

export interface Spawned {
  proc: ChildProcess
  output: () => string
  /** Resolves with the exit code. */
  exited: Promise<number | null>
  port: number
  url: string
  /** The metrics listener's URL, from its start-up log line (set by `waitListening`; undefined with METRICS_PORT=off). */
  metricsUrl?: string
}

export interface SpawnOptions {
  /** RLIMIT_NOFILE (soft and hard) for the server process, set by the shell before it execs node. */
  openFilesLimit?: number
  /** Adds the probe resource (probe-resource.ts) to the app, through probe-preload.ts: routes of the test's own. */
  probeResource?: ProbeResourceOptions
  /** More modules for `--import`, loaded after the telemetry start-up and before the app. */
  imports?: string[]
}

/** What `npm start` and the image load before the app: tracing, when OTEL_* configures it. */
const TELEMETRY_IMPORT = ['--import', pathToFileURL(join(ROOT, 'telemetry', 'register.ts')).href]

/** `--import` of probe-preload.ts with its options in the module URL's query. */
function probePreload (options: ProbeResourceOptions): string[] {
  const url = pathToFileURL(join(ROOT, 'test', 'helpers', 'probe-preload.ts'))
  if (options.upstreamUrl !== undefined) url.searchParams.set('upstreamUrl', options.upstreamUrl)
  return ['--import', url.href]
}

/** Runs the real entry point (`node --import ./telemetry/register.ts server.ts`) with the given environment. */
export function spawnServer (t: Teardown, env: Record<string, string>, cwd = tempDir(), options: SpawnOptions = {}): Spawned {
  const preload = options.probeResource === undefined ? [] : probePreload(options.probeResource)
  const imports = (options.imports ?? []).flatMap((url) => ['--import', url])
  const entry = [process.execPath, ...TELEMETRY_IMPORT, ...imports, ...preload, join(ROOT, 'server.ts')]
  const [command, ...args] = options.openFilesLimit === undefined
    ? entry
    : ['/bin/sh', '-c', 'ulimit -n "$0" && exec "$@"', String(options.openFilesLimit), ...entry]
  return spawnProcess(t, command!, args, {
    cwd,
    env: { PATH: process.env.PATH, NODE_ENV: 'test', HOST: '127.0.0.1', PORT: '0', METRICS_PORT: '0', DATABASE_FILE: ':memory:', JWT_SECRET: TEST_JWT_SECRET, LOG_LEVEL: 'info', ...env }
  })
}

/** Runs `command` with exactly `env`, collecting its stdout and stderr; killed when the test ends if still running. */
export function spawnProcess (t: Teardown, command: string, args: string[], options: { cwd: string, env: Record<string, string | undefined> }): Spawned {
  const proc = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  proc.stdout!.on('data', (c: Buffer) => { out += c.toString() })
  proc.stderr!.on('data', (c: Buffer) => { out += c.toString() })
  const exited = once(proc, 'exit').then(([code]) => code as number | null)
  t.teardown(() => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL') })
  return { proc, output: () => out, exited, port: 0, url: '' }
}

/** Resolves when the process output matches `pattern`; rejects after `timeoutMs` or when it exits first. */
export async function waitOutput (s: Spawned, pattern: RegExp, timeoutMs = 5000): Promise<void> {
  if (pattern.test(s.output())) return
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      clearTimeout(timer)
      s.proc.stdout!.off('data', check)
      s.proc.off('exit', onExit)
      if (err === undefined) resolve(); else reject(err)
    }
    const check = (): void => { if (pattern.test(s.output())) done() }
    const onExit = (): void => { if (pattern.test(s.output())) done(); else done(new Error(`exited before output matched ${pattern}`)) }
    const timer = setTimeout(() => done(new Error(`output did not match ${pattern} within ${timeoutMs} ms`)), timeoutMs)
    // Registered after the helper's own listener, so the output already holds the chunk.
    s.proc.stdout!.on('data', check)
    s.proc.once('exit', onExit)
  })
}

/** Waits (bounded) until the spawned server logs its address; fills in `port` and `url`. */
export async function waitListening (s: Spawned, timeoutMs = 20_000): Promise<Spawned> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const m = /Server listening at (https?):\/\/127\.0\.0\.1:(\d+)/.exec(s.output())
    if (m !== null) {
      s.port = Number(m[2])
      s.url = `${m[1]}://127.0.0.1:${s.port}`
      // Logged before the API port opens, so it is already in the output.
      s.metricsUrl = /metrics served at (http:\/\/\S+?\/metrics)"/.exec(s.output())?.[1]
      return s
    }
    if (s.proc.exitCode !== null) break
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()))
      s.proc.stdout!.once('data', () => { clearTimeout(timer); resolve(undefined) })
    })
  }
  throw new Error(`server did not start: ${s.output()}`)
}
