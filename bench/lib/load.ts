// Load generators, each turning one bounded window of load into a `Sample`: autocannon (HTTP/1.1, run
// in this process, which the harness pins to the load CPU) and h2load (HTTP/2 over TLS, a child
// process pinned the same way). Also `probe`: one request whose response headers tell which policies
// were active on the measured route.

import autocannon from 'autocannon'
import { execFileSync, spawn } from 'node:child_process'
import { connect as h2connect } from 'node:http2'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { once } from 'node:events'
import type { Sample } from './scenario.ts'

export interface HttpLoad {
  path: string
  headers?: Record<string, string>
  /** Concurrent connections (HTTP/1.1) or clients (h2load). */
  connections: number
  /** HTTP/2 streams in flight per connection (h2load only). */
  streams?: number
}

// A window that overruns its length by this much is a hung load generator, not a slow server.
const OVERRUN_GRACE_MS = 15_000

function statusProblems (counts: Record<string, number>): string[] {
  return Object.entries(counts)
    .filter(([status, count]) => count > 0 && !status.startsWith('2'))
    .map(([status, count]) => `${count} answers with status ${status}`)
}

/** One autocannon window against `origin` (http://127.0.0.1:PORT). */
export async function autocannonWindow (origin: string, load: HttpLoad, seconds: number): Promise<Sample> {
  const result = await autocannon({
    url: origin + load.path,
    connections: load.connections,
    duration: seconds,
    headers: load.headers ?? {},
    timeout: Math.ceil(seconds + OVERRUN_GRACE_MS / 1000)
  })
  const counts: Record<string, number> = {}
  for (const [status, stat] of Object.entries(result.statusCodeStats ?? {})) counts[status] = stat.count ?? 0
  const problems = statusProblems(counts)
  if (result.errors > 0) problems.push(`${result.errors} connection errors (${result.timeouts} timeouts)`)
  return {
    operations: result['2xx'],
    seconds: result.duration,
    metrics: { p50Ms: result.latency.p50, p99Ms: result.latency.p99 },
    problems
  }
}

let h2loadPath: string | null | undefined
/** h2load's path, or null when it is not installed (Debian: nghttp2-client). */
export function findH2load (): string | null {
  if (h2loadPath === undefined) {
    try {
      h2loadPath = execFileSync('sh', ['-c', 'command -v h2load'], { encoding: 'utf8' }).trim() || null
    } catch {
      h2loadPath = null
    }
  }
  return h2loadPath
}

/** The figures h2load prints at the end of a run. */
export function parseH2load (output: string): { seconds: number, succeeded: number, failed: number, errored: number, statuses: Record<string, number>, meanMs: number } {
  const finished = /finished in ([\d.]+)(m?s)/.exec(output)
  const requests = /requests: .*?(\d+) succeeded, (\d+) failed, (\d+) errored/.exec(output)
  const statuses = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(output)
  const time = /time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)/.exec(output)
  if (finished === null || requests === null || statuses === null) throw new Error(`could not read h2load's output:\n${output.trim()}`)
  const toMs = (value: string, unit: string): number => Number(value) * (unit === 'us' ? 0.001 : unit === 's' ? 1000 : 1)
  return {
    seconds: toMs(finished[1]!, finished[2]!) / 1000,
    succeeded: Number(requests[1]),
    failed: Number(requests[2]),
    errored: Number(requests[3]),
    statuses: { '2xx': Number(statuses[1]), '3xx': Number(statuses[2]), '4xx': Number(statuses[3]), '5xx': Number(statuses[4]) },
    meanMs: time === null ? Number.NaN : toMs(time[1]!, time[2]!)
  }
}

/** One h2load window (HTTP/2 over TLS) against `origin` (https://127.0.0.1:PORT), on `cpu` when given. */
export async function h2loadWindow (origin: string, load: HttpLoad, seconds: number, cpu?: number): Promise<Sample> {
  const h2load = findH2load()
  if (h2load === null) throw new Error('h2load is not installed')
  const args = ['-c', String(load.connections), '-m', String(load.streams ?? 1), '-t', '1', '-D', String(seconds)]
  for (const [name, value] of Object.entries(load.headers ?? {})) args.push('-H', `${name}: ${value}`)
  args.push(origin + load.path)
  const [command, argv] = cpu === undefined ? [h2load, args] : ['taskset', ['-c', String(cpu), h2load, ...args]]
  const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (c: Buffer) => { output += c.toString() })
  child.stderr.on('data', (c: Buffer) => { output += c.toString() })
  const timer = setTimeout(() => child.kill('SIGKILL'), seconds * 1000 + OVERRUN_GRACE_MS)
  const [code] = await once(child, 'exit') as [number | null]
  clearTimeout(timer)
  if (code !== 0) throw new Error(`h2load exited with ${code}:\n${output.trim()}`)
  const figures = parseH2load(output)
  const problems = statusProblems({ '3xx': figures.statuses['3xx']!, '4xx': figures.statuses['4xx']!, '5xx': figures.statuses['5xx']! })
  if (figures.failed + figures.errored > 0) problems.push(`${figures.failed} failed and ${figures.errored} errored requests`)
  return { operations: figures.statuses['2xx']!, seconds: figures.seconds, metrics: { meanMs: figures.meanMs }, problems }
}

export interface ProbeResponse { status: number, headers: IncomingHttpHeaders, bytes: number, body: Buffer }

async function readBody (stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk)
  return Buffer.concat(chunks)
}

/** One request (HTTP/1.1 cleartext, or HTTP/2 over TLS for https origins); the body is read, not decoded. */
export async function probe (origin: string, path: string, headers: Record<string, string> = {}): Promise<ProbeResponse> {
  if (origin.startsWith('https:')) {
    // The benchmark's self-signed certificate: only the response headers matter here.
    const session = h2connect(origin, { rejectUnauthorized: false })
    try {
      const stream = session.request({ ':path': path, ...headers })
      const [responseHeaders] = await once(stream, 'response') as [IncomingHttpHeaders & { ':status'?: number }]
      const body = await readBody(stream)
      return { status: Number(responseHeaders[':status']), headers: responseHeaders, bytes: body.length, body }
    } finally {
      session.close()
    }
  }
  const req = httpRequest(origin + path, { headers, agent: false })
  req.end()
  const [res] = await once(req, 'response') as [import('node:http').IncomingMessage]
  const body = await readBody(res)
  return { status: res.statusCode ?? 0, headers: res.headers, bytes: body.length, body }
}
