// The WebSocket load generator: a separate process (the harness pins it to the load CPU) holding up to
// tens of thousands of client sockets, running one command at a time sent by bench/lib/ws-load.ts over
// IPC — open the fan-out sockets, echo round trips, a fan-out window, open or close idle sockets — and
// answering with figures. Two client kinds: Keel's own typed client (client/keel-client.ts) over `ws`, for
// Keel and the raw ws peer (both speak the envelope protocol; ws://, wss:// or HTTP/2 streams, as
// bench/lib/ws-dialers.ts dials them), and socket.io-client. Every wait is
// bounded; a command never outlives its deadline; a socket lost mid-run is reported, never reconnected.

import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { io, type Socket as IoSocket } from 'socket.io-client'
import { KeelClient, type RoomMessage } from '../../client/keel-client.ts'
import { BENCH_ROOM, benchWsToken } from './ws-workload.ts'
import { wsDialer, type Dialed, type Dialer } from './ws-dialers.ts'
import type { LoadCommand, LoadReply, WindowFigures, WsEndpoint } from './ws-load.ts'

// One socket's open, or one acknowledged request, that takes longer than this is a failure, not a slow
// server (it outlasts TCP's SYN retransmissions at 1, 3, 7 and 15 s).
const REQUEST_TIMEOUT_MS = 30_000
// A fan-out message not yet received by every subscriber this long after it was sent is given up on.
const STALL_MS = 3000
// Sockets opening at once: enough to keep a server busy, few enough not to overflow its accept backlog.
const OPEN_CONCURRENCY = 64
// An upgrade answered 503 (Keel sheds load for a second when its event loop lagged, as a busy shared
// machine can make it) is tried again after this long, this many times at most, and counted.
const SHED_RETRY_MS = 500
const SHED_RETRIES = 40
// What a chat message carries besides the publisher's stamp: delivered frames of ~200 bytes.
const CHAT_TEXT = 'The quick brown fox jumps over the lazy dog while the crew hauls the anchor.'

/** What the publisher puts in each room message: its number and when it was sent. */
interface ChatPayload { n: number, sentAt: number }

/** A client socket of either kind, as the commands use it. */
interface BenchSocket {
  /** Joins a room; resolves on the server's acknowledgement. */
  join: (room: string) => Promise<unknown>
  /** One acknowledged round trip. */
  ping: () => Promise<unknown>
  /** Publishes without asking for an acknowledgement, as a chat client does. */
  publish: (room: string, payload: unknown) => void
  close: () => void
}

type Opener = (sub: string, onRoomMessage: (m: RoomMessage) => void) => Promise<BenchSocket>

/** The server answered the upgrade with an HTTP status instead of 101. */
class RefusedUpgrade extends Error {
  readonly status: number
  constructor (status: number) {
    super(`the upgrade was answered ${status}`)
    this.status = status
  }
}

/** Sockets that closed without the load closing them, since the last `takeProblems`. */
let lostSockets = 0

/**
 * Keel's envelope protocol (realtime/protocol/) through KeelClient. Rooms are joined with `request('room:join')`, not
 * `join()`: the client then keeps no seq state for them, so every room:message the server delivers
 * reaches `onRoomMessage` once — a duplicate is counted, not dropped — and nothing is re-joined.
 */
function openEnvelopeSocket (url: string, dial: Dialer): Opener {
  return async (sub, onRoomMessage) => {
    let dialed: Dialed | undefined
    let established = false
    let closing = false
    const client = new KeelClient({
      url,
      token: benchWsToken(sub),
      createSocket: (socketUrl) => {
        dialed = dial(socketUrl)
        return dialed.socket
      },
      connectTimeoutMs: REQUEST_TIMEOUT_MS,
      ackTimeoutMs: REQUEST_TIMEOUT_MS,
      reconnect: { maxAttempts: 0 },
      // Ids only need to be unique on their connection; a short prefix keeps each ping's frame small.
      idPrefix: 'b'
    })
    client.on('room:message', onRoomMessage)
    let closeReason = ''
    client.on('close', ({ reason }) => {
      closeReason = reason
      if (established && !closing) lostSockets++
    })
    try {
      await client.connect()
    } catch (err) {
      const refusedStatus = dialed?.refusedStatus()
      if (refusedStatus !== undefined) throw new RefusedUpgrade(refusedStatus)
      throw new Error(`opening a WebSocket failed: ${dialed?.error()?.message ?? closeReason}`, { cause: err })
    }
    established = true
    return {
      join: async (room) => await client.request('room:join', { room }),
      ping: async () => await client.request('ping', null),
      publish: (room, payload) => { client.send('room:publish', { room, payload }) },
      close: () => {
        closing = true
        // No closing handshake: thousands of idle sockets go at once, as before KeelClient was used.
        dialed?.socket.terminate()
        client.close()
      }
    }
  }
}

