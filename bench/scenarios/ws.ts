// The WebSocket scenarios: 5, echo round trips and room fan-out to 1,000 subscribers, and 6,
// memory per idle authenticated connection — Keel's /ws against a naive raw `ws` server and Socket.IO 4
// (bench/servers/ws-raw.ts, socketio.ts) over cleartext ws:// (Keel with TLS=off), and Keel itself over
// TLS: wss:// on HTTP/1.1 and WebSockets on HTTP/2 streams (RFC 8441). The load comes from a separate
// process (bench/lib/ws-load-process.ts, transports in bench/lib/ws-dialers.ts) on the load CPU.

import { formatNumber } from '../lib/report.ts'
import { CPU_PER_OP, RATE, type MetricSpec, type Scenario } from '../lib/scenario.ts'
import { checkGoal, ratio, type Goal } from '../lib/stats.ts'
import { MARGINAL_KIB, REDUCED_KIB, ROOM_LOAD, idleMemoryContender, kibKey, roomsContender, type WsContenderSpec } from '../lib/ws-contender.ts'
import { profileFanout } from '../lib/ws-profiling.ts'
import { BENCH_ROOM } from '../lib/ws-workload.ts'

const keel: WsContenderSpec = { id: 'keel', label: 'Keel /ws', script: 'keel.ts', protocol: 'envelope' }
const rawWs: WsContenderSpec = { id: 'ws-raw', label: 'raw ws (naive send loop)', script: 'ws-raw.ts', protocol: 'envelope' }
const socketIo: WsContenderSpec = { id: 'socketio', label: 'Socket.IO 4', script: 'socketio.ts', protocol: 'socketio' }
// Keel over TLS, as it serves browsers: wss:// upgrades, and extended CONNECTs on HTTP/2 streams.
const keelWss: WsContenderSpec = { ...keel, id: 'keel-wss', label: 'Keel /ws, wss:// (HTTP/1.1, TLS)', transport: 'wss' }
const keelH2: WsContenderSpec = { ...keel, id: 'keel-h2', label: 'Keel /ws, HTTP/2 streams (100 a connection)', transport: 'h2' }
const keelH2Each: WsContenderSpec = { ...keel, id: 'keel-h2-each', label: 'Keel /ws, HTTP/2 (one connection each)', transport: 'h2-each' }

const FANOUT_CPU_GOAL_US = 4
/** Keel's CPU per delivery ÷ Socket.IO's. */
const cpuAgainstSocketIo: Goal = { contender: 'keel', against: 'socketio', atMost: 0.5, text: 'fan-out server CPU per delivery ≤ 0.5× Socket.IO' }

const ROOM_METRICS: MetricSpec[] = [
  { key: RATE, label: 'deliveries/s', digits: 0 },
  { key: 'p99Ms', label: 'delivery p99 ms', digits: 1 },
  { key: CPU_PER_OP, label: 'server CPU µs/delivery', digits: 2 },
  { key: 'echoRate', label: 'echo round trips/s', digits: 0 },
  { key: 'echoP99Ms', label: 'echo p99 ms', digits: 1 },
  { key: 'echoCpuUs', label: 'server CPU µs/echo', digits: 1 }
]

