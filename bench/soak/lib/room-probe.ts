// Well-behaved WebSocket clients in one room, as the reliability runs watch them: members (possibly on
// several Keel instances, in named groups) join the room, the publishing members publish at a steady
// rate within the message budget, and every message is tracked — acknowledged or refused, and which
// members of which group received it, how fast. A run asks for the figures of any time window.
// Timestamps are `epochMs()` (high-resolution and comparable across threads), so a probe hosted in a
// worker (bench/soak/lib/room-probe-worker.ts) is measured on the same clock as the run.

import { performance } from 'node:perf_hooks'
import { Worker } from 'node:worker_threads'
import { once } from 'node:events'
import WebSocket, { type RawData } from 'ws'
import { testToken } from '../../../test/helpers/tokens.ts'

/** Milliseconds since the epoch with sub-millisecond resolution, the same in every thread. */
export const epochMs = (): number => performance.timeOrigin + performance.now()

export interface ProbeTarget {
  /** `https://127.0.0.1:PORT` or `http://…`. */
  url: string
  /** The server's certificate to trust (TLS). */
  ca?: Buffer
}

export interface ProbeMember {
  target: ProbeTarget
  /** Token subject (the server is started with the tap suite's JWT secret). */
  sub: string
  /** Receivers are counted per group, e.g. per instance. */
  group: string
  publishes: boolean
}

export interface RoomProbeOptions {
  room: string
  members: ProbeMember[]
  /** Messages per second each publishing member sends (keep it below WS_MESSAGE_RATE). */
  ratePerPublisher: number
}

export interface RouteFigures {
  /** Deliveries due: each message × the receiving group's members other than its sender. */
  expected: number
  delivered: number
  /** Delivery latencies (ms) of what arrived. */
  latencies: number[]
}

export interface WindowFigures {
  published: number
  acked: number
  /** Refusals by error code (and `NO_ANSWER` for publishes the server never answered). */
  refused: Record<string, number>
  /** By sender's group and receiver's group: `A→A` (same instance), `A→B` (across instances)… */
  byRoute: Record<string, RouteFigures>
  /** Members whose socket closed while the probe ran: `group/sub code`. */
  closed: string[]
}

// Opening and joining must not take longer than this on loopback, however loaded the server is.
const OPEN_TIMEOUT_MS = 15_000
// A publish whose ack or error has not come back this long after it was sent counts as unanswered.
const ANSWER_TIMEOUT_MS = 5000

interface Sent {
  at: number
  from: number
  answer?: string
  /** Receiving member index → latency. */
  received: Map<number, number>
}

interface Member extends ProbeMember {
  ws: WebSocket
  closedWith?: number
}

/**
 * A client socket to the server's /ws as user `sub` (a test token), trusting its certificate, without
 * compression (Keel offers none). Transport errors surface as the close event.
 */
export function connectAs (target: ProbeTarget, sub: string): WebSocket {
  const ws = new WebSocket(target.url.replace(/^http/, 'ws') + '/ws', {
    headers: { authorization: `Bearer ${testToken({ sub })}` },
    ca: target.ca,
    servername: 'localhost',
    perMessageDeflate: false
  } as WebSocket.ClientOptions)
  ws.on('error', () => {})
  return ws
}

/** Opens one member's socket and joins the room; resolves once the join is acknowledged. */
async function openMember (member: ProbeMember, room: string, onMessage: (raw: RawData) => void): Promise<WebSocket> {
  const ws = connectAs(member.target, member.sub)
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`opening a socket for ${member.sub} took more than ${OPEN_TIMEOUT_MS} ms`)), OPEN_TIMEOUT_MS)
    function fail (err: Error): void {
      clearTimeout(timer)
      ws.terminate()
      reject(err)
    }
    ws.on('message', function untilJoined (raw: RawData) {
      const message = JSON.parse(raw.toString()) as { event: string, id?: string, data?: unknown }
      if (message.event === 'connection:ready') ws.send(JSON.stringify({ event: 'room:join', data: { room }, id: 'join' }))
      if (message.id !== 'join') return
      if (message.event !== 'ack') return fail(new Error(`joining ${room} failed: ${JSON.stringify(message.data)}`))
      clearTimeout(timer)
      ws.off('message', untilJoined)
      ws.on('message', onMessage)
      resolve()
    })
    ws.once('unexpected-response', (_req, res) => fail(new Error(`the upgrade for ${member.sub} was answered ${res.statusCode}`)))
    ws.once('close', (code) => fail(new Error(`the socket for ${member.sub} closed (${code}) before joining`)))
  })
  return ws
}

export class RoomProbe {
  readonly #options: RoomProbeOptions
  readonly #members: Member[] = []
  readonly #sent: Sent[] = []
  #timer: NodeJS.Timeout | undefined

  private constructor (options: RoomProbeOptions) {
    this.#options = options
  }

