// Reliability run 6: WebSocket abuse. Thousands of authenticated connections (one subject each) flood
// messages past their budget, send frames over WS_MAX_PAYLOAD_BYTES and invalid JSON, while a few
// well-behaved clients chat in a room (in a worker thread, on their own event loop). Passes when the
// server stays up with its RSS within a stated bound, the well-behaved clients' delivery p99 (p90 in
// the quick run) in the abuse windows stays within 2× its value in the quiet windows between them (or
// a floor), and every abuser got what Keel's WebSocket protocol promises: RATE_LIMITED errors then a 4003 close for
// floods, 1009 for oversized frames, INVALID_MESSAGE for invalid JSON (which does not close).

import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import type WebSocket from 'ws'
import type { RawData } from 'ws'
import type { SoakContext, SoakOutcome, SoakRun } from '../run.ts'
import { startKeel, type KeelServer } from '../lib/keel-server.ts'
import { withCleanup } from '../lib/cleanup.ts'
import { formatMiB, formatShare, MiB } from '../lib/figures.ts'
import { formatMs, percentile, summarizeLatency, type LatencySummary } from '../lib/latency.ts'
import { connectAs, epochMs, openRoomProbeInWorker, type RoomProbeControl } from '../lib/room-probe.ts'
import { crashFailures, readMetrics } from '../lib/keel-client.ts'

interface Shape {
  abusers: number
  /** The well-behaved clients alone, before any abuser connects (reported). */
  idleS: number
  /**
   * Then, with every abuser connected: `rounds` × (a quiet window, an abuse window in which the next
   * 1/rounds of the abusers start their abuse, spread over it). Quiet and abuse windows alternate so
   * that other work on the machine weighs on both alike; the latency goal compares the two.
   */
  rounds: number
  quietS: number
  abuseS: number
}
// Full: 2,000 floods in 18 s of abuse windows, ~110 a second, i.e. ~13,000 abusive messages a second,
// which cost the server ~20 % of a core here (~1.7 ms per flood of 120): enough to show whether abuse
// reaches well-behaved clients, not so much that the machine (2 cores, shared with the abusers and
// the probe) saturates and any server would fail. At twice this rate the abuse windows' p99 measured
// 60–240 ms here, against 4–70 ms in the quiet ones; at this rate 12–92 ms.
const FULL: Shape = { abusers: 2000, idleS: 4, rounds: 6, quietS: 2, abuseS: 3 }
const QUICK: Shape = { abusers: 100, idleS: 2, rounds: 3, quietS: 1, abuseS: 1 }

// The server's defaults (README): 64 KiB frames, 20 messages/s in bursts of 40, 4003 after 20 refusals.
const MAX_PAYLOAD_BYTES = 64 * 1024
// A flood: more than the burst plus the refusals that close the connection, sent at once.
const FLOOD_MESSAGES = 120
const INVALID_FRAMES = 3
// Abusers upgrading at once: enough to keep the server busy, few enough for its accept backlog.
const OPEN_CONCURRENCY = 32
// An abuser not closed this long after its abuse began was not handled as the protocol says.
const ABUSER_TIMEOUT_MS = 10_000
const CALM_ROOM = 'calm'
const CALM_MEMBERS = 4
// Each member's rate: well under the 20/s budget, as a chatty but honest client.
const CALM_RATE = 5
const WARM_UP_MS = 1000
// Deliveries still in flight when a window is read.
const DELIVERY_GRACE_MS = 1000
// The latency goal is 2× the quiet windows' p99, but not below 100 ms, about where a chat participant
// starts to notice a delay. Below it, p99 on this 2-core machine — shared by the server, the abusers,
// the probe, and in the tap suite a second test file — is set by stalls the run does not control: the
// server's event-loop delay peaks at 50–150 ms in quiet windows too (scheduling, 40–60 ms major GCs).
const LATENCY_FLOOR_MS = 100
// The tail compared: p99. The quick run's abuse windows (3 s) hold ~180 deliveries, whose p99 is the
// second-worst, i.e. whichever single stall of the shared machine fell into them: it compares p90.
const checkedPercentile = (quick: boolean): number => (quick ? 90 : 99)
// RSS bound above the server's before the abusers connect: per connection its TLS and WebSocket state
// (55–62 KiB per open connection measured here, OpenSSL's buffers most of it); plus, once, frames being
// read (an oversized one holds up to WS_MAX_PAYLOAD_BYTES until it is refused) and V8 heap growth from
// the garbage the floods leave (parsed envelopes, error replies) before a collection.
const RSS_PER_CONNECTION = 64 * 1024
const RSS_HEADROOM = 64 * MiB
const RSS_SAMPLE_MS = 100