/** Socket.IO: acknowledgements are callbacks; the token travels in the handshake's `auth`. */
function openSocketIo (origin: string): Opener {
  return (sub, onRoomMessage) => new Promise((resolve, reject) => {
    const client: IoSocket = io(origin, { transports: ['websocket'], auth: { token: benchWsToken(sub) }, reconnection: false, forceNew: true, timeout: REQUEST_TIMEOUT_MS })
    client.on('room:message', onRoomMessage)
    const request = async (event: string, data: unknown): Promise<unknown> => await client.timeout(REQUEST_TIMEOUT_MS).emitWithAck(event, data) as unknown
    client.once('connect', () => {
      client.on('disconnect', (reason) => { if (reason !== 'io client disconnect') lostSockets++ })
      resolve({
        join: async (room) => await request('room:join', { room }),
        ping: async () => await request('ping', null),
        publish: (room, payload) => { client.emit('room:publish', { room, payload }) },
        close: () => { client.disconnect() }
      })
    })
    client.once('connect_error', (err) => {
      client.disconnect()
      reject(err)
    })
  })
}

function opener ({ protocol, url, transport = 'ws', caFile }: WsEndpoint): Opener {
  return protocol === 'socketio' ? openSocketIo(url) : openEnvelopeSocket(url, wsDialer(transport, url, caFile))
}

/** Upgrades answered 503 and tried again since the last `takeProblems`. */
let shed = 0

/** Opens one socket, trying again while the server sheds load (503). */
async function openPatiently (open: () => Promise<BenchSocket>): Promise<BenchSocket> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await open()
    } catch (err) {
      if (!(err instanceof RefusedUpgrade) || err.status !== 503 || attempt === SHED_RETRIES) throw err
      shed++
      await sleep(SHED_RETRY_MS)
    }
  }
}

/** Upgrades shed and sockets lost since the last call, as problems of the window that saw them. */
function takeProblems (): string[] {
  const problems = [
    ...shed === 0 ? [] : [`${shed} upgrades answered 503 (the server was shedding load) and tried again`],
    ...lostSockets === 0 ? [] : [`${lostSockets} sockets closed without the load closing them (not reconnected)`]
  ]
  shed = 0
  lostSockets = 0
  return problems
}

/** Opens `count` sockets, at most OPEN_CONCURRENCY at a time; fails on the first that cannot open. */
async function openMany (count: number, open: (index: number) => Promise<BenchSocket>): Promise<BenchSocket[]> {
  const sockets: BenchSocket[] = []
  let next = 0
  async function worker (): Promise<void> {
    while (next < count) {
      const index = next++
      sockets.push(await openPatiently(async () => await open(index)))
    }
  }
  await Promise.all(Array.from({ length: Math.min(OPEN_CONCURRENCY, count) }, worker))
  return sockets
}

const ms = (h: RecordableHistogram, p: number): number => h.count === 0 ? Number.NaN : h.percentile(p) / 1000
const recordSince = (h: RecordableHistogram, start: number): void => h.record(Math.max(1, Math.round((performance.now() - start) * 1000)))

/** The sockets of the echo and fan-out scenario, opened once by `setup`. */
interface Rooms { publisher: BenchSocket, subscribers: BenchSocket[], echoers: BenchSocket[] }

/** The fan-out window in progress; subscribers' messages outside a window are ignored. */
interface FanoutWindow {
  delivered: number
  /** Message number → subscribers still to receive it, and when it was sent. */
  waiting: Map<number, { left: number, sentAt: number }>
  latency: RecordableHistogram
  /** Cleared at the window's end: no more messages go out, and the window ends when nothing is waiting. */
  publishing: boolean
  lost: number
  onSettled: () => void
}

let rooms: Rooms | undefined
let fanout: FanoutWindow | undefined
let published = 0
let idle: BenchSocket[] = []

function onRoomMessage (message: RoomMessage): void {
  const w = fanout
  if (w === undefined) return
  const payload = message.payload as ChatPayload
  w.delivered++
  recordSince(w.latency, payload.sentAt)
  const entry = w.waiting.get(payload.n)
  if (entry === undefined || --entry.left > 0) return
  w.waiting.delete(payload.n)
  publishNext(w)
}

