// Outbound client throughput: Keel's resilient client (breaker + retries + budget + deadline +
// bulkhead + schema check) against a raw undici Pool and Node's fetch, all calling the same local
// upstream (a separate process on 127.0.0.1) in one run, in bounded, interleaved windows. Then how fast
// an open breaker refuses: a client whose upstream is down trips its breaker, and each refusal is timed.
// Run: `npx node bench/outbound.ts [--seconds 2] [--rounds 3] [--concurrency 16]` (npx puts Node 24 first).

import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer, type AddressInfo } from 'node:net'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { Pool } from 'undici'
import { Type } from '@sinclair/typebox'
import { createResilientClient } from '../outbound/resilient-client.ts'
import { interleave, median } from './lib/stats.ts'

const Quote = Type.Object({ symbol: Type.String(), price: Type.Number(), currency: Type.String(), asOf: Type.String() })
const PATH = '/quotes/ACME'

// The upstream: a bare node:http server answering a small JSON quote, in its own process so it does
// not share the client's event loop. Keep-alive 5 s (Node's default) outlives the clients' 4 s.
const UPSTREAM_SOURCE = `
const http = require('node:http')
const body = JSON.stringify({ symbol: 'ACME', price: 101.25, currency: 'USD', asOf: '2026-01-02T03:04:05Z' })
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
})
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'))
`

/** One way of calling the upstream: `call` performs one request and reads its JSON. */
export interface OutboundContender {
  id: string
  label: string
  start: (origin: string, concurrency: number) => { call: () => Promise<unknown>, close: () => Promise<void> }
}

export const contenders: OutboundContender[] = [
  {
    id: 'resilient',
    label: 'Keel resilient client (breaker, retries, budget, deadline, bulkhead, schema check)',
    start (origin, concurrency) {
      const client = createResilientClient({ name: 'bench', baseUrl: origin, maxConcurrency: concurrency })
      return { call: () => client.getJson(PATH, Quote), close: () => client.close() }
    }
  },
  {
    id: 'pool',
    label: 'undici Pool, raw (JSON parsed, nothing else)',
    start (origin, concurrency) {
      const pool = new Pool(origin, { connections: concurrency })
      return {
        call: async () => {
          const { body } = await pool.request({ path: PATH, method: 'GET' })
          return body.json()
        },
        close: () => pool.close()
      }
    }
  },
  {
    id: 'fetch',
    label: 'Node fetch (global dispatcher)',
    start (origin) {
      return {
        call: async () => (await fetch(origin + PATH)).json(),
        close: async () => {}
      }
    }
  }
]

/** `concurrency` loops calling `call` until `ms` have passed; completed calls and errors counted. */
export async function closedLoop (call: () => Promise<unknown>, concurrency: number, ms: number): Promise<{ rate: number, errors: number }> {
  const end = performance.now() + ms
  let done = 0
  let errors = 0
  const started = performance.now()
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      try {
        await call()
        done++
      } catch {
        errors++
      }
    }
  }))
  return { rate: done / ((performance.now() - started) / 1000), errors }
}

// Refusals timed one by one once the breaker is open: enough for a stable p99, a few ms in all.
const REFUSALS = 20_000

/**
 * Trips a client's breaker against an origin nobody listens on (every attempt refused at once), then
 * times `REFUSALS` calls one at a time: the latency of `CircuitOpenError`, percentiles in µs.
 */
export async function breakerOpenLatency (): Promise<{ p50: number, p99: number, max: number, refusals: number }> {
  const dead = `http://127.0.0.1:${await closedPort()}`
  const client = createResilientClient({
    name: 'bench-dead',
    baseUrl: dead,
    maxRetries: 0,
    breaker: { errorThresholdPercentage: 50, volumeThreshold: 5, resetTimeoutMs: 60_000, rollingWindowMs: 10_000 }
  })
  try {
    // Bounded: the breaker opens after `volumeThreshold` failures; 100 calls are far more than enough.
    for (let i = 0; i < 100 && client.circuitState().state !== 'open'; i++) await client.getJson(PATH, Quote).catch(() => {})
    if (client.circuitState().state !== 'open') throw new Error('the breaker did not open against a dead upstream')
    const micros: number[] = []
    for (let i = 0; i < REFUSALS; i++) {
      const started = performance.now()
      try {
        await client.getJson(PATH, Quote)
      } catch {}
      micros.push((performance.now() - started) * 1000)
    }
    micros.sort((a, b) => a - b)
    const at = (q: number) => micros[Math.min(micros.length - 1, Math.floor(q * micros.length))]!
    return { p50: at(0.5), p99: at(0.99), max: micros[micros.length - 1]!, refusals: micros.length }
  } finally {
    await client.close()
  }
}

