// The WebSocket benchmark's plumbing, end to end with tiny loads (real server processes, the real load
// generator process): each server speaks the protocol its client expects, over each transport the load
// dials (ws://, and Keel over TLS: wss:// and HTTP/2 streams), fan-out windows count every message at
// every subscriber, and the memory probe counts the sockets each server holds. A scripted server then
// checks what the load does when a handshake is refused or a socket is lost.

import { once } from 'node:events'
import { createServer } from 'node:http'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as h2connect } from 'node:http2'
import t, { type Test } from 'tap'
import { WebSocketServer, type WebSocket } from 'ws'
import { benchCertificate, startServer } from '../lib/server-process.ts'
import { startWsLoad, type Protocol, type WsEndpoint } from '../lib/ws-load.ts'
import type { WsTransport } from '../lib/ws-dialers.ts'
import { WS_PATH, memoryPath, type MemoryReport } from '../lib/ws-workload.ts'

const SUBSCRIBERS = 5
const ECHOERS = 2
const IDLE = 3
const COMMAND_TIMEOUT_MS = 20_000

const servers: Array<[string, string, Protocol]> = [
  ['Keel /ws', 'keel.ts', 'envelope'],
  ['the raw ws peer', 'ws-raw.ts', 'envelope'],
  ['the Socket.IO peer', 'socketio.ts', 'socketio']
]

/** Setup, echo, fan-out and idle sockets through `load` at `endpoint`, and the memory probe read by `read`. */
async function exerciseLoad (t: Test, endpoint: WsEndpoint, read: (path: string) => Promise<MemoryReport>): Promise<void> {
  const load = startWsLoad()
  t.teardown(load.stop)
  t.same(await load.run({ type: 'setup', ...endpoint, subscribers: SUBSCRIBERS, echoers: ECHOERS }, COMMAND_TIMEOUT_MS), { type: 'done' })
  const echo = await load.figures({ type: 'echo', seconds: 1 }, COMMAND_TIMEOUT_MS)
  t.ok(echo.operations > 0, 'round trips completed')
  t.ok(echo.p99Ms > 0, 'round-trip latency recorded')

  const fanout = await load.figures({ type: 'fanout', seconds: 1, inFlight: 2 }, COMMAND_TIMEOUT_MS)
  t.same(fanout.problems, [], 'no message went missing')
  t.ok(fanout.operations >= SUBSCRIBERS, 'messages were delivered')
  t.equal(fanout.operations % SUBSCRIBERS, 0, 'each message counted once at each subscriber')
  t.ok(fanout.p99Ms > 0, 'delivery latency recorded')

  const idle = await load.figures({ type: 'open-idle', ...endpoint, target: IDLE }, COMMAND_TIMEOUT_MS)
  t.equal(idle.operations, IDLE)
  const open = SUBSCRIBERS + 1 + ECHOERS + IDLE
  for (const path of [memoryPath('none'), memoryPath('full'), memoryPath('reduce')]) {
    const report = await read(path)
    t.equal(report.connections, open, `${path}: subscribers, publisher, echo and idle sockets`)
    t.ok(report.rss > report.heapUsed, `${path}: RSS and heap read`)
  }
  t.same(await load.run({ type: 'close-idle' }, COMMAND_TIMEOUT_MS), { type: 'done' })
}

for (const [name, script, protocol] of servers) {
  t.test(`${name}: echo acks come back, every fan-out message reaches every subscriber, the memory probe counts the sockets`, async (t) => {
    const server = await startServer({ script })
    t.teardown(server.stop)
    const url = protocol === 'socketio' ? `http://127.0.0.1:${server.port}` : `ws://127.0.0.1:${server.port}${WS_PATH}`
    await exerciseLoad(t, { protocol, url }, async (path) => await (await fetch(`http://127.0.0.1:${server.port}${path}`)).json() as MemoryReport)
  })
}

