// The slowloris client: TLS connections (ALPN http/1.1) that send a request's header section one byte a
// second and never finish it, each recording when the server cut it and what it answered. The pacing
// timers are the behaviour under test; each connection's header is finite and every timer stops when
// the connection closes or `destroy()` is called.

import { connect, type TLSSocket } from 'node:tls'
import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import type { Target } from './clients.ts'

// A header section that never ends: long enough to outlast any headersTimeout a run sets (one byte a second).
const HEADER = 'GET /health/live HTTP/1.1\r\nHost: localhost\r\nUser-Agent: keel-soak-slowloris\r\nX-Padding: ' + 'a'.repeat(200)
const BYTE_INTERVAL_MS = 1000
const CONNECT_TIMEOUT_MS = 10_000

export interface SlowConnection {
  /** When its first header byte was written (the server's headers clock starts at the request's first byte). */
  firstByteAt: number
  bytesSent: number
  /** When the server ended or closed it; undefined while open. */
  cutAt?: number
  /** The status line the server answered before cutting it (e.g. `HTTP/1.1 408 Request Timeout`). */
  answer?: string
  /** Resolves when it closed, whoever closed it. */
  closed: Promise<void>
  destroy: () => void
}

/** Opens one slow connection and starts its one-byte-a-second header. */
export async function openSlowConnection (target: Target): Promise<SlowConnection> {
  const url = new URL(target.url)
  const socket: TLSSocket = connect({ host: url.hostname, port: Number(url.port), ca: target.ca, servername: 'localhost', ALPNProtocols: ['http/1.1'] })
  socket.on('error', () => {})
  const timer = setTimeout(() => socket.destroy(new Error('TLS connect timed out')), CONNECT_TIMEOUT_MS)
  try {
    await once(socket, 'secureConnect')
  } finally {
    clearTimeout(timer)
  }
  let received = ''
  const conn: SlowConnection = {
    firstByteAt: performance.now(),
    bytesSent: 0,
    // Not events.once: it would reject on the reset the server's cut usually causes.
    closed: new Promise((resolve) => socket.once('close', () => {
      clearInterval(pacer)
      resolve()
    })),
    destroy: () => {
      clearInterval(pacer)
      socket.destroy()
    }
  }
  const cut = (): void => { conn.cutAt ??= performance.now() }
  socket.on('data', (chunk: Buffer) => {
    received += chunk.toString('latin1')
    conn.answer ??= /^[^\r\n]*\r\n/.test(received) ? received.slice(0, received.indexOf('\r\n')) : undefined
  })
  socket.on('end', cut)
  socket.on('close', cut)
  const sendByte = (): void => {
    if (conn.bytesSent >= HEADER.length || socket.destroyed) return clearInterval(pacer)
    socket.write(HEADER[conn.bytesSent++]!)
  }
  const pacer = setInterval(sendByte, BYTE_INTERVAL_MS)
  sendByte()
  return conn
}

/** Opens `count` slow connections, at most `parallel` TLS handshakes at a time; a failed one is left out. */
export async function openSlowConnections (target: Target, count: number, parallel = 25): Promise<{ connections: SlowConnection[], failed: string[] }> {
  const connections: SlowConnection[] = []
  const failed: string[] = []
  let next = 0
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, async () => {
    while (next < count) {
      next++
      try {
        connections.push(await openSlowConnection(target))
      } catch (err) {
        failed.push((err as Error).message)
      }
    }
  }))
  return { connections, failed }
}