type Kind = 'flood' | 'invalid-json' | 'oversized'
/** One abuser in ten sends an oversized frame, one in ten invalid JSON first, the rest only flood. */
const kindOf = (i: number): Kind => (i % 10 === 0 ? 'oversized' : i % 10 === 1 ? 'invalid-json' : 'flood')

interface Abuser {
  kind: Kind
  ws: WebSocket
  errors: Record<string, number>
  closeCode?: number
  closed: Promise<void>
}

/** What the protocol promises this abuser; undefined when it got it. */
function broken (a: Abuser): string | undefined {
  if (a.closeCode === undefined) return `${a.kind}: not closed`
  if (a.kind === 'oversized') return a.closeCode === 1009 ? undefined : `oversized: closed ${a.closeCode}, not 1009`
  if (a.kind === 'invalid-json' && (a.errors.INVALID_MESSAGE ?? 0) < INVALID_FRAMES) return `invalid-json: ${a.errors.INVALID_MESSAGE ?? 0} INVALID_MESSAGE errors for ${INVALID_FRAMES} frames`
  if ((a.errors.RATE_LIMITED ?? 0) === 0) return `${a.kind}: no RATE_LIMITED error`
  return a.closeCode === 4003 ? undefined : `${a.kind}: closed ${a.closeCode}, not 4003`
}

async function openAbuser (server: KeelServer, i: number): Promise<Abuser> {
  const ws = connectAs(server, `abuser-${i}`)
  const abuser: Abuser = { kind: kindOf(i), ws, errors: {}, closed: new Promise((resolve) => ws.once('close', () => resolve())) }
  ws.once('close', (code) => { abuser.closeCode = code })
  await new Promise<void>((resolve, reject) => {
    ws.once('unexpected-response', (_req, res) => reject(new Error(`abuser ${i}: upgrade answered ${res.statusCode}`)))
    ws.once('close', (code) => reject(new Error(`abuser ${i}: closed (${code}) before connection:ready`)))
    ws.once('message', () => resolve())
  })
  ws.on('message', (raw: RawData) => {
    // Only errors matter here; acks of the accepted part of a flood are skipped without parsing.
    if (raw.toString('latin1', 0, 16) !== '{"event":"error"') return
    const code = (JSON.parse(raw.toString()) as { data?: { code?: string } }).data?.code ?? '?'
    abuser.errors[code] = (abuser.errors[code] ?? 0) + 1
  })
  return abuser
}

/** Opens `count` abusers, at most OPEN_CONCURRENCY upgrades at a time. */
async function openAbusers (server: KeelServer, count: number): Promise<Abuser[]> {
  const abusers: Abuser[] = []
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < count) abusers.push(await openAbuser(server, next++))
  }
  await Promise.all(Array.from({ length: Math.min(OPEN_CONCURRENCY, count) }, worker))
  return abusers
}

const ping = (k: number): string => `{"event":"ping","id":"f${k}"}`
const oversized = `{"event":"ping","data":"${'x'.repeat(MAX_PAYLOAD_BYTES)}"}`

/** Sends the abuser's whole abuse at once and resolves when the server has closed it (bounded). */
async function abuse (a: Abuser): Promise<void> {
  if (a.kind === 'oversized') {
    a.ws.send(ping(0))
    a.ws.send(oversized)
  } else {
    if (a.kind === 'invalid-json') for (let k = 0; k < INVALID_FRAMES; k++) a.ws.send('{"event": "ping", oops')
    for (let k = 0; k < FLOOD_MESSAGES; k++) a.ws.send(ping(k))
  }
  const timer = setTimeout(() => a.ws.terminate(), ABUSER_TIMEOUT_MS)
  await a.closed
  clearTimeout(timer)
}

/** Samples the server's RSS until stopped; resolves with the peak. */
function watchRss (server: KeelServer): { stop: () => number } {
  let peak = server.rss()
  const timer = setInterval(() => { peak = Math.max(peak, server.rss()) }, RSS_SAMPLE_MS)
  return { stop: () => { clearInterval(timer); return Math.max(peak, server.rss()) } }
}

type Window = [from: number, to: number]

interface Deliveries { latency: LatencySummary, latencies: number[], lost: number, refused: number, closed: string[] }

