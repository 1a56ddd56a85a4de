// The shared WebSocket frame: every length encoding decodes back to the text with ws's own parser;
// the fan-out write path: what one tick sends to a socket leaves in one write, in order; and what an
// event handler sees of the connection and the app.

import t from 'tap'
import { once } from 'node:events'
import type { Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import type { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import * as ws from 'ws'
import { Type } from '@sinclair/typebox'
import type { RoomHub } from '../../realtime/hub/room-hub.ts'
import { EventRouter, defineEvent } from '../../realtime/protocol/event-router.ts'
import { WsConnection, textFrame, type ConnectionPolicy } from '../../realtime/transports/ws-connection.ts'

// ws's frame parser (exported at runtime, absent from @types/ws).
const { Receiver } = ws as unknown as { Receiver: new (options: { isServer: boolean }) => Writable }

async function decode (frame: Buffer): Promise<string> {
  const receiver = new Receiver({ isServer: false })
  return await new Promise((resolve, reject) => {
    receiver.on('message', (data: Buffer, isBinary: boolean) => { if (isBinary) reject(new Error('binary')); else resolve(data.toString()) })
    receiver.on('error', reject)
    receiver.write(frame)
  })
}

t.test('textFrame is a FIN text frame, unmasked, for every payload length encoding', async (t) => {
  for (const length of [0, 1, 125, 126, 65_535, 65_536, 200_000]) {
    const text = 'é'.repeat(Math.floor(length / 2)) + 'x'.repeat(length % 2)
    const frame = textFrame(text)
    t.equal(frame[0], 0x81, `${length} bytes: FIN + text opcode`)
    t.equal(frame[1]! & 0x80, 0, `${length} bytes: unmasked (server to client)`)
    t.equal(await decode(frame), text, `${length} bytes: ws decodes it back`)
  }
})

// No app behind this connection: the write path never reaches it.
const policy: ConnectionPolicy = { app: {} as FastifyInstance, maxBufferedBytes: 1 << 20, messageRate: 100, messageBurst: 100, rateCloseAfter: 10, onSent: () => {}, onSlowConsumer: () => {} }
const user = { sub: 'user-1', scopes: [], exp: Math.floor(Date.now() / 1000) + 3600 }

t.test('messages fanned out to one socket in the same tick leave in one write, in order with its own sends', async (t) => {
  const server = new ws.WebSocketServer({ host: '127.0.0.1', port: 0 })
  t.teardown(() => server.close())
  await once(server, 'listening')
  const accepted = once(server, 'connection') as Promise<[ws.WebSocket]>
  const client = new ws.WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`)
  t.teardown(() => client.terminate())
  const [socket] = await accepted
  const conn = new WsConnection('c1', user, socket, {} as RoomHub, policy, Date.now())
  const raw = (socket as unknown as { _socket: Socket & { _write: (...a: unknown[]) => void, _writev: (...a: unknown[]) => void } })._socket
  let writes = 0
  for (const method of ['_write', '_writev'] as const) {
    const original = raw[method]
    raw[method] = function (this: Socket, ...args: unknown[]) {
      writes++
      return original.apply(this, args)
    }
  }
  const received: string[] = []
  const allReceived = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${received.length} of 4 messages within 5 s`)), 5000)
    client.on('message', (data: Buffer) => {
      if (received.push(data.toString()) < 4) return
      clearTimeout(timer)
      resolve()
    })
  })
  const packet = (n: number) => ({ target: 'room' as const, to: 'r', event: 'room:message', text: JSON.stringify({ event: 'room:message', data: { n } }) })

  t.ok(conn.deliver(packet(1), 'close'))
  conn.send('ack', { n: 2 })
  t.ok(conn.deliver(packet(3), 'close'))
  t.ok(conn.deliver(packet(4), 'close'))
  t.equal(writes, 0, 'nothing is written before the tick ends')
  t.equal(socket.bufferedAmount > 0, true, 'the held bytes count in bufferedAmount (the slow-consumer bound sees them)')
  await allReceived
  t.same(received.map((m) => (JSON.parse(m) as { data: { n: number } }).data.n), [1, 2, 3, 4], 'in the order they were sent')
  t.equal(writes, 1, 'one write for the whole tick')
})

t.test('an event handler reaches the app\'s services as ctx.app, without importing a plugin file', async (t) => {
  // A decorator as a plugin would add it (`fastify.decorate('greeter', …)`).
  const app = { greeter: { greet: (sub: string) => `hello ${sub}` } } as unknown as FastifyInstance
  const sent: string[] = []
  const socket = { readyState: 1, send: (text: string) => { sent.push(text) } } as unknown as ws.WebSocket
  const conn = new WsConnection('c2', user, socket, {} as RoomHub, { ...policy, app }, Date.now())
  const greet = defineEvent({
    event: 'greet',
    data: Type.Object({}),
    ack: Type.String(),
    handle: (_data, ctx) => (ctx.app as unknown as { greeter: { greet: (sub: string) => string } }).greeter.greet(ctx.user.sub)
  })
  await new EventRouter([greet]).dispatch(conn, JSON.stringify({ event: 'greet', data: {}, id: 'g' }))
  t.same(sent.map((text) => JSON.parse(text)), [{ event: 'ack', id: 'g', data: 'hello user-1' }])
})
