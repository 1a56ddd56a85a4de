// The WebSocket benchmark's plumbing, end to end with tiny loads (real server processes, the real load
// generator process): each server speaks the protocol its client expects, fan-out windows count every
// message at every subscriber, and the memory probe counts the sockets each server holds.

import t from 'tap'
import { startServer } from '../../bench/lib/server-process.ts'
import { startWsLoad, type Protocol } from '../../bench/lib/ws-load.ts'
import { WS_PATH, memoryPath, type MemoryReport } from '../../bench/lib/ws-workload.ts'

const SUBSCRIBERS = 5
const ECHOERS = 2
const IDLE = 3
const COMMAND_TIMEOUT_MS = 20_000

const servers: Array<[string, string, Protocol]> = [
  ['Keel /ws', 'keel.ts', 'envelope'],
  ['the raw ws peer', 'ws-raw.ts', 'envelope'],
  ['the Socket.IO peer', 'socketio.ts', 'socketio']
]

for (const [name, script, protocol] of servers) {
  t.test(`${name}: echo acks come back, every fan-out message reaches every subscriber, the memory probe counts the sockets`, async (t) => {
    const server = await startServer({ script })
    t.teardown(server.stop)
    const load = startWsLoad()
    t.teardown(load.stop)
    const url = protocol === 'socketio' ? `http://127.0.0.1:${server.port}` : `ws://127.0.0.1:${server.port}${WS_PATH}`

    t.same(await load.run({ type: 'setup', protocol, url, subscribers: SUBSCRIBERS, echoers: ECHOERS }, COMMAND_TIMEOUT_MS), { type: 'done' })
    const echo = await load.figures({ type: 'echo', seconds: 1 }, COMMAND_TIMEOUT_MS)
    t.ok(echo.operations > 0, 'round trips completed')
    t.ok(echo.p99Ms > 0, 'round-trip latency recorded')

    const fanout = await load.figures({ type: 'fanout', seconds: 1, inFlight: 2 }, COMMAND_TIMEOUT_MS)
    t.same(fanout.problems, [], 'no message went missing')
    t.ok(fanout.operations >= SUBSCRIBERS, 'messages were delivered')
    t.equal(fanout.operations % SUBSCRIBERS, 0, 'each message counted once at each subscriber')
    t.ok(fanout.p99Ms > 0, 'delivery latency recorded')

    const idle = await load.figures({ type: 'open-idle', protocol, url, target: IDLE }, COMMAND_TIMEOUT_MS)
    t.equal(idle.operations, IDLE)
    const read = async (path: string): Promise<MemoryReport> => await (await fetch(`http://127.0.0.1:${server.port}${path}`)).json() as MemoryReport
    const open = SUBSCRIBERS + 1 + ECHOERS + IDLE
    for (const path of [memoryPath('none'), memoryPath('full'), memoryPath('reduce')]) {
      const report = await read(path)
      t.equal(report.connections, open, `${path}: subscribers, publisher, echo and idle sockets`)
      t.ok(report.rss > report.heapUsed, `${path}: RSS and heap read`)
    }
    t.same(await load.run({ type: 'close-idle' }, COMMAND_TIMEOUT_MS), { type: 'done' })
  })
}
