// The child side of a benchmarked server process: read the options the harness passed, say on stdout
// which port was bound, and exit cleanly on SIGTERM. When asked, it CPU-profiles itself from the moment
// it listens until SIGTERM (V8's sampling profiler, as `node --cpu-prof`, but without start-up and
// module loading, which would otherwise dominate a profile of a few seconds of load).
// The harness side is bench/lib/server-process.ts.

import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import type { IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'

/** The line a server prints once it listens; the harness reads the port from it. */
export const LISTENING_LINE = 'bench:listening'

export interface ServerOptions {
  /** PEM files: serve HTTPS + HTTP/2 (HTTP/1.1 through ALPN), TLS 1.3 only. Absent: cleartext HTTP/1.1. */
  tls?: { certFile: string, keyFile: string }
  /** Write a CPU profile (.cpuprofile JSON) of the serving phase here. */
  profileFile?: string
  /** The floor server (node-http-floor.ts) repeats this response's headers: another server's, as probed. */
  mirror?: IncomingHttpHeaders
  /** Keel's DATABASE_URL (PostgreSQL); absent: its SQLite store, in memory. */
  databaseUrl?: string
}

// 500 µs: twice --cpu-prof's default resolution, still a small overhead at tens of thousands of requests/s.
const SAMPLING_INTERVAL_US = 500
let profiler: Session | undefined

/** The options the harness passed as JSON in argv[2]. */
export function serverOptions (): ServerOptions {
  const raw = process.argv[2]
  return raw === undefined ? {} : JSON.parse(raw) as ServerOptions
}

interface Listener { address: () => AddressInfo | string | null }

/** Prints the listening line for a server bound by `listen(0, '127.0.0.1')`, after starting the profiler if asked. */
export async function announceListening (server: Listener): Promise<void> {
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('server is not listening on a TCP port')
  if (serverOptions().profileFile !== undefined) {
    profiler = new Session()
    profiler.connect()
    await profiler.post('Profiler.enable')
    await profiler.post('Profiler.setSamplingInterval', { interval: SAMPLING_INTERVAL_US })
    await profiler.post('Profiler.start')
  }
  process.stdout.write(`${LISTENING_LINE} ${address.port}\n`)
}

async function writeProfile (): Promise<void> {
  const file = serverOptions().profileFile
  if (profiler === undefined || file === undefined) return
  const { profile } = await profiler.post('Profiler.stop')
  writeFileSync(file, JSON.stringify(profile))
}

/** On SIGTERM: write the profile (when profiling), close, then exit 0. */
export function closeOnSignal (close: () => Promise<unknown>): void {
  process.once('SIGTERM', () => {
    writeProfile()
      .then(() => {
        // Keep-alive connections from the load generator must not hold the exit up.
        setTimeout(() => process.exit(0), 2000).unref()
        return close()
      })
      .finally(() => process.exit(0))
  })
}
