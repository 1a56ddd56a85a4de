// Reliability run 5: GET /api/v1/quotes in front of a chaotic upstream (errors, resets, latency, a
// storm of failures). Passes when every request gets a documented answer (200, or problem+json 502 /
// 503 + Retry-After / 504) within its deadline, and the upstream saw no more requests than the retry
// budget allows on top of the client's own. The budget is outbound/retry-budget.ts; this run only observes.
// The route is the example quotes resource's: without it (resources/quotes/ removed) the run is skipped.

import { performance } from 'node:perf_hooks'
import type { Pool } from 'undici'
import { fault, startFaultUpstream, type Fault, type FaultUpstream } from '../../../test/helpers/fault-upstream.ts'
import type { SoakContext, SoakOutcome, SoakRun } from '../run.ts'
import { withCleanup } from '../lib/cleanup.ts'
import { formatLatency, formatMs, summarizeLatency } from '../lib/latency.ts'
import { crashFailures, keelPool, readMetrics } from '../lib/keel-client.ts'
import { startKeel } from '../lib/keel-server.ts'
import { openLoop } from '../lib/open-loop.ts'

const QUOTES_PATH = '/api/v1/quotes'
const RETRY_BUDGET_PERCENT = 20
// A small reserve (the default is 5/s) so that the ratio, not the reserve, decides the bound even in
// the short quick run: with 5/s the reserve alone would cover every retry a 6-second run wants.
const RETRY_MIN_PER_SECOND = 1
const RETRY_WINDOW_S = 10
const TOTAL_DEADLINE_MS = 3000
// Some clients say they wait less (`x-request-timeout-ms`): their calls must end by then too.
const SHORT_CLIENT_DEADLINE_MS = 800
// Answered after its deadline by at most this: the response's own path through the server, and timers
// firing late on a 2-core machine that also runs the load and the upstream.
const DEADLINE_SLACK_MS = 500
// A request still unanswered this long after its deadline counts as never answered.
const GIVE_UP_AFTER_MS = 10_000

interface Shape { rate: number, seconds: number }
// Full: ~1,000 requests over 24 s. Quick: 150 over 6 s.
const FULL: Shape = { rate: 40, seconds: 24 }
const QUICK: Shape = { rate: 25, seconds: 6 }
// The upstream's weather over the run: calm chaos, a storm (mostly down), calm chaos again.
const STORM_FROM = 0.4
const STORM_UNTIL = 0.65
// Faults scripted ahead of the requests seen: a change of weather reaches the upstream within these.
const SCRIPTED_AHEAD = 4

/** Why the run cannot run on this app: no quotes route (the example was removed); undefined when it is there. */
async function quotesRouteAbsent (pool: Pool): Promise<string | undefined> {
  // A symbol the route's schema refuses (400) before any upstream call, so the upstream's count stays the
  // client's own: 404 means there is no such route.
  const res = await pool.request({ path: `${QUOTES_PATH}/-`, method: 'GET', headersTimeout: 10_000, bodyTimeout: 10_000 })
  await res.body.dump()
  if (res.statusCode !== 404) return undefined
  return `GET ${QUOTES_PATH}/:symbol answers 404: the example quotes resource (resources/quotes/) is not in this app`
}

/** A reproducible pseudo-random sequence in [0, 1) (mulberry32): a failing run can be replayed from its seed. */
function seededRandom (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let x = Math.imul(state ^ (state >>> 15), 1 | state)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32
  }
}

/** One upstream answer drawn from a mix: `[weight, fault]` pairs. */
function drawFrom (mix: Array<[number, () => Fault]>, random: () => number): Fault {
  const total = mix.reduce((sum, [w]) => sum + w, 0)
  let x = random() * total
  for (const [w, make] of mix) {
    if ((x -= w) < 0) return make()
  }
  return mix[mix.length - 1]![1]()
}

/**
 * Calm chaos: a quarter of the answers count against the upstream's health (5xx, resets, timeouts,
 * broken bodies) — under the breaker's 50 %, so it mostly stays closed — and a third are retryable
 * (429 included, which says "busy", not "sick"), more than the budget's 20 %: the budget has to act.
 */
function calmMix (random: () => number): Array<[number, () => Fault]> {
  return [
    [50, () => fault.ok()],
    [10, () => fault.slowHeaders(20 + Math.floor(random() * 300))],
    [3, () => fault.slowHeaders(2500)], // past UPSTREAM_HEADERS_TIMEOUT_MS (2 s): a timed-out attempt
    [3, () => fault.slowBody(150)],
    [8, () => fault.unavailable()],
    [4, () => fault.status(500)],
    [4, () => fault.status(502)],
    [4, () => fault.reset()],
    [2, () => fault.invalidJson()],
    [12, () => fault.tooManyRequests()]
  ]
}

