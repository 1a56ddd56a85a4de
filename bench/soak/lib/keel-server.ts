// Spawn the real server for a reliability run and wait for it: `node server.ts` (Node 24) on 127.0.0.1
// with a free port, TLS on as in production (a development pair generated into the run's scratch dir and
// passed as TLS_CERT_FILE/TLS_KEY_FILE, since production never generates one) unless asked otherwise. Starts it through the tap suite's own spawnServer/waitListening so soak runs and tests
// start the server alike. Every server started here is killed when this process exits, however it exits.

import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnServer, waitListening } from '../../../test/helpers/app.ts'
import { ensureDevCertificate } from '../../../core/dev-cert.ts'
import { processCpuSeconds } from '../../lib/server-process.ts'
import type { Cleanup } from './cleanup.ts'

/** What a run may set; everything else is the tap suite's spawn defaults (127.0.0.1, PORT=0, `:memory:` database, test JWT secret). */
export interface KeelServerOptions {
  /** Scratch directory: the server's working directory (its `certs/` is generated here). Created when missing. */
  workDir: string
  /** Environment variables on top of the defaults, e.g. `{ HEADERS_TIMEOUT_MS: '4000' }`. */
  env?: Record<string, string>
  /** TLS on (HTTPS + HTTP/2, HTTP/1.1 through ALPN) as in production; false sets `TLS=off` (cleartext HTTP/1.1). */
  tls?: boolean
  /** How long it may take to listen. */
  startTimeoutMs?: number
}

export interface Exit {
  /** Exit code, or null when a signal ended it. */
  code: number | null
  signal: NodeJS.Signals | null
  /** From the `stop` call to the exit. */
  ms: number
}

export interface KeelServer {
  /** `https://127.0.0.1:PORT` (or `http://` with TLS off). */
  url: string
  port: number
  pid: number
  /** The certificate to trust in clients (PEM); undefined with TLS off. Clients must send SNI `localhost`. */
  ca?: Buffer
  /** `http://127.0.0.1:PORT/metrics`: the metrics listener (an ephemeral port), not on the API port. */
  metricsUrl: string
  /** Resident memory of the server process in bytes (/proc); NaN once it has exited. */
  rss: () => number
  /** CPU seconds (user + system) the process used (/proc); NaN once it has exited. */
  cpuSeconds: () => number
  /** Everything it printed (pino JSON lines). */
  output: () => string
  alive: () => boolean
  /** Resolves when the process exits, whoever stopped it. */
  exited: Promise<Exit>
  /** Sends `signal` (default SIGTERM) and waits for the exit; SIGKILL after `killAfterMs` (default 15 s). */
  stop: (signal?: NodeJS.Signals, killAfterMs?: number) => Promise<Exit>
}

// Sensible for a soak: the default keeps Redis, upstreams and shedding as `npm start` has them, but the
// per-IP rate limit and connection cap (every client here is 127.0.0.1) would refuse the load instead
// of measuring it.
const SOAK_DEFAULTS: Record<string, string> = {
  NODE_ENV: 'production',
  RATE_LIMIT_MAX: '1000000',
  MAX_CONNECTIONS_PER_IP: '0'
}

const live = new Set<KeelServer>()
const cleanups: Array<() => unknown> = []
process.once('exit', () => { for (const fn of cleanups) fn() })

/** Resident set size of any process in bytes, from /proc/PID/status; NaN when it is gone or /proc is absent. */
export function processRssBytes (pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? Number.NaN : Number(m[1]) * 1024
  } catch {
    return Number.NaN
  }
}

/** Starts `server.ts` and resolves once it logged its address; with `cleanup`, it is killed when that runs. */
export async function startKeel (options: KeelServerOptions, cleanup?: Pick<Cleanup, 'teardown'>): Promise<KeelServer> {
  if (!existsSync(options.workDir)) mkdirSync(options.workDir, { recursive: true })
  const tls = options.tls ?? true
  const pair = tls ? await ensureDevCertificate(join(options.workDir, 'certs')) : undefined
  const files: Record<string, string> = pair === undefined ? {} : { TLS_CERT_FILE: pair.certFile, TLS_KEY_FILE: pair.keyFile }
  const env = { ...SOAK_DEFAULTS, TLS: tls ? 'on' : 'off', ...files, ...options.env }
  const spawned = spawnServer({ teardown: (fn) => { cleanups.push(fn) } }, env, options.workDir)
  try {
    await waitListening(spawned, options.startTimeoutMs)
  } catch (err) {
    spawned.proc.kill('SIGKILL')
    throw err
  }
  const { proc } = spawned
  const pid = proc.pid!
  const began = { at: 0 }
  const exited: Promise<Exit> = spawned.exited.then((code) => ({ code, signal: proc.signalCode, ms: began.at === 0 ? 0 : Date.now() - began.at }))
  const alive = (): boolean => proc.exitCode === null && proc.signalCode === null

  const server: KeelServer = {
    url: spawned.url,
    port: spawned.port,
    pid,
    ca: tls ? readFileSync(join(options.workDir, 'certs', 'dev-cert.pem')) : undefined,
    metricsUrl: spawned.metricsUrl ?? '',
    rss: () => processRssBytes(pid),
    cpuSeconds: () => processCpuSeconds(pid),
    output: spawned.output,
    alive,
    exited,
    stop: async (signal = 'SIGTERM', killAfterMs = 15_000) => {
      if (alive()) {
        began.at = Date.now()
        proc.kill(signal)
        const timer = setTimeout(() => proc.kill('SIGKILL'), killAfterMs)
        await exited
        clearTimeout(timer)
      }
      live.delete(server)
      return await exited
    }
  }
  live.add(server)
  exited.then(() => live.delete(server), () => {})
  cleanup?.teardown(async () => await server.stop('SIGKILL'))
  return server
}

/** Kills (SIGKILL) every server still running: what the runner does after a run overran its time bound. */
export async function killAllKeelServers (): Promise<void> {
  await Promise.all([...live].map(async (s) => await s.stop('SIGKILL')))
}
