// WebSocket contenders: a server process from bench/servers/ plus the WebSocket load generator
// (bench/lib/ws-load.ts) that measures it. Two shapes: `roomsContender` (scenario 5: echo round trips,
// then room fan-out, in each window) and `idleMemoryContender` (scenario 6: RSS per idle socket).
// Server CPU is read from /proc around each part of a window, so each figure gets only its own CPU.

import { readFileSync } from 'node:fs'
import { setTimeout } from 'node:timers/promises'
import { get as httpGet, type IncomingMessage } from 'node:http'
import { get as httpsGet } from 'node:https'
import { benchCertificate, startServer, type ServerProcess } from './server-process.ts'
import { CPU_PER_OP, type Contender, type RunSettings, type Sample } from './scenario.ts'
import { startWsLoad, type Protocol, type WsEndpoint, type WsLoad } from './ws-load.ts'
import type { WsTransport } from './ws-dialers.ts'
import { WS_PATH, memoryPath, type GcMode, type MemoryReport } from './ws-workload.ts'

export interface WsContenderSpec {
  id: string
  label: string
  /** File under bench/servers/. */
  script: string
  protocol: Protocol
  /** CPU-profile the server's serving phase into this file (the profiling pass). */
  profileFile?: string
  /** Windows run the fan-out part only (the profiling pass). */
  fanoutOnly?: boolean
  /** How the load reaches it (envelope servers): ws:// when absent; the others start the server with TLS. */
  transport?: WsTransport
}

/** The load of scenario 5. */
export const ROOM_LOAD = {
  subscribers: 1000,
  /** Fan-out messages out at once (closed loop): each one fully delivered lets the next go. */
  inFlight: 8,
  /** Echo sockets, each with one `ping` in flight. */
  echoers: 50,
  /** Of each window: this share echo round trips, the rest fan-out. */
  echoShare: 0.4
}

// Opening a thousand sockets takes a few seconds; a load command overrunning by this much has hung.
const COMMAND_GRACE_MS = 60_000
// Opening sockets may take this long each on top (a floor of 50 handshakes/s: TLS ones on a busy machine).
const OPEN_MS_PER_SOCKET = 20
const openDeadline = (sockets: number): number => COMMAND_GRACE_MS + sockets * OPEN_MS_PER_SOCKET
const MEMORY_SETTLE_MS = 20_000
const MEMORY_POLL_MS = 100
/** Sockets opened and closed before the baseline read, so the baseline holds the code compiled for them. */
const MEMORY_WARMUP_SOCKETS = 200

interface Pair {
  server: ServerProcess
  load: WsLoad
  /** Where the load reaches the server. */
  endpoint: WsEndpoint
  /** Reads the server's memory probe (over TLS when the server speaks it). */
  memory: (gc: GcMode) => Promise<MemoryReport>
}

/** Starts the server (with TLS for every transport but ws://), then the load generator (nothing is left running when the server fails to start). */
async function startPair (spec: WsContenderSpec, settings: RunSettings): Promise<Pair> {
  const transport = spec.transport ?? 'ws'
  const tls = transport === 'ws' ? undefined : await benchCertificate(settings.workDir)
  const server = await startServer({ script: spec.script, options: { profileFile: spec.profileFile, tls }, cpu: settings.pinning?.server })
  const url = spec.protocol === 'socketio'
    ? `http://127.0.0.1:${server.port}`
    : `${tls === undefined ? 'ws' : 'wss'}://127.0.0.1:${server.port}${WS_PATH}`
  const ca = tls === undefined ? undefined : readFileSync(tls.certFile)
  return {
    server,
    load: startWsLoad(settings.pinning?.load),
    endpoint: { protocol: spec.protocol, url, transport, caFile: tls?.certFile },
    memory: async (gc) => await readMemory(server.port, gc, ca)
  }
}

const per = (cpuSeconds: number, operations: number): number => operations > 0 ? cpuSeconds * 1e6 / operations : Number.NaN

/** User and system clock ticks of a process (/proc/PID/stat fields 14 and 15); zeros where /proc is absent. */
function cpuTicks (pid: number): { user: number, system: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return { user: Number(fields[11]), system: Number(fields[12]) }
  } catch {
    return { user: 0, system: 0 }
  }
}