/** The storm: the upstream is mostly down; the breaker and the budget must keep it from a retry flood. */
function stormMix (): Array<[number, () => Fault]> {
  return [[10, () => fault.ok()], [40, () => fault.unavailable()], [25, () => fault.status(500)], [25, () => fault.reset()]]
}

/**
 * Keeps a few faults scripted ahead of the requests the upstream has seen, drawn from the mix of the
 * moment (the storm's while `stormy(now)`), so the weather follows the clock and not the request count
 * (an open breaker lets few requests through, which would otherwise stretch the storm).
 */
function stormyWeather (upstream: FaultUpstream, random: () => number, stormy: (now: number) => boolean): { stop: () => Promise<void> } {
  const calm = calmMix(random)
  const storm = stormMix()
  let scripted = 0
  const stopped = new AbortController()
  const feeding = (async () => {
    while (!stopped.signal.aborted) {
      while (scripted - upstream.count < SCRIPTED_AHEAD) {
        upstream.script(drawFrom(stormy(performance.now()) ? storm : calm, random))
        scripted++
      }
      // Wakes on the next request, or every 200 ms so the storm starts on time even when nothing arrives.
      await upstream.waitForRequests(scripted - SCRIPTED_AHEAD + 1, 200).catch(() => {})
    }
  })()
  return { stop: async () => { stopped.abort(); await feeding } }
}

interface Answer { status: number, ms: number, deadlineMs: number, problem?: string }

/** Whether a response is one the route documents; returns the reason when it is not. */
function malformed (status: number, headers: Record<string, string | string[] | undefined>, body: string): string | undefined {
  if (status === 200) {
    try {
      const quote = JSON.parse(body) as { symbol?: unknown, price?: unknown }
      return typeof quote.symbol === 'string' && typeof quote.price === 'number' ? undefined : `200 with body ${body.slice(0, 80)}`
    } catch {
      return `200 with a body that is not JSON: ${body.slice(0, 80)}`
    }
  }
  if (![502, 503, 504].includes(status)) return `undocumented status ${status}: ${body.slice(0, 120)}`
  if (!String(headers['content-type']).startsWith('application/problem+json')) return `${status} without problem+json`
  if (status === 503 && headers['retry-after'] === undefined) return '503 without Retry-After'
  try {
    const problem = JSON.parse(body) as { status?: unknown }
    return problem.status === status ? undefined : `${status} whose problem says status ${String(problem.status)}`
  } catch {
    return `${status} with a body that is not JSON`
  }
}

