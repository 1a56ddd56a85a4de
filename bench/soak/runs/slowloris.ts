// Reliability run 2: slowloris. Hundreds of TLS connections send request headers one byte a second;
// a normal client's p99 latency must stay within 2× its idle p99 (with a floor: sub-millisecond p99s are
// noise), and the server must cut every slow connection at HEADERS_TIMEOUT_MS.

import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { startKeel } from '../lib/keel-server.ts'
import { h1Client, statusOf } from '../lib/clients.ts'
import { withCleanup } from '../lib/cleanup.ts'
import { formatMiB } from '../lib/figures.ts'
import { formatLatency, formatMs, percentile, probeSequentially, summarizeLatency, tally } from '../lib/latency.ts'
import { openSlowConnections } from '../lib/slow-headers.ts'
import type { SoakRun } from '../run.ts'

// The normal client's route: any route shows whether slow connections starve the others; a built-in one
// is there with or without the example resources.
const PATH = '/health/live'
// The p99 bound: 2× idle, but never below idle + a floor: on loopback an idle p99 is 1–5 ms, where one
// scheduler hiccup on a shared 2-core machine (client, server and the slow connections on it) doubles it.
// The tap subset runs beside other tests, so its floor is wider; a server that stalls on slow
// connections adds far more than either.
const P99_FLOOR_MS = { full: 10, quick: 50 }
// Node checks header deadlines on a timer, and the close travels back over loopback: allowed lateness.
const CUT_SLACK_MS = 2000

const FULL = { slow: 500, headersTimeoutMs: 5000, probe: 1000 }
const QUICK = { slow: 50, headersTimeoutMs: 3000, probe: 300 }

export const run: SoakRun = {
  number: 2,
  name: 'slowloris',
  title: 'Slowloris: connections sending request headers one byte a second',
  run: async (ctx) => await withCleanup(async (cleanup) => {
    const size = ctx.quick ? QUICK : FULL
    const failures: string[] = []
    const server = await startKeel({ workDir: join(ctx.workDir, 'slowloris'), env: { HEADERS_TIMEOUT_MS: String(size.headersTimeoutMs) } }, cleanup)
    const client = h1Client(server, 1)
    cleanup.teardown(() => client.close())
    const send = statusOf(client, PATH)

    // Warm the connection and the route (JIT) before measuring idle.
    await probeSequentially(send, { count: 50, maxMs: 5000 })
    const idle = await probeSequentially(send, { count: size.probe, maxMs: 10_000 })
    const idleBefore = summarizeLatency(idle.latencies)
    const rssBefore = server.rss()
    ctx.log(`idle: ${formatLatency(idleBefore)}; opening ${size.slow} slow connections`)

    const openedAt = performance.now()
    const { connections: slow, failed: notOpened } = await openSlowConnections(server, size.slow)
    for (const c of slow) cleanup.teardown(() => c.destroy())
    const openMs = performance.now() - openedAt
    // Measure while every slow connection is still held open: until the first is cut.
    const firstCut = Promise.race(slow.map(async (c) => await c.closed))
    const attacked = await probeSequentially(send, { count: size.probe, maxMs: size.headersTimeoutMs, until: firstCut })
    const attackLatency = summarizeLatency(attacked.latencies)
    const rssDuring = server.rss()
    ctx.log(`under ${slow.length} slow connections: ${formatLatency(attackLatency)}; waiting for the server to cut them`)

    // Bounded: every connection is given its headersTimeout plus the slack, counted from its first byte.
    const lastDeadline = Math.max(...slow.map((c) => c.firstByteAt)) + size.headersTimeoutMs + CUT_SLACK_MS
    await Promise.race([
      Promise.all(slow.map(async (c) => await c.closed)),
      new Promise((resolve) => setTimeout(resolve, Math.max(0, lastDeadline - performance.now()) + 1000))
    ])
    // Idle again once they are gone: the baseline is the worse of the two, so drift of a shared machine
    // during the run is not blamed on the attack.
    const idleAgain = await probeSequentially(send, { count: size.probe, maxMs: 10_000 })
    const idleAfter = summarizeLatency(idleAgain.latencies)
    const idleP99 = Math.max(idleBefore.p99, idleAfter.p99)

    const cutAfter = slow.filter((c) => c.cutAt !== undefined).map((c) => c.cutAt! - c.firstByteAt)
    const lateOrOpen = slow.filter((c) => c.cutAt === undefined || c.cutAt - c.firstByteAt > size.headersTimeoutMs + CUT_SLACK_MS)
    const early = cutAfter.filter((ms) => ms < size.headersTimeoutMs - 100).length
    const answered408 = slow.filter((c) => c.answer?.startsWith('HTTP/1.1 408') === true).length

    const floor = ctx.quick ? P99_FLOOR_MS.quick : P99_FLOOR_MS.full
    const limit = Math.max(2 * idleP99, idleP99 + floor)
    if (notOpened.length > 0) failures.push(`${notOpened.length} slow connections could not be opened: ${tally(notOpened)}`)
    const clientFailures = [...idle.failures, ...attacked.failures, ...idleAgain.failures]
    if (clientFailures.length > 0) failures.push(`the normal client failed: ${tally(clientFailures)}`)
    if (attacked.latencies.length < Math.min(50, size.probe)) failures.push(`only ${attacked.latencies.length} requests measured while every slow connection was open`)
    if (!(attackLatency.p99 <= limit)) failures.push(`normal client p99 ${formatMs(attackLatency.p99)} under attack, over the limit ${formatMs(limit)}`)
    if (lateOrOpen.length > 0) {
      failures.push(`${lateOrOpen.length} of ${slow.length} slow connections were not cut within HEADERS_TIMEOUT_MS ${size.headersTimeoutMs} ms + ${CUT_SLACK_MS} ms ` +
        `(${lateOrOpen.filter((c) => c.cutAt === undefined).length} still open); Node checks header deadlines every server.connectionsCheckingInterval (30 s by default)`)
    }
    if (early > 0) failures.push(`${early} slow connections were cut before HEADERS_TIMEOUT_MS`)

    return {
      pass: failures.length === 0,
      figures: [
        ['slow connections', `${slow.length} TLS connections opened in ${(openMs / 1000).toFixed(1)} s, each sending its header one byte a second (HEADERS_TIMEOUT_MS ${size.headersTimeoutMs})`],
        ['normal client', `one HTTP/1.1 keep-alive connection, sequential GET ${PATH}`],
        ['idle, before', formatLatency(idleBefore)],
        ['under attack', formatLatency(attackLatency)],
        ['idle, after', formatLatency(idleAfter)],
        ['p99 limit', `${formatMs(limit)} = max(2 × idle p99, idle p99 + ${floor} ms), idle p99 the worse of before and after: ${attackLatency.p99 <= limit ? 'within' : 'over'}`],
        ['cut by the server', `${cutAfter.length} of ${slow.length}, after ${formatMs(percentile(cutAfter, 0))} – ${formatMs(percentile(cutAfter, 100))} from the first byte (median ${formatMs(percentile(cutAfter, 50))}); ${answered408} answered 408`],
        ['server RSS', `${formatMiB(rssBefore)} idle, ${formatMiB(rssDuring)} under attack`]
      ],
      failures
    }
  })
}