export function roomsContender (spec: WsContenderSpec): Contender {
  return {
    id: spec.id,
    label: spec.label,
    start: async (settings) => {
      const { server, load, endpoint } = await startPair(spec, settings)
      const stop = async (): Promise<void> => {
        await load.stop()
        await server.stop()
      }
      try {
        await load.run({ type: 'setup', ...endpoint, subscribers: ROOM_LOAD.subscribers, echoers: ROOM_LOAD.echoers }, openDeadline(ROOM_LOAD.subscribers + ROOM_LOAD.echoers))
      } catch (err) {
        await stop()
        throw err
      }
      return {
        notes: [],
        measure: async (seconds): Promise<Sample> => {
          const echoSeconds = spec.fanoutOnly === true ? 0 : Math.max(1, Math.round(seconds * ROOM_LOAD.echoShare))
          const fanoutSeconds = Math.max(1, seconds - echoSeconds)
          const cpu0 = server.cpuSeconds()
          const echo = echoSeconds === 0
            ? undefined
            : await load.figures({ type: 'echo', seconds: echoSeconds }, echoSeconds * 1000 + COMMAND_GRACE_MS)
          const cpu1 = server.cpuSeconds()
          const ticks1 = cpuTicks(server.pid)
          const fan = await load.figures({ type: 'fanout', seconds: fanoutSeconds, inFlight: ROOM_LOAD.inFlight }, fanoutSeconds * 1000 + COMMAND_GRACE_MS)
          const cpu2 = server.cpuSeconds()
          const ticks2 = cpuTicks(server.pid)
          const fanoutCpu = per(cpu2 - cpu1, fan.operations)
          // The kernel's share (socket writes) against the process's own work, for the notes and the profiling pass.
          const userShare = (ticks2.user - ticks1.user) / (ticks2.user - ticks1.user + ticks2.system - ticks1.system)
          return {
            operations: fan.operations,
            seconds: fan.seconds,
            metrics: {
              p50Ms: fan.p50Ms,
              p99Ms: fan.p99Ms,
              [CPU_PER_OP]: fanoutCpu,
              userUs: fanoutCpu * userShare,
              systemUs: fanoutCpu * (1 - userShare),
              echoRate: echo === undefined ? Number.NaN : echo.operations / echo.seconds,
              echoP99Ms: echo?.p99Ms ?? Number.NaN,
              echoCpuUs: echo === undefined ? Number.NaN : per(cpu1 - cpu0, echo.operations)
            },
            problems: [...echo?.problems ?? [], ...fan.problems]
          }
        },
        stop
      }
    }
  }
}

/** The memory probe's answer; over HTTPS (HTTP/1.1, a fresh connection each time) when `ca` is given. */
async function readMemory (port: number, gc: GcMode, ca: Buffer | undefined): Promise<MemoryReport> {
  const path = memoryPath(gc)
  const get = ca === undefined ? httpGet : httpsGet
  const response = await new Promise<IncomingMessage>((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, agent: false, ...(ca === undefined ? {} : { ca, servername: 'localhost' }) }, resolve).once('error', reject)
  })
  let body = ''
  for await (const chunk of response) body += String(chunk)
  if (response.statusCode !== 200) throw new Error(`${path} answered ${response.statusCode}`)
  return JSON.parse(body) as MemoryReport
}

/**
 * Polls the memory probe (counting only: a GC on every poll would stall the server) until the server
 * holds `count` sockets; then reads it after a full GC.
 */
async function settledMemory (memory: Pair['memory'], count: number): Promise<MemoryReport> {
  const deadline = Date.now() + MEMORY_SETTLE_MS
  for (let held = (await memory('none')).connections; held !== count; held = (await memory('none')).connections) {
    if (Date.now() > deadline) throw new Error(`the server holds ${held} WebSocket connections, expected ${count}`)
    await setTimeout(MEMORY_POLL_MS)
  }
  return await memory('full')
}

