// Reliability run 1: SIGTERM under a steady HTTP/1.1 + HTTP/2 load with WebSocket clients connected.
// Every request the server accepted before the signal must get its whole 2xx response, every WebSocket
// client must get close 1001, and the process must exit 0 within SHUTDOWN_TIMEOUT_MS.

import { performance } from 'node:perf_hooks'
import { join } from 'node:path'
import { openSocket } from '../../../test/helpers/ws.ts'
import { startKeel } from '../lib/keel-server.ts'
import { h1Client, h2Client, steadyLoad, type Exchange } from '../lib/clients.ts'
import { withCleanup } from '../lib/cleanup.ts'
import { tally } from '../lib/latency.ts'
import type { SoakRun } from '../run.ts'

// A built-in route (present with or without the example resources) that meets every edge policy and
// takes the server a few milliseconds, so that requests are still in flight when the signal comes.
const PATH = '/docs/json'
const SHUTDOWN_TIMEOUT_MS = 10_000

const FULL = { h1Connections: 8, h2Sessions: 2, streamsPerSession: 8, sockets: 50, beforeSignal: 3000 }
const QUICK = { h1Connections: 4, h2Sessions: 1, streamsPerSession: 4, sockets: 5, beforeSignal: 300 }

/** Accepted before the signal: the whole request was written to the connection, or its response had started. */
const acceptedBefore = (e: Exchange, signalAt: number): boolean =>
  (e.writtenAt !== undefined && e.writtenAt < signalAt) || (e.startedAt !== undefined && e.startedAt < signalAt)

const failureOf = (e: Exchange): string | undefined =>
  e.error ?? (e.status !== undefined && (e.status < 200 || e.status >= 300) ? `status ${e.status}` : undefined)

export const run: SoakRun = {
  number: 1,
  name: 'shutdown',
  title: 'Graceful shutdown under load: SIGTERM during steady HTTP/1.1, HTTP/2 and WebSocket traffic',
  run: async (ctx) => await withCleanup(async (cleanup) => {
    const size = ctx.quick ? QUICK : FULL
    const failures: string[] = []
    const server = await startKeel({ workDir: join(ctx.workDir, 'shutdown'), env: { SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS) } }, cleanup)

    const sockets = await Promise.all(Array.from({ length: size.sockets }, async (_, i) =>
      await openSocket(cleanup, server, { sub: `soak-${i}` })))
    const h1 = h1Client(server, size.h1Connections)
    cleanup.teardown(() => h1.close())
    const h2 = await Promise.all(Array.from({ length: size.h2Sessions }, async () => await h2Client(server)))
    for (const c of h2) cleanup.teardown(() => c.close())
    ctx.log(`${size.sockets} WebSocket clients open; load: ${size.h1Connections} HTTP/1.1 keep-alive connections, ` +
      `${size.h2Sessions} HTTP/2 session(s) × ${size.streamsPerSession} streams, GET ${PATH}`)

    // Each HTTP/1.1 worker keeps one connection busy; HTTP/2 workers share a session per client.
    const h1Load = steadyLoad([h1], { path: PATH, workersPerClient: size.h1Connections, maxRequests: 200_000, maxMs: 60_000 })
    const h2Load = steadyLoad(h2, { path: PATH, workersPerClient: size.streamsPerSession, maxRequests: 200_000, maxMs: 60_000 })
    await Promise.all([h1Load.reached(size.beforeSignal), h2Load.reached(size.beforeSignal)])

    const signalAt = performance.now()
    const exit = server.stop('SIGTERM', SHUTDOWN_TIMEOUT_MS + 5000)
    ctx.log(`SIGTERM sent after ${h1Load.exchanges.length + h2Load.exchanges.length} requests`)
    const closes = await Promise.all(sockets.map(async (s) => await s.closed(SHUTDOWN_TIMEOUT_MS).then((c) => c.code, () => 'not closed')))
    const { code, signal, ms } = await exit
    await Promise.all([h1Load.stop(), h2Load.stop()])

    const exchanges = [...h1Load.exchanges, ...h2Load.exchanges]
    const accepted = exchanges.filter((e) => acceptedBefore(e, signalAt))
    const inFlight = accepted.filter((e) => e.endedAt === undefined || e.endedAt >= signalAt)
    const acceptedFailures = accepted.map(failureOf).filter((f): f is string => f !== undefined)
    const acceptedSet = new Set(accepted)
    const after = exchanges.filter((e) => !acceptedSet.has(e))
    const afterOk = after.filter((e) => failureOf(e) === undefined).length
    const closed1001 = closes.filter((c) => c === 1001).length
    const goaways = h2.map((c) => c.goaway()).filter((g) => g !== undefined)

    if (acceptedFailures.length > 0) failures.push(`${acceptedFailures.length} of ${accepted.length} accepted requests failed: ${tally(acceptedFailures)}`)
    if (inFlight.length === 0) failures.push('no request was in flight at the signal: the run proved nothing about in-flight work')
    if (closed1001 < sockets.length) failures.push(`${sockets.length - closed1001} of ${sockets.length} WebSocket clients did not get 1001: ${tally(closes.filter((c) => c !== 1001).map(String))}`)
    if (code !== 0) failures.push(`exit ${code ?? signal} (expected 0)`)
    if (ms > SHUTDOWN_TIMEOUT_MS) failures.push(`exited after ${ms} ms, over SHUTDOWN_TIMEOUT_MS ${SHUTDOWN_TIMEOUT_MS}`)

    return {
      pass: failures.length === 0,
      figures: [
        ['load', `${size.h1Connections} HTTP/1.1 keep-alive connections + ${size.h2Sessions} HTTP/2 session(s) × ${size.streamsPerSession} streams, GET ${PATH}, TLS 1.3; ${size.sockets} WebSocket clients`],
        ['requests accepted before SIGTERM', `${accepted.length} (${inFlight.length} still in flight at the signal)`],
        ['failed among accepted', `${acceptedFailures.length}${acceptedFailures.length > 0 ? ` (${tally(acceptedFailures)})` : ''}`],
        ['written after SIGTERM (not accepted)', `${after.length}: ${afterOk} answered 2xx, ${after.length - afterOk} turned away (${tally(after.map(failureOf).filter((f): f is string => f !== undefined), 3) || 'none'})`],
        ['HTTP/2 GOAWAY', goaways.length > 0 ? goaways.map((g) => `code ${g.code}, last stream ${g.lastStreamId}`).join('; ') : 'none received'],
        ['WebSocket clients closed with 1001', `${closed1001} of ${sockets.length}`],
        ['exit', `code ${code ?? signal} ${ms} ms after SIGTERM (SHUTDOWN_TIMEOUT_MS ${SHUTDOWN_TIMEOUT_MS}, SHUTDOWN_DRAIN_MS 0)`]
      ],
      failures
    }
  })
}