/** A loopback port with nothing listening (bound, then released). */
async function closedPort (): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  server.close()
  await once(server, 'close')
  return port
}

async function startUpstream (): Promise<{ origin: string, child: ChildProcess }> {
  const child = spawn(process.execPath, ['-e', UPSTREAM_SOURCE], { stdio: ['ignore', 'pipe', 'inherit'] })
  const [chunk] = await Promise.race([
    once(child.stdout!, 'data') as Promise<[Buffer]>,
    new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error('upstream did not start within 10 s')), 10_000).unref())
  ])
  return { origin: `http://127.0.0.1:${String(chunk).trim()}`, child }
}

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '2' },
      rounds: { type: 'string', default: '3' },
      concurrency: { type: 'string', default: '16' }
    }
  })
  const seconds = Number(values.seconds)
  const rounds = Number(values.rounds)
  const concurrency = Number(values.concurrency)
  if (!(seconds > 0 && seconds <= 60) || !(Number.isInteger(rounds) && rounds >= 1 && rounds <= 20) || !(Number.isInteger(concurrency) && concurrency >= 1 && concurrency <= 1024)) {
    throw new Error('expected --seconds 0–60, --rounds 1–20, --concurrency 1–1024')
  }

  const { origin, child } = await startUpstream()
  const running = new Map(contenders.map((c) => [c.id, c.start(origin, concurrency)]))
  const rates = new Map<string, number[]>(contenders.map((c) => [c.id, []]))
  const errors = new Map<string, number>(contenders.map((c) => [c.id, 0]))
  try {
    process.stdout.write(`outbound: ${contenders.length} clients × ${rounds} rounds × ${seconds} s, ${concurrency} concurrent calls, upstream ${origin}\n`)
    // Warm-up: JIT, connection pools, schema compilation.
    for (const c of contenders) await closedLoop(running.get(c.id)!.call, concurrency, Math.min(1000, seconds * 500))
    for (const slot of interleave(contenders.map((c) => c.id), rounds)) {
      const result = await closedLoop(running.get(slot.id)!.call, concurrency, seconds * 1000)
      rates.get(slot.id)!.push(result.rate)
      errors.set(slot.id, errors.get(slot.id)! + result.errors)
    }
  } finally {
    for (const r of running.values()) await r.close()
    child.kill()
  }

  const pool = median(rates.get('pool')!)
  const fetchRate = median(rates.get('fetch')!)
  const rows = contenders.map((c) => {
    const rate = median(rates.get(c.id)!)
    return [c.label, rate.toFixed(0), (rate / pool).toFixed(2), (rate / fetchRate).toFixed(2), String(errors.get(c.id))]
  })
  const header = ['client', 'req/s (median)', '× Pool', '× fetch', 'errors']
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ')
  process.stdout.write(`\n${line(header)}\n${line(widths.map((w) => '-'.repeat(w)))}\n${rows.map(line).join('\n')}\n`)
  const poolRatio = median(rates.get('resilient')!) / pool
  process.stdout.write(`\ngoal: resilient client ≥ 0.9× raw undici Pool: ${poolRatio.toFixed(2)}× ${poolRatio >= 0.9 ? '✓' : '✗'}\n`)

  const open = await breakerOpenLatency()
  process.stdout.write(`\nbreaker open: ${open.refusals} refusals timed one by one (CircuitOpenError, no socket touched): ` +
    `p50 ${open.p50.toFixed(1)} µs, p99 ${open.p99.toFixed(1)} µs, max ${open.max.toFixed(0)} µs\n`)
  process.stdout.write(`goal: breaker-open rejection p99 < 1 ms: ${(open.p99 / 1000).toFixed(3)} ms ${open.p99 < 1000 ? '✓' : '✗'}\n`)
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench/outbound: ${(err as Error).message}\n`)
    process.exit(1)
  })
}