  /** Opens every member, one after the other, and joins the room. */
  static async open (options: RoomProbeOptions): Promise<RoomProbe> {
    const probe = new RoomProbe(options)
    try {
      for (const [index, member] of options.members.entries()) {
        const ws = await openMember(member, options.room, (raw) => probe.#onMessage(index, raw))
        const entry: Member = { ...member, ws }
        ws.once('close', (code) => { entry.closedWith = code })
        probe.#members.push(entry)
      }
    } catch (err) {
      probe.close()
      throw err
    }
    return probe
  }

  #onMessage (receiver: number, raw: RawData): void {
    const now = epochMs()
    const message = JSON.parse(raw.toString()) as { event: string, id?: string, data?: { code?: string, payload?: { n?: number } } }
    if (message.event === 'room:message') {
      const n = message.data?.payload?.n
      const sent = typeof n === 'number' ? this.#sent[n] : undefined
      if (sent !== undefined && !sent.received.has(receiver)) sent.received.set(receiver, now - sent.at)
    } else if (message.id !== undefined && message.id.startsWith('p')) {
      const sent = this.#sent[Number(message.id.slice(1))]
      if (sent !== undefined && sent.answer === undefined) sent.answer = message.event === 'ack' ? 'ok' : message.data?.code ?? message.event
    }
  }

  /** Starts publishing: the publishing members take turns, together `ratePerPublisher` × their number per second. */
  start (): void {
    const publishers = this.#members.map((m, i) => (m.publishes ? i : -1)).filter((i) => i >= 0)
    if (publishers.length === 0 || this.#timer !== undefined) return
    let turn = 0
    const intervalMs = 1000 / (this.#options.ratePerPublisher * publishers.length)
    const began = performance.now()
    let due = 0
    const tick = (): void => {
      // Catch up on the schedule after a late timer, so the rate holds however busy this thread is.
      const target = Math.floor((performance.now() - began) / intervalMs) + 1
      for (; due < target; due++) this.#publish(publishers[turn++ % publishers.length]!)
      this.#timer = setTimeout(tick, Math.max(1, began + due * intervalMs - performance.now()))
    }
    tick()
  }

  #publish (from: number): void {
    const member = this.#members[from]!
    if (member.ws.readyState !== WebSocket.OPEN) return
    const n = this.#sent.length
    this.#sent.push({ at: epochMs(), from, received: new Map() })
    member.ws.send(JSON.stringify({ event: 'room:publish', id: `p${n}`, data: { room: this.#options.room, payload: { n } } }))
  }

  stop (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
  }

  /** Figures for the messages sent in [from, to) (epochMs); read them once deliveries have had time to arrive. */
  window (from: number, to: number): WindowFigures {
    const figures: WindowFigures = { published: 0, acked: 0, refused: {}, byRoute: {}, closed: [] }
    const answeredBy = epochMs() - ANSWER_TIMEOUT_MS
    for (const sent of this.#sent) {
      if (sent.at < from || sent.at >= to) continue
      figures.published++
      const answer = sent.answer ?? (sent.at < answeredBy ? 'NO_ANSWER' : undefined)
      if (answer === 'ok') figures.acked++
      else if (answer !== undefined) figures.refused[answer] = (figures.refused[answer] ?? 0) + 1
      const sender = this.#members[sent.from]!.group
      for (const [index, member] of this.#members.entries()) {
        if (index === sent.from) continue
        const route = figures.byRoute[`${sender}→${member.group}`] ??= { expected: 0, delivered: 0, latencies: [] }
        route.expected++
        const latency = sent.received.get(index)
        if (latency !== undefined) {
          route.delivered++
          route.latencies.push(latency)
        }
      }
    }
    figures.closed = this.#members.filter((m) => m.closedWith !== undefined).map((m) => `${m.group}/${m.sub} ${m.closedWith}`)
    return figures
  }

  close (): void {
    this.stop()
    for (const m of this.#members) m.ws.terminate()
  }
}

/** A RoomProbe's controls, local or in a worker. */
export interface RoomProbeControl {
  start: () => Promise<void>
  stop: () => Promise<void>
  window: (from: number, to: number) => Promise<WindowFigures>
  close: () => Promise<void>
}

export type ProbeCommand = 'start' | 'stop' | 'window' | 'close'

/**
 * Runs the probe in a worker thread with its own event loop, so that load generated by the run's own
 * thread (thousands of abusive clients) does not delay the probe's sends and receipts and pass for
 * server latency.
 */
export async function openRoomProbeInWorker (options: RoomProbeOptions): Promise<RoomProbeControl> {
  // Only data crosses to the worker: a target may be a whole started server, with functions.
  const members = options.members.map((m) => ({ ...m, target: { url: m.target.url, ca: m.target.ca } }))
  const worker = new Worker(new URL('./room-probe-worker.ts', import.meta.url), { workerData: { ...options, members } })
  const [ready] = await once(worker, 'message') as [{ error?: string }]
  if (ready.error !== undefined) {
    await worker.terminate()
    throw new Error(ready.error)
  }
  let calls = 0
  const call = async <T>(command: ProbeCommand, args: number[] = []): Promise<T> => {
    const id = ++calls
    worker.postMessage({ id, command, args })
    for (;;) {
      const [reply] = await once(worker, 'message') as [{ id: number, result?: T, error?: string }]
      if (reply.id !== id) continue
      if (reply.error !== undefined) throw new Error(reply.error)
      return reply.result as T
    }
  }
  return {
    start: async () => { await call('start') },
    stop: async () => { await call('stop') },
    window: async (from, to) => await call<WindowFigures>('window', [from, to]),
    close: async () => {
      await call('close').catch(() => {})
      await worker.terminate()
    }
  }
}
