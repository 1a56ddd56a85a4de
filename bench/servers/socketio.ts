// The Socket.IO 4 peer of the WebSocket scenarios: the same room protocol as Keel's, the idiomatic
// Socket.IO way — a handshake middleware verifies the token from `auth.token` (jsonwebtoken, HS256),
// `socket.join(room)`, and `socket.to(room).emit(...)` for a publish (the room except the sender, which
// the adapter encodes and frames once for every recipient). WebSocket transport only (no long-polling).

import { once } from 'node:events'
import { createServer } from 'node:http'
import { Server } from 'socket.io'
import { announceListening, closeOnSignal } from '../lib/serve.ts'
import { MEMORY_PATH, memoryReport, verifyBenchToken } from '../lib/ws-workload.ts'

type Ack = ((data: unknown) => void) | undefined

const server = createServer((req, res) => {
  if (req.url?.startsWith(MEMORY_PATH) !== true) {
    res.writeHead(404).end()
    return
  }
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(memoryReport(io.engine.clientsCount, req.url)))
})
const io = new Server(server, { serveClient: false, transports: ['websocket'] })
const seqs = new Map<string, number>()

io.use((socket, next) => {
  const user = verifyBenchToken((socket.handshake.auth as { token?: string }).token)
  if (user === undefined) {
    next(new Error('unauthorized'))
    return
  }
  socket.data.sub = user.sub
  next()
})

io.on('connection', (socket) => {
  socket.on('ping', (_data: unknown, ack: Ack) => ack?.({ time: Date.now() }))
  socket.on('room:join', async ({ room }: { room: string }, ack: Ack) => {
    await socket.join(room)
    ack?.({ room, joined: true })
  })
  socket.on('room:publish', ({ room, payload }: { room: string, payload: unknown }, ack: Ack) => {
    if (!socket.rooms.has(room)) return
    const seq = (seqs.get(room) ?? 0) + 1
    seqs.set(room, seq)
    socket.to(room).emit('room:message', { room, from: socket.data.sub as string, payload, seq })
    ack?.({ room, seq })
  })
})

server.listen(0, '127.0.0.1')
await once(server, 'listening')
await announceListening(server)
closeOnSignal(async () => {
  io.disconnectSockets(true)
  await io.close()
})