const fanout: Scenario = {
  name: 'ws-fanout',
  number: '5',
  title: `WebSocket echo round trips and room fan-out to ${ROOM_LOAD.subscribers.toLocaleString('en-US')} subscribers — cleartext ws://, and Keel over TLS (HTTP/1.1 and HTTP/2)`,
  describe: [
    'Every server speaks the same room protocol over cleartext ws:// on 127.0.0.1 (Keel built with TLS=off, as it runs behind a TLS-terminating proxy). ' +
    'Keel: `/ws` as production builds it (its envelope protocol: `room:join`, `room:publish` → the other members get `room:message`, `ping` with an `id` → `ack`), ' +
    'message budget and per-user socket cap raised out of reach (still counted on every message), room `' + BENCH_ROOM + '` under its open-room policy. ' +
    'Raw ws: the same envelopes, served the naive way — the room message serialized once, then `ws.send(text)` per member. ' +
    'Socket.IO 4: `socket.to(room).emit(…)` (encoded and framed once by its adapter), WebSocket transport only, acks as callbacks. ' +
    'Every server verifies an HS256 token on the handshake. ' +
    'Keel over TLS (TLS 1.3, the bench\'s self-signed certificate) is measured twice more: wss:// upgrades over HTTP/1.1, one TLS connection per socket; ' +
    'and WebSockets on HTTP/2 streams (RFC 8441 extended CONNECT), as a browser opens them on its page\'s connection — here as many streams per connection ' +
    'as Keel\'s SETTINGS allow (HTTP2_MAX_CONCURRENT_STREAMS, 100 by default), so the 1,000 subscribers share 10 connections.',
    `Load: one separate process on the load CPU holding ${ROOM_LOAD.subscribers.toLocaleString('en-US')} subscriber sockets (one subject, so joining pushes one presence event, not one per socket), ` +
    `one publisher and ${ROOM_LOAD.echoers} echo sockets — Keel's typed client (client/keel-client.ts, no reconnects, token in the Authorization header) for Keel and the raw ws peer, socket.io-client for Socket.IO. Each window: first ${Math.round(ROOM_LOAD.echoShare * 100)} % echo — each echo socket keeps one \`ping\` in flight; ` +
    `then fan-out — a closed loop with ${ROOM_LOAD.inFlight} messages (~200-byte frames) in flight, the next sent when one has reached every subscriber. ` +
    'The publisher stamps each message; subscribers (same process, same clock) record the delivery latency.',
    'Server CPU per delivery / per echo: the server process\'s user + system time (/proc) over that part of the window ÷ what it delivered. ' +
    'On 2 cores the receiving clients cap the delivery rate, so this, not deliveries/s, is the figure that separates the servers.',
    'Most of a delivery\'s cost is the kernel\'s: one write system call per socket. Keel writes one shared frame per message and holds each socket\'s ' +
    'writes until the end of the tick (realtime/transports/ws-connection.ts), so the publishes read together from the publisher\'s socket reach each subscriber in one ' +
    'system call; a room that gets one message at a time pays one call per delivery, like the peers.'
  ],
  contenders: [roomsContender(keel), roomsContender(rawWs), roomsContender(socketIo), roomsContender(keelWss), roomsContender(keelH2)],
  baselines: ['ws-raw', 'socketio'],
  metrics: ROOM_METRICS,
  goals: [{ contender: 'keel', metric: CPU_PER_OP, atMost: FANOUT_CPU_GOAL_US, text: `fan-out server CPU per delivery ≤ ${FANOUT_CPU_GOAL_US} µs` }],
  references: ['fan-out to 1,000 subscribers, server CPU per delivered message: naive `ws` send loop ~9.5 µs, Socket.IO ~8.0 µs'],
  followUp: async (result, settings) => {
    // The harness's ratio goals compare throughput; this one is on CPU per delivery, so it is checked here.
    const cpu = (id: string): number => result.rows.find((r) => r.id === id)?.medians[CPU_PER_OP] ?? Number.NaN
    result.goals.push(checkGoal(cpuAgainstSocketIo, ratio(cpu(cpuAgainstSocketIo.contender), cpu(cpuAgainstSocketIo.against!))))
    const us = (v: number | undefined): string => formatNumber(v, 2)
    const notes = ['Server CPU per delivery, user + system (the kernel\'s share: socket writes): ' +
      result.rows.map((r) => `${r.label} ${us(r.medians.userUs)} + ${us(r.medians.systemUs)} µs`).join('; ') + '.', '']
    const missed = result.goals.find((g) => g.goal.contender === keel.id && !g.met)
    if (missed === undefined && !settings.profile) return notes
    const why = missed === undefined ? 'asked for with --profile' : `goal missed: ${missed.goal.text}`
    return [...notes, ...await profileFanout(keel, socketIo, settings, Math.max(settings.seconds, 3), why)]
  }
}

const MEMORY_LEVELS = [5000, 10_000]
const MEMORY_GOAL_KIB = 12

