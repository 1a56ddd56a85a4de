// Connection limits on real sockets: a connection that never completes TLS is closed after the
// handshake timeout, one client address cannot hold more than its share, the total is capped, the
// metrics show open connections and refusals, and an accept error never takes the server down.

import t, { type Test } from 'tap'
import { connect as netConnect, type Socket } from 'node:net'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { clientKey } from '../../core/connection-limits.ts'
import { loadConfig } from '../../core/config.ts'
import { listen, tempDir, type Listening } from '../helpers/app.ts'
import { h1request } from '../helpers/http.ts'
import { scrapeMetrics } from '../helpers/metrics.ts'

const WAIT_MS = 5000

/**
 * Opens a TLS connection from `localAddress` (any 127/8 address is loopback on Linux: a second client
 * address without a second interface). Resolves with the socket once the handshake is done, or with
 * 'refused' when the server closes it first.
 */
async function tlsClient (server: Listening, localAddress = '127.0.0.1'): Promise<TLSSocket | 'refused'> {
  const tcp = netConnect({ host: '127.0.0.1', port: server.port, localAddress })
  const socket = tlsConnect({ socket: tcp, ca: server.ca, servername: 'localhost', ALPNProtocols: ['http/1.1'] })
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no handshake nor close within ${WAIT_MS} ms`)) }, WAIT_MS)
    socket.once('secureConnect', () => { clearTimeout(timer); resolve(socket) })
    socket.once('error', () => {})
    socket.once('close', () => { clearTimeout(timer); resolve('refused') })
  })
}

/** Opens `n` connections (each must get through) and closes them when the test ends. */
async function openConnections (t: Test, server: Listening, n: number, localAddress?: string): Promise<TLSSocket[]> {
  const sockets: TLSSocket[] = []
  t.teardown(() => { for (const s of sockets) s.destroy() })
  for (let i = 0; i < n; i++) {
    const socket = await tlsClient(server, localAddress)
    if (socket === 'refused') throw new Error(`connection ${i + 1} of ${n} was refused`)
    sockets.push(socket)
  }
  return sockets
}

/** Resolves once `socket` is closed; rejects after `timeoutMs`. */
async function closed (socket: Socket, timeoutMs = WAIT_MS): Promise<void> {
  if (socket.closed) return
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket still open after ${timeoutMs} ms`)), timeoutMs)
    socket.once('close', () => { clearTimeout(timer); resolve() })
  })
}

/** One sample's value from the app's metrics text (NaN when the series is absent). */
async function metric (server: Listening, series: string): Promise<number> {
  const text = await scrapeMetrics(server.app)
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? Number.NaN : Number(line.slice(series.length + 1))
}

/** Polls (bounded) until the metric reads `expected`: the server counts a close when it sees it. */
async function metricBecomes (server: Listening, series: string, expected: number): Promise<number> {
  const deadline = Date.now() + WAIT_MS
  let value = await metric(server, series)
  while (value !== expected && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    value = await metric(server, series)
  }
  return value
}

t.test('a connection that sends nothing is closed after TLS_HANDSHAKE_TIMEOUT_MS', async (t) => {
  const server = await listen(t, { TLS_HANDSHAKE_TIMEOUT_MS: '1000' })
  const started = Date.now()
  const idle = netConnect({ host: '127.0.0.1', port: server.port })
  idle.on('error', () => {})
  t.teardown(() => idle.destroy())
  await closed(idle)
  const after = Date.now() - started
  t.ok(after >= 900 && after < 3000, `closed by the server after ${after} ms`)
  t.equal(await metricBecomes(server, 'tls_handshake_timeouts_total', 1), 1, 'the timeout is counted')
})

t.test('a client that completes the handshake in time is not affected by the handshake timeout', async (t) => {
  const server = await listen(t, { TLS_HANDSHAKE_TIMEOUT_MS: '1000' })
  const res = await h1request(`${server.url}/health/live`, { ca: server.ca })
  t.equal(res.status, 200)
})

