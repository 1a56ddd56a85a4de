// Latency arithmetic for the reliability runs: percentiles of a set of samples and a bounded sequential
// probe ("a normal client") that times one request after another. Pure except the probe's clock.

import { performance } from 'node:perf_hooks'

/** The p-th percentile (0–100, nearest rank) of `values`; NaN for none. */
export function percentile (values: readonly number[], p: number): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  if (sorted.length === 0) return Number.NaN
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!
}

export interface LatencySummary { count: number, p50: number, p99: number, max: number }

export function summarizeLatency (ms: readonly number[]): LatencySummary {
  return { count: ms.length, p50: percentile(ms, 50), p99: percentile(ms, 99), max: percentile(ms, 100) }
}

/** `1.23 ms`; an em dash when not measured. */
export function formatMs (ms: number): string {
  return Number.isFinite(ms) ? `${ms < 10 ? ms.toFixed(2) : ms.toFixed(1)} ms` : '—'
}

export function formatLatency (s: LatencySummary): string {
  return `p50 ${formatMs(s.p50)}, p99 ${formatMs(s.p99)}, max ${formatMs(s.max)} (${s.count} requests)`
}

export interface ProbeResult {
  /** Latency of every request that succeeded, in ms. */
  latencies: number[]
  /** One line per failed request (error or unexpected status). */
  failures: string[]
}

export interface ProbeOptions {
  /** At most this many requests. */
  count: number
  /** Stop earlier after this long. */
  maxMs: number
  /** Stop earlier when this resolves (the abuse it runs beside is over). */
  until?: Promise<unknown>
}

/**
 * A normal client: `send` one request after another (never two at once) and time each. `send` resolves
 * with the HTTP status once the whole response is read and rejects on a transport error; anything but
 * 2xx is a failure.
 */
export async function probeSequentially (send: () => Promise<number>, options: ProbeOptions): Promise<ProbeResult> {
  const result: ProbeResult = { latencies: [], failures: [] }
  const until = { reached: false }
  options.until?.then(() => { until.reached = true }, () => { until.reached = true })
  const deadline = performance.now() + options.maxMs
  for (let i = 0; i < options.count && !until.reached && performance.now() < deadline; i++) {
    const started = performance.now()
    try {
      const status = await send()
      if (status >= 200 && status < 300) result.latencies.push(performance.now() - started)
      else result.failures.push(`status ${status}`)
    } catch (err) {
      result.failures.push((err as Error).message)
    }
  }
  return result
}

/** Counts identical lines: `["status 503", "status 503", "reset"]` → `2× status 503; reset`. */
export function tally (lines: readonly string[], most = 5): string {
  const counts = new Map<string, number>()
  for (const line of lines) counts.set(line, (counts.get(line) ?? 0) + 1)
  const parts = [...counts].sort((a, b) => b[1] - a[1]).map(([line, n]) => (n > 1 ? `${n}× ${line}` : line))
  return parts.length > most ? `${parts.slice(0, most).join('; ')}; …` : parts.join('; ')
}