const memory: Scenario = {
  name: 'ws-memory',
  number: '6',
  title: 'Memory per idle authenticated WebSocket connection at 5,000 and 10,000 connections — cleartext ws://, and Keel over TLS (HTTP/1.1 and HTTP/2)',
  describe: [
    'The first window opens idle sockets over cleartext ws:// from the separate load process, each with its own subject\'s HS256 token (Keel: `/ws` with ' +
    '`Authorization: Bearer`, built as in scenario 5; raw ws: the same header, verified with jsonwebtoken on the upgrade), waits until each has had ' +
    '`connection:ready`, reads the server\'s RSS at 5,000, then goes on to 10,000 and reads again. The sockets stay open; each later window only repeats the ' +
    'memory-reducing read below (opening 10,000 sockets per window would take most of the run, and memory does not drift with the machine\'s other work as throughput does).',
    'RSS is read through a bench-only route of each server (bench/lib/ws-workload.ts `memoryReport`: a full GC, then `process.memoryUsage()`). ' +
    'KiB per connection = (RSS with N sockets − baseline RSS) ÷ N; the baseline is read after start-up and a warm-up of 200 sockets (which stands in for the warm-up window). ' +
    'It holds one-off growth too (V8 enlarges its young generation during the connection storm); the 5k→10k column, the RSS each socket added between the two levels, ' +
    'leaves such fixed costs out, and the last column reads RSS at 10,000 after V8\'s memory-reducing ("last resort") GC, which gives that growth back: what the sockets themselves hold.',
    'Socket.IO is left out here: its client and handshake cost about twice a raw ws socket\'s, and 10,000 more sockets would not fit the run\'s time.',
    'Keel over TLS, three ways: wss:// upgrades over HTTP/1.1 (a TLS connection per socket); WebSockets on HTTP/2 streams, many on each connection ' +
    '(as many as Keel\'s SETTINGS allow: HTTP2_MAX_CONCURRENT_STREAMS, 100 by default, so 100 connections hold 10,000 sockets) — what a browser with many ' +
    'sockets to one origin costs; and HTTP/2 with one connection per socket — what many browsers with one socket each cost. The goal is on cleartext ws://, ' +
    'as Keel runs behind a TLS-terminating proxy; the TLS rows show what a socket costs when Keel terminates TLS itself.',
    'Connections opened/s and server CPU per handshake (upgrade, token verification, registration) come from the first window: side figures, not the goal.'
  ],
  contenders: [
    idleMemoryContender(keel, MEMORY_LEVELS), idleMemoryContender(rawWs, MEMORY_LEVELS),
    idleMemoryContender(keelWss, MEMORY_LEVELS), idleMemoryContender(keelH2, MEMORY_LEVELS), idleMemoryContender(keelH2Each, MEMORY_LEVELS)
  ],
  baselines: ['ws-raw'],
  metrics: [
    { key: RATE, label: 'connections opened/s', digits: 0 },
    ...MEMORY_LEVELS.map((level) => ({ key: kibKey(level), label: `KiB/conn at ${level.toLocaleString('en-US')}`, digits: 1 })),
    { key: MARGINAL_KIB, label: `KiB/conn ${MEMORY_LEVELS.map((l) => `${l / 1000}k`).join('→')}`, digits: 1 },
    { key: REDUCED_KIB, label: `KiB/conn at ${MEMORY_LEVELS.at(-1)!.toLocaleString('en-US')}, memory-reducing GC`, digits: 1 },
    { key: CPU_PER_OP, label: 'server CPU µs/handshake', digits: 0 }
  ],
  goals: [{ contender: 'keel', metric: kibKey(10_000), atMost: MEMORY_GOAL_KIB, text: `≤ ${MEMORY_GOAL_KIB} KiB server RSS per idle authenticated connection at 10,000 connections` }],
  references: ['idle connection RSS: raw ws 7.8 KiB, @fastify/websocket 11 KiB, Socket.IO 29.6 KiB']
}

export const wsScenarios: Scenario[] = [fanout, memory]
