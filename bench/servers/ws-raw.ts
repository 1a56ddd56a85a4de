// The raw `ws` peer of the WebSocket scenarios: node:http + a `ws` server speaking the part of Keel's
// envelope protocol (realtime/protocol/) the load uses — connection:ready, room:join, room:publish → room:message to the
// other members, ping → ack — written the naive way: each room message is serialized once, then
// `ws.send(text)` per member, so ws frames it again for every recipient. The token is verified on the
// upgrade (jsonwebtoken, HS256), as any authenticated server must; a bad one gets 401 and no socket.

import { once } from 'node:events'
import { createServer, type IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type RawData, type WebSocket } from 'ws'
import { announceListening, closeOnSignal } from '../lib/serve.ts'
import { MEMORY_PATH, WS_PATH, memoryReport, verifyBenchToken } from '../lib/ws-workload.ts'

interface Envelope { event?: unknown, data?: { room?: unknown, payload?: unknown }, id?: unknown }

const rooms = new Map<string, Set<WebSocket>>()
const seqs = new Map<string, number>()
const wss = new WebSocketServer({ noServer: true })

const server = createServer((req, res) => {
  if (req.url?.startsWith(MEMORY_PATH) !== true) {
    res.writeHead(404).end()
    return
  }
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(memoryReport(wss.clients.size, req.url)))
})

function refuse (socket: Duplex): void {
  socket.end('HTTP/1.1 401 Unauthorized\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
}

server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
  const header = req.headers.authorization
  const user = req.url === WS_PATH && header?.startsWith('Bearer ') === true ? verifyBenchToken(header.slice(7)) : undefined
  if (user === undefined) {
    refuse(socket)
    return
  }
  wss.handleUpgrade(req, socket, head, (ws) => serve(ws, user.sub))
})

function reply (ws: WebSocket, id: unknown, data: unknown): void {
  if (typeof id === 'string') ws.send(JSON.stringify({ event: 'ack', id, data }))
}

function serve (ws: WebSocket, sub: string): void {
  const joined = new Set<string>()
  ws.on('message', (raw: RawData) => {
    let message: Envelope
    try {
      message = JSON.parse(raw.toString()) as Envelope
    } catch {
      return
    }
    const room = message.data?.room
    if (message.event === 'ping') {
      reply(ws, message.id, { time: Date.now() })
    } else if (message.event === 'room:join' && typeof room === 'string') {
      let members = rooms.get(room)
      if (members === undefined) rooms.set(room, members = new Set())
      members.add(ws)
      joined.add(room)
      reply(ws, message.id, { room, joined: true })
    } else if (message.event === 'room:publish' && typeof room === 'string' && joined.has(room)) {
      const seq = (seqs.get(room) ?? 0) + 1
      seqs.set(room, seq)
      const text = JSON.stringify({ event: 'room:message', data: { room, from: sub, payload: message.data?.payload, seq } })
      for (const member of rooms.get(room)!) if (member !== ws) member.send(text)
      reply(ws, message.id, { room, seq })
    }
  })
  ws.on('close', () => {
    for (const room of joined) rooms.get(room)?.delete(ws)
  })
  ws.send(JSON.stringify({ event: 'connection:ready', data: { user: { sub } } }))
}

server.listen(0, '127.0.0.1')
await once(server, 'listening')
await announceListening(server)
closeOnSignal(async () => {
  for (const ws of wss.clients) ws.terminate()
  server.close()
})