/** Metric key of the KiB per connection at `level` sockets. */
export const kibKey = (level: number): string => `kib${level}`
/** Metric key of the KiB each socket added between the last two levels (fixed costs cancel out). */
export const MARGINAL_KIB = 'kibMarginal'
/** Metric key of the KiB per connection at the last level after a memory-reducing GC. */
export const REDUCED_KIB = 'kibReduced'

/**
 * The first window opens idle authenticated sockets (one subject each) up to every level in turn and
 * reads the server's RSS after a full GC at each, then after a memory-reducing GC at the last. The
 * sockets stay open; each later window reads again after a memory-reducing GC (a regular read would
 * now find the young generation that GC gave back, not the first window's state). Figures are against
 * the baselines read after start-up and a small warm-up. Sockets are opened once: 10,000 handshakes per
 * window would take most of the run, and memory, unlike throughput, does not drift with other work.
 */
export function idleMemoryContender (spec: WsContenderSpec, levels: readonly number[]): Contender {
  const last = levels.at(-1)!
  return {
    id: spec.id,
    label: spec.label,
    start: async (settings) => {
      const { server, load, endpoint, memory } = await startPair(spec, settings)
      const stop = async (): Promise<void> => {
        await load.stop()
        await server.stop()
      }
      let baseline: MemoryReport
      let reducedBaseline: MemoryReport
      try {
        await load.figures({ type: 'open-idle', ...endpoint, target: MEMORY_WARMUP_SOCKETS }, openDeadline(MEMORY_WARMUP_SOCKETS))
        await load.run({ type: 'close-idle' }, COMMAND_GRACE_MS)
        baseline = await settledMemory(memory, 0)
        reducedBaseline = await memory('reduce')
      } catch (err) {
        await stop()
        throw err
      }
      // The harness's warm-up window (one `measure` before the rounds) is the small warm-up above.
      let warmupPending = settings.warmupSeconds > 0
      let opened = false
      const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`
      const kib = (report: MemoryReport, from: MemoryReport, count: number): number => (report.rss - from.rss) / count / 1024

      /** The first window: every level in turn; the handshakes' rate and CPU come from here. */
      async function openLevels (): Promise<Sample> {
        const metrics: Record<string, number> = {}
        const problems: string[] = []
        let count = 0
        let seconds = 0
        let cpu = 0
        let previous: MemoryReport | undefined
        for (const level of levels) {
          const before = server.cpuSeconds()
          const figures = await load.figures({ type: 'open-idle', ...endpoint, target: level }, openDeadline(level - (previous?.connections ?? 0)))
          // Read before the probe's GCs: every socket has had its `connection:ready` by now.
          cpu += server.cpuSeconds() - before
          const report = await settledMemory(memory, level)
          count += figures.operations
          seconds += figures.seconds
          problems.push(...figures.problems)
          metrics[kibKey(level)] = kib(report, baseline, level)
          if (previous !== undefined) metrics[MARGINAL_KIB] = kib(report, previous, level - previous.connections)
          previous = report
        }
        metrics[REDUCED_KIB] = kib(await memory('reduce'), reducedBaseline, last)
        metrics[CPU_PER_OP] = per(cpu, count)
        return { operations: count, seconds, metrics, problems }
      }

      return {
        notes: [`baseline after start-up and a warm-up of ${MEMORY_WARMUP_SOCKETS} sockets: RSS ${mib(baseline.rss)} ` +
          `(${mib(reducedBaseline.rss)} after a memory-reducing GC), JS heap ${mib(baseline.heapUsed)}`],
        measure: async (): Promise<Sample> => {
          // Windows that open nothing have no rate: NaN, which a median leaves out.
          if (warmupPending) {
            warmupPending = false
            return { operations: Number.NaN, seconds: 1, metrics: {}, problems: [] }
          }
          if (!opened) {
            opened = true
            return await openLevels()
          }
          const reduced = await memory('reduce')
          if (reduced.connections !== last) throw new Error(`the server holds ${reduced.connections} WebSocket connections, expected ${last}`)
          return { operations: Number.NaN, seconds: 1, metrics: { [REDUCED_KIB]: kib(reduced, reducedBaseline, last) }, problems: [] }
        },
        stop
      }
    }
  }
}