t.test('one address may hold MAX_CONNECTIONS_PER_IP connections; the next is refused, other addresses still connect', async (t) => {
  const server = await listen(t, { MAX_CONNECTIONS_PER_IP: '3' })
  const mine = await openConnections(t, server, 3)
  t.equal(await tlsClient(server), 'refused', 'the 4th from 127.0.0.1 is refused')
  const other = await openConnections(t, server, 1, '127.0.0.2')
  t.equal(other.length, 1, 'another address still gets through')
  t.equal(await metricBecomes(server, 'tcp_connections', 4), 4, 'open connections are shown')
  t.equal(await metric(server, 'tcp_connections_refused_total{reason="max_connections_per_ip"}'), 1, 'the refusal is counted')

  mine[0]!.destroy()
  t.equal(await metricBecomes(server, 'tcp_connections', 3), 3, 'a closed connection is no longer counted')
  const again = await tlsClient(server)
  t.not(again, 'refused', 'once one closes, the address may connect again')
  if (again !== 'refused') again.destroy()
})

t.test('MAX_CONNECTIONS caps the total across addresses', async (t) => {
  const server = await listen(t, { MAX_CONNECTIONS: '3', MAX_CONNECTIONS_PER_IP: '0' })
  await openConnections(t, server, 2)
  await openConnections(t, server, 1, '127.0.0.2')
  t.equal(await tlsClient(server, '127.0.0.3'), 'refused', 'a 4th connection from a fresh address is refused')
  t.equal(await metric(server, 'tcp_connections_refused_total{reason="max_connections"}'), 1, 'the refusal is counted')
  t.equal(await metric(server, 'tcp_connections'), 3)
})

t.test('with TLS=off the caps hold on the cleartext listener too', async (t) => {
  const server = await listen(t, { TLS: 'off', MAX_CONNECTIONS_PER_IP: '1' })
  const first = netConnect({ host: '127.0.0.1', port: server.port })
  t.teardown(() => first.destroy())
  await new Promise((resolve) => first.once('connect', resolve))
  t.equal(await metricBecomes(server, 'tcp_connections', 1), 1)
  const second = netConnect({ host: '127.0.0.1', port: server.port })
  second.on('error', () => {})
  t.teardown(() => second.destroy())
  await closed(second)
  t.pass('the second connection from the same address is closed by the server')
  t.equal(await metric(server, 'tcp_connections_refused_total{reason="max_connections_per_ip"}'), 1)
})

t.test('an accept error (EMFILE) is logged and counted, and the server keeps serving', async (t) => {
  const server = await listen(t)
  const err = Object.assign(new Error('accept EMFILE'), { code: 'EMFILE', errno: -24, syscall: 'accept' })
  server.app.server.emit('error', err)
  await server.logs.waitFor(/cannot accept a connection/)
  t.equal(await metric(server, 'tcp_connections_refused_total{reason="accept_error"}'), 1)
  const res = await h1request(`${server.url}/health/live`, { ca: server.ca })
  t.equal(res.status, 200, 'still serving')
})

t.test('connections are counted per IPv4 address and per IPv6 /64', async (t) => {
  t.equal(clientKey('203.0.113.7'), '203.0.113.7')
  t.equal(clientKey('::ffff:203.0.113.7'), '203.0.113.7', 'an IPv4-mapped address is its IPv4 client')
  t.equal(clientKey('2001:db8:1:2:aaaa::1'), clientKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'), 'one /64 is one client')
  t.equal(clientKey('2001:db8:1:2::1'), '2001:db8:1:2::/64')
  t.not(clientKey('2001:db8:1:2::1'), clientKey('2001:db8:1:3::1'), 'another /64 is another client')
  t.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64', 'a compressed address is expanded first')
  t.equal(clientKey('::1'), '0:0:0:0::/64')
  t.equal(clientKey('fe80::1%eth0'), 'fe80:0:0:0::/64', 'the zone is not part of the address')
  t.equal(clientKey('64:ff9b::192.0.2.1'), '64:ff9b:0:0::/64', 'an embedded IPv4 tail counts as two groups')
})

t.test('defaults: a 5 s handshake, 10,000 connections, 256 per address; a bad value stops the start naming it', async (t) => {
  const config = loadConfig({}, tempDir())
  t.match(config.http, { tlsHandshakeTimeout: 5000, maxConnections: 10_000, maxConnectionsPerIp: 256 })
  for (const [variable, value] of [['TLS_HANDSHAKE_TIMEOUT_MS', '10'], ['MAX_CONNECTIONS', '-1'], ['MAX_CONNECTIONS_PER_IP', 'many']]) {
    t.throws(() => loadConfig({ [variable!]: value }, tempDir()), { name: 'ConfigError', variable, message: new RegExp(`${variable}.*expected`) }, `${variable}=${value}`)
  }
})