/** The well-behaved clients' figures over several windows together. */
async function latencyOf (probe: RoomProbeControl, windows: Window[]): Promise<Deliveries> {
  const latencies: number[] = []
  let lost = 0
  let refused = 0
  let closed: string[] = []
  for (const [from, to] of windows) {
    const w = await probe.window(from, to)
    const group = w.byRoute['calm→calm'] ?? { expected: 0, delivered: 0, latencies: [] }
    latencies.push(...group.latencies)
    lost += group.expected - group.delivered
    refused += Object.values(w.refused).reduce((a, b) => a + b, 0)
    closed = w.closed
  }
  return { latency: summarizeLatency(latencies), latencies, lost, refused, closed }
}

/** Starts the abuse of `abusers` spread evenly over `seconds`; resolves once the server has closed them all. */
async function abuseSpread (abusers: Abuser[], seconds: number): Promise<void> {
  const spacingMs = (seconds * 1000) / abusers.length
  const began = performance.now()
  await Promise.all(abusers.map(async (a, i) => {
    await sleep(Math.max(0, began + i * spacingMs - performance.now()))
    await abuse(a)
  }))
}

async function wsAbuse (ctx: SoakContext): Promise<SoakOutcome> {
  const shape = ctx.quick ? QUICK : FULL
  return await withCleanup(async (cleanup) => {
    const server = await startKeel({ workDir: ctx.workDir }, cleanup)
    ctx.log(`keel on ${server.url}; ${shape.abusers} abusers, ${CALM_MEMBERS} well-behaved clients in "${CALM_ROOM}"`)

    const probe = await openRoomProbeInWorker({
      room: CALM_ROOM,
      members: Array.from({ length: CALM_MEMBERS }, (_, i) => ({ target: server, sub: `calm-${i}`, group: 'calm', publishes: true })),
      ratePerPublisher: CALM_RATE
    })
    cleanup.teardown(() => probe.close())
    await probe.start()
    // The first messages pay for compilation and connection warm-up on both sides: not part of any window.
    await sleep(WARM_UP_MS)
    const idleFrom = epochMs()
    await sleep(shape.idleS * 1000)
    const idle: Window = [idleFrom, epochMs()]
    const rssIdle = server.rss()

    const rss = watchRss(server)
    const rampFrom = epochMs()
    const abusers = await openAbusers(server, shape.abusers)
    cleanup.teardown(() => { for (const a of abusers) a.ws.terminate() })
    const ramp: Window = [rampFrom, epochMs()]
    const rssOpen = server.rss()
    ctx.log(`${abusers.length} abusers open in ${((ramp[1] - ramp[0]) / 1000).toFixed(1)} s; server RSS ${formatMiB(rssOpen)}`)

    // prom-client resets its event-loop delay histogram on each scrape: this one starts the rounds'.
    await readMetrics(server)
    const serverCpuFrom = server.cpuSeconds()
    const ownCpuFrom = process.cpuUsage()
    const roundsFrom = performance.now()
    const quiet: Window[] = []
    const abused: Window[] = []
    const perRound = Math.ceil(abusers.length / shape.rounds)
    for (let r = 0; r < shape.rounds; r++) {
      const quietFrom = epochMs()
      await sleep(shape.quietS * 1000)
      quiet.push([quietFrom, epochMs()])
      const abuseFrom = epochMs()
      await abuseSpread(abusers.slice(r * perRound, (r + 1) * perRound), shape.abuseS)
      abused.push([abuseFrom, epochMs()])
    }
    const roundsS = (performance.now() - roundsFrom) / 1000
    const serverCpu = (server.cpuSeconds() - serverCpuFrom) / roundsS
    const ownCpuUs = process.cpuUsage(ownCpuFrom)
    const ownCpu = (ownCpuUs.user + ownCpuUs.system) / 1e6 / roundsS
    const rssPeak = rss.stop()
    const metrics = await readMetrics(server)

    await sleep(DELIVERY_GRACE_MS)
    await probe.stop()
    const alone = await latencyOf(probe, [idle])
    const opening = await latencyOf(probe, [ramp])
    const calm = await latencyOf(probe, quiet)
    const during = await latencyOf(probe, abused)

    const majorGcs = metrics.sum('nodejs_gc_duration_seconds_count', { kind: 'major' })
    const longGcs = majorGcs - metrics.sum('nodejs_gc_duration_seconds_bucket', { kind: 'major', le: '0.1' })
    const broke = abusers.map(broken).filter((b) => b !== undefined)
    const byKind = (kind: Kind): Abuser[] => abusers.filter((a) => a.kind === kind)
    const got = (list: Abuser[], ok: (a: Abuser) => boolean): string => formatShare(list.filter(ok).length, list.length)
    const rssBound = rssIdle + shape.abusers * RSS_PER_CONNECTION + RSS_HEADROOM
    const p = checkedPercentile(ctx.quick)
    const calmTail = percentile(calm.latencies, p)
    const abusedTail = percentile(during.latencies, p)
    const latencyBound = Math.max(2 * calmTail, LATENCY_FLOOR_MS)

    const failures = crashFailures(server)
    if (rssPeak > rssBound) failures.push(`server RSS peaked at ${formatMiB(rssPeak)}, above the bound of ${formatMiB(rssBound)}`)
    if (!(abusedTail <= latencyBound)) {
      failures.push(`well-behaved delivery p${p} under abuse was ${formatMs(abusedTail)}, above ${formatMs(latencyBound)} (2× the quiet windows' ${formatMs(calmTail)}, floor ${LATENCY_FLOOR_MS} ms)`)
    }
    for (const [name, w] of [['alone', alone], ['while abusers connect', opening], ['quiet', calm], ['abuse', during]] as const) {
      if (w.lost > 0 || w.refused > 0) failures.push(`well-behaved clients (${name}): ${w.lost} deliveries lost, ${w.refused} publishes refused`)
    }
    if (during.closed.length > 0) failures.push(`well-behaved clients were disconnected: ${during.closed.join(', ')}`)
    if (broke.length > 0) failures.push(`${broke.length} abusers did not get what the protocol promises, e.g. ${[...new Set(broke)].slice(0, 3).join('; ')}`)

    const deliveries = (w: { latency: LatencySummary }): string => `p50 ${formatMs(w.latency.p50)}, p99 ${formatMs(w.latency.p99)}, max ${formatMs(w.latency.max)} (${w.latency.count} deliveries)`
    return {
      pass: failures.length === 0,
      figures: [
        ['abusers', `${abusers.length} connections (one user each) opened in ${((ramp[1] - ramp[0]) / 1000).toFixed(1)} s; abuse in ${shape.rounds} rounds over ${roundsS.toFixed(1)} s`],
        ['flooders: RATE_LIMITED then 4003', got(byKind('flood'), (a) => broken(a) === undefined)],
        ['invalid JSON: INVALID_MESSAGE, then 4003', got(byKind('invalid-json'), (a) => broken(a) === undefined)],
        ['oversized frame: 1009', got(byKind('oversized'), (a) => broken(a) === undefined)],
        ['server counted', `${metrics.sum('ws_errors_total', { code: 'RATE_LIMITED' })} RATE_LIMITED, ${metrics.sum('ws_errors_total', { code: 'INVALID_MESSAGE' })} INVALID_MESSAGE; ` +
          `closes ${metrics.sum('ws_closes_total', { code: '4003' })}× 4003, ${metrics.sum('ws_closes_total', { code: '1009' })}× 1009, ${metrics.sum('ws_closes_total', { code: '1006' })}× 1006`],
        ['CPU during the rounds (share of one core)', `server ${(100 * serverCpu).toFixed(0)} %, abusers ${(100 * ownCpu).toFixed(0)} %`],
        ['server event-loop delay during the rounds', `p99 ${formatMs(metrics.sum('nodejs_eventloop_lag_p99_seconds') * 1000)}, max ${formatMs(metrics.sum('nodejs_eventloop_lag_max_seconds') * 1000)}`],
        ['server RSS alone / all open / peak', `${formatMiB(rssIdle)} / ${formatMiB(rssOpen)} / ${formatMiB(rssPeak)} (bound ${formatMiB(rssBound)}); ` +
          `${Math.round((rssOpen - rssIdle) / abusers.length / 1024)} KiB per open TLS connection`],
        ['server major GCs over the run', `${majorGcs} (${longGcs} over 100 ms), ${formatMs(metrics.sum('nodejs_gc_duration_seconds_sum', { kind: 'major' }) * 1000)} in total`],
        ['well-behaved delivery, alone', deliveries(alone)],
        ['… while abusers connect', deliveries(opening)],
        ['… quiet windows', deliveries(calm)],
        ['… abuse windows', `${deliveries(during)}; p${p} ${formatMs(abusedTail)} against a bound of ${formatMs(latencyBound)}`]
      ],
      failures
    }
  })
}

export const run: SoakRun = {
  number: 6,
  name: 'ws-abuse',
  title: 'WebSocket abuse (floods, oversized frames, invalid JSON): bounded RSS, well-behaved clients keep their latency',
  run: wsAbuse
}
