// What a soak run's harness asks a running Keel besides its load: an undici pool that trusts the
// server's certificate, the server's own counters read from GET /metrics on its metrics listener
// (Prometheus text, plain HTTP, not on the API port), so a run
// can set what clients saw beside what the server says it did, and whether it crashed or let an error escape.

import { Pool, request } from 'undici'
import type { KeelServer } from './keel-server.ts'

/** An HTTP/1.1 pool to the server (TLS with its dev certificate and SNI `localhost` when TLS is on). */
export function keelPool (server: Pick<KeelServer, 'url' | 'ca'>, connections = 4): Pool {
  return new Pool(server.url, { connections, connect: server.ca === undefined ? {} : { ca: server.ca, servername: 'localhost' } })
}

export interface Sample { name: string, labels: Record<string, string>, value: number }

/** Parses Prometheus text exposition (comments skipped; label values without escaped quotes). */
export function parseMetrics (text: string): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)/.exec(line)
    if (m === null) continue
    const labels: Record<string, string> = {}
    for (const [, key, value] of (m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) labels[key!] = value!
    samples.push({ name: m[1]!, labels, value: Number(m[3]) })
  }
  return samples
}

export interface Metrics {
  /** The sum of every sample of `name` whose labels include `labels`; 0 when there is none. */
  sum: (name: string, labels?: Record<string, string>) => number
}

/** Reads GET /metrics once, from the server's metrics listener. */
export async function readMetrics (server: Pick<KeelServer, 'metricsUrl'>): Promise<Metrics> {
  const res = await request(server.metricsUrl, { headersTimeout: 5000, bodyTimeout: 5000 })
  const text = await res.body.text()
  if (res.statusCode !== 200) throw new Error(`GET ${server.metricsUrl} answered ${res.statusCode}`)
  const samples = parseMetrics(text)
  return {
    sum: (name, labels = {}) => samples
      .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
      .reduce((total, s) => total + s.value, 0)
  }
}

// What close-with-grace and Node print when a promise rejection or exception escapes (server.ts then
// logs at fatal level, 60, and exits).
const CRASH_SIGNS = /unhandled|uncaught|"level":60/i

/** Why `server` failed a run by its own state: it exited, or it logged an escaped error. Empty when neither. */
export function crashFailures (server: Pick<KeelServer, 'alive' | 'output'>, name = 'the server'): string[] {
  const failures: string[] = []
  if (!server.alive()) failures.push(`${name} exited: ${server.output().slice(-500)}`)
  const sign = CRASH_SIGNS.exec(server.output())
  if (sign !== null) failures.push(`${name} logged an escaped error: …${server.output().slice(Math.max(0, sign.index - 200), sign.index + 300)}…`)
  return failures
}
