// Who may hold a connection: a cap on open connections in total (Node's `server.maxConnections`,
// checked before the connection reaches TLS) and per client address, and accept errors (EMFILE when
// descriptors run out) that are logged and counted, never fatal. A refused connection is closed at
// once, before TLS or HTTP work is spent on it. Metrics: open connections, refusals by reason, TLS
// handshakes that timed out (TLS_HANDSHAKE_TIMEOUT_MS, set on the server in core/server-options.ts).

import { isIPv4, type Server as NetServer, type Socket } from 'node:net'
import fp from 'fastify-plugin'
import { Counter, Gauge } from 'prom-client'

export interface ConnectionLimitsOptions {
  /** Open connections the listener keeps; 0 = no cap. */
  maxConnections: number
  /** Open connections per client address (IPv6: per /64); 0 = no cap. */
  maxConnectionsPerIp: number
}

type RefusalReason = 'max_connections' | 'max_connections_per_ip' | 'accept_error'

// At most one warning per reason every 10 s: a flood of refusals must not also flood the logs.
const WARN_INTERVAL_MS = 10_000

/**
 * The key a client's connections are counted under: its IPv4 address, or the /64 of its IPv6 address.
 * A host or a home network is routinely given a whole /64, so counting single IPv6 addresses would let
 * one client take every slot.
 */
export function clientKey (address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped !== null) return mapped[1]!
  if (isIPv4(address)) return address
  const [head = '', tail] = address.split('%')[0]!.split('::')
  const groups = head === '' ? [] : head.split(':')
  if (tail !== undefined) {
    const after = tail === '' ? [] : tail.split(':')
    // An embedded IPv4 tail stands for two groups; only the first four groups matter here.
    const width = after.reduce((n, g) => n + (g.includes('.') ? 2 : 1), 0)
    groups.push(...Array<string>(Math.max(0, 8 - groups.length - width)).fill('0'), ...after)
  }
  return `${groups.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(':')}::/64`
}

export default fp<ConnectionLimitsOptions>(async function connectionLimits (fastify, opts) {
  // Both raw servers (Http2SecureServer, http.Server) are net.Servers: that is where connections arrive.
  const server = fastify.server as unknown as NetServer
  const open = new Gauge({ name: 'tcp_connections', help: 'Open TCP connections to the API listener', registers: [fastify.metrics] })
  const refused = new Counter({
    name: 'tcp_connections_refused_total',
    help: 'TCP connections closed at accept: over MAX_CONNECTIONS, over MAX_CONNECTIONS_PER_IP, or an accept error (no free descriptor)',
    labelNames: ['reason'] as const,
    registers: [fastify.metrics]
  })
  const handshakeTimeouts = new Counter({
    name: 'tls_handshake_timeouts_total',
    help: 'Connections closed for not completing the TLS handshake within TLS_HANDSHAKE_TIMEOUT_MS',
    registers: [fastify.metrics]
  })

  const lastWarning = new Map<RefusalReason, number>()
  function refuse (reason: RefusalReason, details: Record<string, unknown>): void {
    refused.inc({ reason })
    const now = Date.now()
    if (now - (lastWarning.get(reason) ?? 0) < WARN_INTERVAL_MS) return
    lastWarning.set(reason, now)
    fastify.log.warn({ reason, ...details }, reason === 'accept_error'
      ? 'cannot accept a connection; new connections are refused until descriptors free up'
      : 'refusing connections over the cap')
  }

  const perClient = new Map<string, number>()
  function admit (socket: Socket): void {
    const address = socket.remoteAddress
    // Undefined once the peer has gone: nothing to count, and the socket is closing anyway.
    if (address === undefined) return
    const key = clientKey(address)
    const held = perClient.get(key) ?? 0
    if (opts.maxConnectionsPerIp > 0 && held >= opts.maxConnectionsPerIp) {
      socket.destroy()
      refuse('max_connections_per_ip', { client: key, limit: opts.maxConnectionsPerIp })
      return
    }
    perClient.set(key, held + 1)
    open.inc()
    socket.once('close', () => {
      const left = (perClient.get(key) ?? 1) - 1
      if (left === 0) perClient.delete(key)
      else perClient.set(key, left)
      open.dec()
    })
  }
  // Prepended: it runs before the server's own listener wraps the socket in TLS or an HTTP parser.
  server.prependListener('connection', admit)

  if (opts.maxConnections > 0) server.maxConnections = opts.maxConnections
  // Node emits 'drop' for a connection it closed because maxConnections was reached.
  server.on('drop', () => refuse('max_connections', { limit: opts.maxConnections }))

  server.on('tlsClientError', (err: NodeJS.ErrnoException) => {
    if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') handshakeTimeouts.inc()
  })

  // Once listening, an 'error' on the server is a failed accept (EMFILE/ENFILE when descriptors run out,
  // after libuv has already closed the pending connections): the listener itself goes on. Without a
  // handler Node would throw it and the process would exit. Added only after listen, so a listen
  // error (EADDRINUSE) still rejects `listen()`.
  server.once('listening', () => {
    server.on('error', (err: NodeJS.ErrnoException) => refuse('accept_error', { code: err.code, syscall: err.syscall }))
  })
}, { name: 'keel-connection-limits', dependencies: ['keel-metrics'] })