function publishNext (w: FanoutWindow): void {
  if (!w.publishing) {
    if (w.waiting.size === 0) w.onSettled()
    return
  }
  const n = ++published
  const sentAt = performance.now()
  w.waiting.set(n, { left: rooms!.subscribers.length, sentAt })
  rooms!.publisher.publish(BENCH_ROOM, { n, sentAt, text: CHAT_TEXT })
}

/** Gives up on messages some subscriber has not received for STALL_MS, so the loop goes on. */
function sweepStalled (w: FanoutWindow): void {
  const limit = performance.now() - STALL_MS
  for (const [n, entry] of w.waiting) {
    if (entry.sentAt > limit) continue
    w.waiting.delete(n)
    w.lost++
    publishNext(w)
  }
}

async function setup (endpoint: WsEndpoint, subscribers: number, echoers: number): Promise<LoadReply> {
  const open = opener(endpoint)
  const ignore = (): void => {}
  // One subject per role: presence (Keel's open rooms track it) changes once per role, not once per socket.
  const subs = await openMany(subscribers, async () => await open('bench-subscriber', onRoomMessage))
  await Promise.all(subs.map(async (s) => await s.join(BENCH_ROOM)))
  const publisher = await open('bench-publisher', ignore)
  await publisher.join(BENCH_ROOM)
  const echo = await openMany(echoers, async () => await open('bench-echo', ignore))
  rooms = { publisher, subscribers: subs, echoers: echo }
  // Upgrades shed while setting up delayed nothing that is measured (a socket lost is the next window's problem).
  shed = 0
  return { type: 'done' }
}

/** Each echo socket keeps one `ping` in flight until the window ends. */
async function echoWindow (seconds: number): Promise<WindowFigures> {
  const { echoers } = rooms!
  const latency = createHistogram()
  const began = performance.now()
  const ends = began + seconds * 1000
  let roundTrips = 0
  await Promise.all(echoers.map(async (socket) => {
    while (performance.now() < ends) {
      const sent = performance.now()
      await socket.ping()
      recordSince(latency, sent)
      roundTrips++
    }
  }))
  return { operations: roundTrips, seconds: (performance.now() - began) / 1000, p50Ms: ms(latency, 50), p99Ms: ms(latency, 99), problems: takeProblems() }
}

/** Closed loop: `inFlight` messages out at a time; each one fully delivered lets the next go. */
async function fanoutWindow (seconds: number, inFlight: number): Promise<WindowFigures> {
  const began = performance.now()
  const w: FanoutWindow = { delivered: 0, waiting: new Map(), latency: createHistogram(), publishing: true, lost: 0, onSettled: () => {} }
  await new Promise<void>((resolve) => {
    const sweep = setInterval(sweepStalled, STALL_MS / 4, w)
    const stop = setTimeout(() => {
      w.publishing = false
      if (w.waiting.size === 0) w.onSettled()
    }, seconds * 1000)
    w.onSettled = () => {
      clearInterval(sweep)
      clearTimeout(stop)
      resolve()
    }
    fanout = w
    for (let i = 0; i < inFlight; i++) publishNext(w)
  })
  fanout = undefined
  const problems = [...w.lost > 0 ? [`${w.lost} messages not received by every subscriber within ${STALL_MS / 1000} s`] : [], ...takeProblems()]
  return { operations: w.delivered, seconds: (performance.now() - began) / 1000, p50Ms: ms(w.latency, 50), p99Ms: ms(w.latency, 99), problems }
}

/** Opens idle sockets, one subject each, until `target` are open. */
async function openIdle (endpoint: WsEndpoint, target: number): Promise<WindowFigures> {
  const open = opener(endpoint)
  const began = performance.now()
  const from = idle.length
  idle.push(...await openMany(target - from, async (i) => await open(`bench-user-${from + i}`, () => {})))
  return { operations: target - from, seconds: (performance.now() - began) / 1000, p50Ms: Number.NaN, p99Ms: Number.NaN, problems: takeProblems() }
}

async function run (command: LoadCommand): Promise<LoadReply> {
  switch (command.type) {
    case 'setup': return await setup(command, command.subscribers, command.echoers)
    case 'echo': return { type: 'figures', figures: await echoWindow(command.seconds) }
    case 'fanout': return { type: 'figures', figures: await fanoutWindow(command.seconds, command.inFlight) }
    case 'open-idle': return { type: 'figures', figures: await openIdle(command, command.target) }
    case 'close-idle':
      for (const socket of idle) socket.close()
      idle = []
      return { type: 'done' }
  }
}

process.on('message', (command: LoadCommand) => {
  run(command).then(
    (reply) => process.send!(reply),
    (err: unknown) => process.send!({ type: 'error', message: (err as Error).message } satisfies LoadReply)
  )
})
process.on('disconnect', () => process.exit(0))
