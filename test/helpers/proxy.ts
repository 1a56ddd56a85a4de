// The reverse proxy of deploy/ for tests: runs the haproxy binary on loopback with
// deploy/haproxy/haproxy.cfg unchanged — its listen address, certificate and backends come from the
// environment variables the file reads — and kills it when the test ends. The certificate is a
// generated development pair. Tests declare `{ skip: proxySkipReason() }`.

import { spawnSync } from 'node:child_process'
import { connect } from 'node:net'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ensureDevCertificate } from '../../core/dev-cert.ts'
import { ROOT, spawnProcess, tempDir, type Spawned } from './app.ts'
import { freePort } from './ports.ts'
import { until } from './until.ts'

interface Teardown { teardown: (fn: () => unknown) => void }

/** The configuration file deploy/compose.yaml runs. */
export const PROXY_CONFIG_FILE = join(ROOT, 'deploy/haproxy/haproxy.cfg')

const READY_TIMEOUT_MS = 10_000

// Debian installs it in /usr/sbin, which is not on an unprivileged user's PATH.
const BINARIES = ['haproxy', '/usr/sbin/haproxy']
let binary: string | null | undefined
function haproxyBinary (): string | null {
  binary ??= BINARIES.find((file) => spawnSync(file, ['-v'], { stdio: 'ignore' }).status === 0) ?? null
  return binary
}

/** Why the proxy tests cannot run here, or false when they can. */
export function proxySkipReason (): string | false {
  return haproxyBinary() === null ? 'needs haproxy on PATH or in /usr/sbin (install the haproxy package)' : false
}

export interface TestProxy extends Spawned {
  /** The proxy's certificate, for clients to trust. */
  ca: Buffer
  /** The origin a browser would see (`https://localhost:<port>`). */
  publicOrigin: string
}

async function accepts (port: number): Promise<boolean> {
  return await new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => { resolve(false) })
  })
}

/** Resolves once `port` accepts connections; rejects when the process exits first or after the deadline. */
async function waitAccepting (port: number, proxy: Spawned): Promise<void> {
  await until(async () => {
    if (proxy.proc.exitCode !== null || proxy.proc.signalCode !== null) throw new Error(`haproxy exited: ${proxy.output()}`)
    return await accepts(port)
  }, READY_TIMEOUT_MS, `haproxy to accept connections on ${port}`)
}

/**
 * Starts haproxy with the deploy configuration in front of `backends` (the file's KEEL_A, KEEL_B:
 * `host:port` each) on `port` of 127.0.0.1 (default a free one), and waits until it accepts connections.
 * Pass the port when the backends must know the public origin before the proxy runs.
 */
export async function startProxy (t: Teardown, backends: Record<string, string>, port?: number): Promise<TestProxy> {
  const dir = tempDir('keel-proxy-')
  const { certFile, keyFile } = await ensureDevCertificate(dir)
  const ca = readFileSync(certFile)
  // HAProxy reads the certificate and its key from one file.
  const pemFile = join(dir, 'proxy.pem')
  writeFileSync(pemFile, Buffer.concat([ca, readFileSync(keyFile)]), { mode: 0o600 })
  port ??= await freePort()

  const file = haproxyBinary()
  if (file === null) throw new Error('startProxy: no haproxy; guard the test with proxySkipReason()')
  const spawned = spawnProcess(t, file, ['-db', '-f', PROXY_CONFIG_FILE], {
    cwd: dir,
    env: { PATH: process.env.PATH, PROXY_BIND: `127.0.0.1:${port}`, PROXY_CERT: pemFile, ...backends }
  })
  const proxy: TestProxy = { ...spawned, port, url: `https://127.0.0.1:${port}`, ca, publicOrigin: `https://localhost:${port}` }
  await waitAccepting(port, proxy)
  return proxy
}
