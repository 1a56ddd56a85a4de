// Reliability run 3: HTTP/2 abuse. Rapid stream resets (the 2023 "rapid reset" pattern), then a flood
// of SETTINGS and PING frames, while another client keeps sending ordinary requests on its own session:
// the server must stay up, answer every one of that client's requests and still answer /health/live.

import { join } from 'node:path'
import { startKeel } from '../lib/keel-server.ts'
import { h2Client, statusOf } from '../lib/clients.ts'
import { withCleanup } from '../lib/cleanup.ts'
import { formatMiB } from '../lib/figures.ts'
import { formatLatency, probeSequentially, summarizeLatency, tally } from '../lib/latency.ts'
import { describeCuts, frameFlood, rapidReset } from '../lib/h2-abuse.ts'
import type { SoakRun } from '../run.ts'

// The route the abusive streams open and the well-behaved client asks for: any route shows whether the abuse
// starves the others; a built-in one is there with or without the example resources.
const PATH = '/health/live'

// Streams per abusive connection: twice the burst of resets nghttp2 tolerates (1,000) before it ends a session.
const RESETS_PER_CONNECTION = 2000
const FULL = { resets: 20_000, resetMs: 20_000, floodConnections: 20, floodFrames: 50_000, floodMs: 15_000, probe: 300 }
const QUICK = { resets: 4000, resetMs: 5000, floodConnections: 3, floodFrames: 20_000, floodMs: 4000, probe: 100 }
// Answers the well-behaved client must get while the abuse lasts (it is answered during it, not only
// after). How long it waited is a figure, not a verdict: what counts is that it keeps being answered.
const MIN_SERVED = 3

export const run: SoakRun = {
  number: 3,
  name: 'h2-abuse',
  title: 'HTTP/2 abuse: rapid stream resets and a SETTINGS/PING flood',
  run: async (ctx) => await withCleanup(async (cleanup) => {
    const size = ctx.quick ? QUICK : FULL
    const failures: string[] = []
    const server = await startKeel({ workDir: join(ctx.workDir, 'h2-abuse') }, cleanup)
    const good = await h2Client(server)
    cleanup.teardown(() => good.close())
    const send = statusOf(good, PATH)
    await probeSequentially(send, { count: 50, maxMs: 5000 })
    const idle = await probeSequentially(send, { count: size.probe, maxMs: 10_000 })
    const rssBefore = server.rss()
    ctx.log(`well-behaved client idle: ${formatLatency(summarizeLatency(idle.latencies))}`)

    // The well-behaved client runs beside both abuses, one request after another, until they end.
    const abuse = (async () => {
      const resets = await rapidReset(server, { path: PATH, streams: size.resets, perConnection: RESETS_PER_CONNECTION, maxMs: size.resetMs })
      ctx.log(`rapid reset: ${resets.sent} streams reset in ${Math.round(resets.ms)} ms; ${describeCuts(resets, 'streams')}`)
      const flood = await frameFlood(server, { connections: size.floodConnections, frames: size.floodFrames, maxMs: size.floodMs })
      ctx.log(`SETTINGS/PING flood: ${flood.sent} frames in ${Math.round(flood.ms)} ms; ${describeCuts(flood, 'frames')}`)
      return { resets, flood }
    })()
    const served = await probeSequentially(send, { count: 100_000, maxMs: size.resetMs + size.floodMs + 10_000, until: abuse })
    const { resets, flood } = await abuse
    const rssAfter = server.rss()

    const alive = server.alive()
    let live = 'not asked: the process is gone'
    if (alive) {
      const fresh = await h2Client(server).catch((err: Error) => err)
      if (fresh instanceof Error) live = `no new session: ${fresh.message}`
      else {
        const answer = await fresh.get('/health/live')
        fresh.close()
        live = answer.error ?? String(answer.status)
      }
    }
    const goodSession = good.goaway() === undefined && !good.session.closed ? 'kept its session' : 'lost its session'

    if (!alive) failures.push(`the server process died (exit ${(await server.exited).code})`)
    if (alive && live !== '200') failures.push(`/health/live on a new session answered ${live}`)
    if (served.failures.length > 0) failures.push(`${served.failures.length} of the well-behaved client's requests failed: ${tally(served.failures)}`)
    if (served.latencies.length < MIN_SERVED) failures.push(`the well-behaved client got only ${served.latencies.length} answers during the abuse`)
    if (idle.failures.length > 0) failures.push(`the well-behaved client failed before the abuse: ${tally(idle.failures)}`)

    return {
      pass: failures.length === 0,
      figures: [
        ['rapid reset', `${resets.sent.toLocaleString('en-US')} streams opened and cancelled (HEADERS then RST_STREAM CANCEL, up to ${RESETS_PER_CONNECTION.toLocaleString('en-US')} per connection) in ${(resets.ms / 1000).toFixed(1)} s over ${resets.connections.length} connection(s); ${describeCuts(resets, 'streams')}`],
        ['SETTINGS/PING flood', `${flood.sent.toLocaleString('en-US')} frames in ${(flood.ms / 1000).toFixed(1)} s over ${flood.connections.length} connection(s); ${describeCuts(flood, 'frames')}`],
        ['well-behaved client idle', `${formatLatency(summarizeLatency(idle.latencies))} — its own HTTP/2 session, sequential GET ${PATH}`],
        ['well-behaved client during the abuse', `${formatLatency(summarizeLatency(served.latencies))}, ${served.failures.length} failed; ${goodSession}`],
        ['server afterwards', `${alive ? 'alive' : 'dead'}; /health/live on a new session: ${live}`],
        ['server RSS', `${formatMiB(rssBefore)} before, ${formatMiB(rssAfter)} after`]
      ],
      failures
    }
  })
}
