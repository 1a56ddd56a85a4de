// Running out of file descriptors is never fatal: the real entry point under a low open-files limit,
// flooded with idle connections that never start TLS, stays up while saturated and serves a normal
// client once the idle connections go (closed by their client, or by the handshake timeout).

import t, { type Test } from 'tap'
import { connect as netConnect, type Socket } from 'node:net'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnServer, tempDir, waitListening, waitOutput, type Spawned } from '../helpers/app.ts'
import { h1request, type Response } from '../helpers/http.ts'

// Node and the app hold about 25 descriptors at rest; 64 leaves ~40 for connections, and the flood
// opens more than twice that.
const OPEN_FILES_LIMIT = 64
const IDLE_CONNECTIONS = 100
const WAIT_MS = 10_000

/** Opens `n` raw TCP connections that never send a byte; resolves once each is connected or closed. */
async function idleFlood (t: Test, port: number, n: number): Promise<Socket[]> {
  const sockets: Socket[] = []
  t.teardown(() => { for (const s of sockets) s.destroy() })
  await Promise.all(Array.from({ length: n }, async () => {
    const socket = netConnect({ host: '127.0.0.1', port })
    socket.on('error', () => {})
    sockets.push(socket)
    await new Promise((resolve) => { socket.once('connect', resolve); socket.once('close', resolve) })
  }))
  return sockets
}

/** Retries (bounded) an HTTPS request until it is answered: the server frees descriptors as it sees closes. */
async function answered (server: Spawned, ca: Buffer): Promise<Response> {
  const deadline = Date.now() + WAIT_MS
  let last: unknown
  while (Date.now() < deadline) {
    try {
      return await h1request(`${server.url}/health/live`, { ca, timeout: 2000 })
    } catch (err) {
      last = err
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  throw new Error(`no answer within ${WAIT_MS} ms: ${String(last)}`)
}

async function saturatedServer (t: Test, env: Record<string, string>): Promise<{ server: Spawned, ca: Buffer, idle: Socket[] }> {
  const cwd = tempDir()
  // The caps are off: the open-files limit itself is what the flood runs into.
  const server = await waitListening(spawnServer(t, { MAX_CONNECTIONS: '0', MAX_CONNECTIONS_PER_IP: '0', ...env }, cwd, { openFilesLimit: OPEN_FILES_LIMIT }))
  const ca = readFileSync(join(cwd, 'certs', 'dev-cert.pem'))
  const idle = await idleFlood(t, server.port, IDLE_CONNECTIONS)
  // The load-shedding sampler reads memory once a second, through a file under /proc: its failure,
  // logged, shows the process went through a sample with every descriptor taken.
  await waitOutput(server, /cannot read memory usage/, WAIT_MS)
  return { server, ca, idle }
}

t.test('idle connections past the open-files limit do not stop the server; it serves again once they close', async (t) => {
  const { server, ca, idle } = await saturatedServer(t, { TLS_HANDSHAKE_TIMEOUT_MS: '120000' })
  t.equal(server.proc.exitCode, null, 'still running while saturated')
  for (const socket of idle) socket.destroy()
  const res = await answered(server, ca)
  t.equal(res.status, 200, 'a normal client is served once the idle connections are gone')
  t.equal(server.proc.exitCode, null)
  t.notMatch(server.output(), /"level":60/, 'nothing was fatal')
})

t.test('idle connections that hold every descriptor are closed by the handshake timeout, and the server recovers by itself', async (t) => {
  const { server, ca } = await saturatedServer(t, { TLS_HANDSHAKE_TIMEOUT_MS: '3000' })
  const res = await answered(server, ca)
  t.equal(res.status, 200, 'served while the flood\'s sockets are still open on the client side')
  t.equal(server.proc.exitCode, null)
})