for (const transport of ['wss', 'h2', 'h2-each'] satisfies WsTransport[]) {
  t.test(`Keel over TLS, ${transport}: the same exchanges, and the memory probe counts the sockets`, async (t) => {
    const tls = await benchCertificate(mkdtempSync(join(tmpdir(), 'keel-bench-test-')))
    const server = await startServer({ script: 'keel.ts', options: { tls } })
    t.teardown(server.stop)
    // The probe over HTTP/2 on a session of its own (closed by the test), as any client of the TLS port.
    const probe = h2connect(`https://127.0.0.1:${server.port}`, { ca: readFileSync(tls.certFile), servername: 'localhost' })
    probe.on('error', () => {})
    t.teardown(() => probe.close())
    const read = async (path: string): Promise<MemoryReport> => {
      const stream = probe.request({ ':path': path })
      let body = ''
      stream.setEncoding('utf8')
      for await (const chunk of stream) body += chunk as string
      return JSON.parse(body) as MemoryReport
    }
    await exerciseLoad(t, { protocol: 'envelope', url: `wss://127.0.0.1:${server.port}${WS_PATH}`, transport, caFile: tls.certFile }, read)
  })
}

interface ScriptedServer { url: string, sockets: WebSocket[] }

/**
 * A bare envelope server on 127.0.0.1: `status(n)` answers the n-th upgrade with that HTTP status
 * instead of 101 (undefined: accept it and send connection:ready). Closed when the test ends.
 */
async function scriptedServer (t: Test, status: (n: number) => number | undefined): Promise<ScriptedServer> {
  const wss = new WebSocketServer({ noServer: true })
  const sockets: WebSocket[] = []
  let upgrades = 0
  const server = createServer()
  server.on('upgrade', (req, socket, head) => {
    const refused = status(++upgrades)
    if (refused !== undefined) {
      socket.end(`HTTP/1.1 ${refused} Refused\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`)
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.push(ws)
      ws.send(JSON.stringify({ event: 'connection:ready', data: { connectionId: String(upgrades), user: { sub: 'bench', scopes: [], exp: 0 } } }))
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    for (const ws of sockets) ws.terminate()
    server.close()
  })
  const { port } = server.address() as { port: number }
  return { url: `ws://127.0.0.1:${port}${WS_PATH}`, sockets }
}

t.test('an upgrade answered 503 is tried again and counted; any other refusal fails the command with its status', async (t) => {
  const load = startWsLoad()
  t.teardown(load.stop)
  const shedding = await scriptedServer(t, (n) => n === 1 ? 503 : undefined)
  const opened = await load.figures({ type: 'open-idle', protocol: 'envelope', url: shedding.url, target: 1 }, COMMAND_TIMEOUT_MS)
  t.equal(opened.operations, 1, 'the second try opened the socket')
  t.match(opened.problems, [/^1 upgrades answered 503/])

  const refusing = await scriptedServer(t, () => 401)
  await t.rejects(load.run({ type: 'open-idle', protocol: 'envelope', url: refusing.url, target: 2 }, COMMAND_TIMEOUT_MS), /the upgrade was answered 401/)
})

t.test('a socket the server drops is reported as a problem of the next window', async (t) => {
  const load = startWsLoad()
  t.teardown(load.stop)
  const server = await scriptedServer(t, () => undefined)
  const { url } = server
  t.equal((await load.figures({ type: 'open-idle', protocol: 'envelope', url, target: 2 }, COMMAND_TIMEOUT_MS)).operations, 2)
  server.sockets[0]!.close(1011, 'dropped by the test')
  // The drop reaches the load over its socket, the next command over IPC: ask (bounded) until it has seen it.
  let problems: string[] = []
  for (let asked = 0; asked < 100 && problems.length === 0; asked++) {
    problems = (await load.figures({ type: 'open-idle', protocol: 'envelope', url, target: 2 }, COMMAND_TIMEOUT_MS)).problems
  }
  t.same(problems, ['1 sockets closed without the load closing them (not reconnected)'])
  t.same(await load.run({ type: 'close-idle' }, COMMAND_TIMEOUT_MS), { type: 'done' })
})