async function upstreamChaos (ctx: SoakContext): Promise<SoakOutcome> {
  const shape = ctx.quick ? QUICK : FULL
  return await withCleanup(async (cleanup) => {
    const seed = Number(process.env.SOAK_SEED ?? Math.floor(Math.random() * 2 ** 31))
    const random = seededRandom(seed)
    const upstream = await startFaultUpstream(cleanup, fault.ok())
    const server = await startKeel({
      workDir: ctx.workDir,
      env: {
        UPSTREAM_QUOTES_URL: upstream.url,
        UPSTREAM_TIMEOUT_MS: String(TOTAL_DEADLINE_MS),
        UPSTREAM_RETRY_BUDGET_PERCENT: String(RETRY_BUDGET_PERCENT),
        UPSTREAM_RETRY_MIN_PER_SECOND: String(RETRY_MIN_PER_SECOND),
        // A short open period, so the run sees the breaker open, probe and close several times.
        UPSTREAM_BREAKER_RESET_MS: '2000'
      }
    }, cleanup)
    ctx.log(`keel on ${server.url}, chaotic upstream on ${upstream.url} (seed ${seed}); ${shape.rate} req/s for ${shape.seconds} s`)

    // Enough connections that no request waits in the client for a free one (≤ rate × longest answer).
    const pool = keelPool(server, Math.ceil(shape.rate * (TOTAL_DEADLINE_MS + DEADLINE_SLACK_MS) / 1000) + 8)
    cleanup.teardown(() => pool.destroy())
    const absent = await quotesRouteAbsent(pool)
    if (absent !== undefined) return { pass: true, skipped: absent, figures: [], failures: [] }

    const answers: Answer[] = []
    let unanswered = 0
    async function one (i: number): Promise<void> {
      // Every fourth client waits less and says so.
      const deadlineMs = i % 4 === 3 ? SHORT_CLIENT_DEADLINE_MS : TOTAL_DEADLINE_MS
      const headers: Record<string, string> = i % 4 === 3 ? { 'x-request-timeout-ms': String(SHORT_CLIENT_DEADLINE_MS) } : {}
      const began = performance.now()
      try {
        const res = await pool.request({
          path: `${QUOTES_PATH}/SYM${i % 50}`,
          method: 'GET',
          headers,
          headersTimeout: deadlineMs + GIVE_UP_AFTER_MS,
          bodyTimeout: deadlineMs + GIVE_UP_AFTER_MS
        })
        const body = await res.body.text()
        const ms = performance.now() - began
        answers.push({ status: res.statusCode, ms, deadlineMs, problem: malformed(res.statusCode, res.headers, body) })
      } catch (err) {
        unanswered++
        ctx.log(`request ${i} got no answer: ${(err as Error).message}`)
      }
    }

    const total = shape.rate * shape.seconds
    const started = performance.now()
    const stormAt = started + STORM_FROM * shape.seconds * 1000
    const calmAt = started + STORM_UNTIL * shape.seconds * 1000
    const weather = stormyWeather(upstream, random, (now) => now >= stormAt && now < calmAt)
    await openLoop(shape.rate, total, one).done
    const seconds = (performance.now() - started) / 1000
    await weather.stop()
    const metrics = await readMetrics(server)

    // The budget's bound: each sliding window (10 s, in 1 s steps: never narrower than 9 s) allows
    // ratio × its calls + the reserve. Calls are at most the client's requests (an open breaker or a full
    // bulkhead refuses before counting one); one reserve per 9-second span of the run, plus one for the
    // window that straddles the end.
    const ratio = RETRY_BUDGET_PERCENT / 100
    const reserve = RETRY_MIN_PER_SECOND * RETRY_WINDOW_S
    const allowed = Math.floor(total * (1 + ratio) + reserve * (Math.ceil(seconds / (RETRY_WINDOW_S - 1)) + 1))
    const byStatus = new Map<number, number>()
    for (const a of answers) byStatus.set(a.status, (byStatus.get(a.status) ?? 0) + 1)
    const late = answers.filter((a) => a.ms > a.deadlineMs + DEADLINE_SLACK_MS)
    const bad = answers.filter((a) => a.problem !== undefined)
    const worstOvershoot = Math.max(...answers.map((a) => a.ms - a.deadlineMs))

    const failures: string[] = []
    if (unanswered > 0) failures.push(`${unanswered} of ${total} requests got no answer within deadline + ${GIVE_UP_AFTER_MS / 1000} s`)
    if (bad.length > 0) failures.push(`${bad.length} answers were not documented responses, e.g. ${bad.slice(0, 3).map((a) => a.problem).join('; ')}`)
    if (late.length > 0) failures.push(`${late.length} answers came later than their deadline + ${DEADLINE_SLACK_MS} ms (worst ${formatMs(worstOvershoot)} over)`)
    if (upstream.count > allowed) failures.push(`the upstream saw ${upstream.count} requests, above the budget's bound of ${allowed} for ${total} client requests`)
    failures.push(...crashFailures(server))

    const latencies = answers.map((a) => a.ms)
    return {
      pass: failures.length === 0,
      figures: [
        ['chaos seed (replay: SOAK_SEED=…)', String(seed)],
        ['client requests', `${total} in ${seconds.toFixed(1)} s (${shape.rate}/s, open loop; ¼ with a ${SHORT_CLIENT_DEADLINE_MS} ms deadline, the rest ${TOTAL_DEADLINE_MS} ms)`],
        ['answers by status', [...byStatus].sort(([a], [b]) => a - b).map(([s, n]) => `${s}: ${n}`).join(', ')],
        ['latency', formatLatency(summarizeLatency(latencies))],
        ['worst answer vs its deadline', `${worstOvershoot > 0 ? '+' : ''}${formatMs(worstOvershoot)} (slack ${DEADLINE_SLACK_MS} ms)`],
        ['upstream requests', `${upstream.count} = ${(upstream.count / total).toFixed(2)}× client requests (bound ${allowed}: ×${1 + ratio} + reserve ${reserve}/window)`],
        ['breaker opened', `${(server.output().match(/upstream circuit opened/g) ?? []).length} times`],
        ['retries sent / refused by the budget', `${metrics.sum('upstream_retries_total')} / ${metrics.sum('upstream_retry_budget_exhausted_total')}`]
      ],
      failures
    }
  })
}

export const run: SoakRun = {
  number: 5,
  name: 'upstream-chaos',
  title: `Upstream chaos behind ${QUOTES_PATH}: every request answered within its deadline, upstream load within the retry budget`,
  run: upstreamChaos
}
