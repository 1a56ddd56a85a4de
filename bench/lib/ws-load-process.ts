// The WebSocket load generator: a separate process (the harness pins it to the load CPU) holding up to
// tens of thousands of client sockets, running one command at a time sent by bench/lib/ws-load.ts over
// IPC — open the fan-out sockets, echo round trips, a fan-out window, open or close idle sockets — and
// answering with figures. Two client kinds: Keel's envelope protocol over `ws` (Keel and the raw ws
// peer speak it) and socket.io-client. Every wait is bounded; a command never outlives its deadline.

import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { WebSocket, type RawData } from 'ws'
import { io, type Socket as IoSocket } from 'socket.io-client'
import { BENCH_ROOM, benchWsToken } from './ws-workload.ts'
import type { LoadCommand, LoadReply, Protocol, WindowFigures } from './ws-load.ts'

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

interface RoomMessage { payload: { n: number, sentAt: number } }

/** A client socket of either kind, as the commands use it. */
interface BenchSocket {
  /** Sends an event and resolves with the server's acknowledgement. */
  request: (event: string, data: unknown) => Promise<unknown>
  /** Sends an event without asking for an acknowledgement. */
  emit: (event: string, data: unknown) => void
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

function timeout (what: string): Error {
  return new Error(`${what} took more than ${REQUEST_TIMEOUT_MS / 1000} s`)
}

/** Keel's protocol (contract §4): JSON envelopes, `id` → one `ack`, `connection:ready` on open. */
function openEnvelopeSocket (url: string): Opener {
  return (sub, onRoomMessage) => new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${benchWsToken(sub)}` }, perMessageDeflate: false, skipUTF8Validation: true })
    const pending = new Map<string, { resolve: (data: unknown) => void, reject: (err: Error) => void }>()
    let nextId = 0
    const socket: BenchSocket = {
      request: (event, data) => new Promise((resolve, reject) => {
        const id = String(++nextId)
        pending.set(id, { resolve, reject })
        ws.send(JSON.stringify({ event, data, id }))
      }),
      emit: (event, data) => ws.send(JSON.stringify({ event, data })),
      close: () => ws.terminate()
    }
    const timer = setTimeout(() => {
      ws.terminate()
      reject(timeout('opening a WebSocket'))
    }, REQUEST_TIMEOUT_MS)
    ws.on('message', (raw: RawData) => {
      const message = JSON.parse(raw.toString()) as { event: string, id?: string, data: unknown }
      if (message.event === 'room:message') {
        onRoomMessage(message.data as RoomMessage)
      } else if (message.event === 'connection:ready') {
        clearTimeout(timer)
        resolve(socket)
      } else if (message.id !== undefined) {
        const waiter = pending.get(message.id)
        pending.delete(message.id)
        if (message.event === 'ack') waiter?.resolve(message.data)
        else waiter?.reject(new Error(`${message.event}: ${JSON.stringify(message.data)}`))
      }
    })
    ws.once('unexpected-response', (_req, res) => {
      clearTimeout(timer)
      reject(new RefusedUpgrade(res.statusCode ?? 0))
    })
    ws.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    ws.once('close', () => {
      for (const waiter of pending.values()) waiter.reject(new Error('the socket closed'))
      pending.clear()
    })
  })
}

/** Socket.IO: acknowledgements are callbacks; the token travels in the handshake's `auth`. */
function openSocketIo (origin: string): Opener {
  return (sub, onRoomMessage) => new Promise((resolve, reject) => {
    const client: IoSocket = io(origin, { transports: ['websocket'], auth: { token: benchWsToken(sub) }, reconnection: false, forceNew: true, timeout: REQUEST_TIMEOUT_MS })
    client.on('room:message', onRoomMessage)
    client.once('connect', () => resolve({
      request: async (event, data) => await client.timeout(REQUEST_TIMEOUT_MS).emitWithAck(event, data) as unknown,
      emit: (event, data) => { client.emit(event, data) },
      close: () => { client.disconnect() }
    }))
    client.once('connect_error', (err) => {
      client.disconnect()
      reject(err)
    })
  })
}

function opener (protocol: Protocol, url: string): Opener {
  return protocol === 'socketio' ? openSocketIo(url) : openEnvelopeSocket(url)
}

/** Upgrades answered 503 and tried again since the last `takeShedProblems`. */
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

function takeShedProblems (): string[] {
  const problems = shed === 0 ? [] : [`${shed} upgrades answered 503 (the server was shedding load) and tried again`]
  shed = 0
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
  w.delivered++
  recordSince(w.latency, message.payload.sentAt)
  const entry = w.waiting.get(message.payload.n)
  if (entry === undefined || --entry.left > 0) return
  w.waiting.delete(message.payload.n)
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
  rooms!.publisher.emit('room:publish', { room: BENCH_ROOM, payload: { n, sentAt, text: CHAT_TEXT } })
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

async function setup (protocol: Protocol, url: string, subscribers: number, echoers: number): Promise<LoadReply> {
  const open = opener(protocol, url)
  const ignore = (): void => {}
  // One subject per role: presence (Keel's open rooms track it) changes once per role, not once per socket.
  const subs = await openMany(subscribers, async () => await open('bench-subscriber', onRoomMessage))
  await Promise.all(subs.map((s) => s.request('room:join', { room: BENCH_ROOM })))
  const publisher = await open('bench-publisher', ignore)
  await publisher.request('room:join', { room: BENCH_ROOM })
  const echo = await openMany(echoers, async () => await open('bench-echo', ignore))
  rooms = { publisher, subscribers: subs, echoers: echo }
  // Upgrades shed while setting up delayed nothing that is measured.
  takeShedProblems()
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
      await socket.request('ping', null)
      recordSince(latency, sent)
      roundTrips++
    }
  }))
  return { operations: roundTrips, seconds: (performance.now() - began) / 1000, p50Ms: ms(latency, 50), p99Ms: ms(latency, 99), problems: [] }
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
  const problems = w.lost > 0 ? [`${w.lost} messages not received by every subscriber within ${STALL_MS / 1000} s`] : []
  return { operations: w.delivered, seconds: (performance.now() - began) / 1000, p50Ms: ms(w.latency, 50), p99Ms: ms(w.latency, 99), problems }
}

/** Opens idle sockets, one subject each, until `target` are open. */
async function openIdle (protocol: Protocol, url: string, target: number): Promise<WindowFigures> {
  const open = opener(protocol, url)
  const began = performance.now()
  const from = idle.length
  idle.push(...await openMany(target - from, async (i) => await open(`bench-user-${from + i}`, () => {})))
  return { operations: target - from, seconds: (performance.now() - began) / 1000, p50Ms: Number.NaN, p99Ms: Number.NaN, problems: takeShedProblems() }
}

async function run (command: LoadCommand): Promise<LoadReply> {
  switch (command.type) {
    case 'setup': return await setup(command.protocol, command.url, command.subscribers, command.echoers)
    case 'echo': return { type: 'figures', figures: await echoWindow(command.seconds) }
    case 'fanout': return { type: 'figures', figures: await fanoutWindow(command.seconds, command.inFlight) }
    case 'open-idle': return { type: 'figures', figures: await openIdle(command.protocol, command.url, command.target) }
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
