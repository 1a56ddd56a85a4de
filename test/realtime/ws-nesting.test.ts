// Deeply nested event data, through a real WebSocket: any event's data nested past the router's depth
// limit is answered VALIDATION (no handler runs, nothing is serialized, nothing is logged as an
// error), while ordinary nesting passes untouched.

import t from 'tap'
import { listen } from '../helpers/app.ts'
import { openSocket, type Message, type TestSocket } from '../helpers/ws.ts'

/** `levels` arrays inside each other around `inner`, as JSON text: 2 → `[[inner]]`. */
const nestedText = (levels: number, inner = '1'): string => '['.repeat(levels) + inner + ']'.repeat(levels)

/**
 * Sends a frame written by hand (the client's JSON.stringify would overflow on such data, as the
 * server's did) and resolves with the answer to its id.
 */
async function sendRaw (socket: TestSocket, id: string, event: string, dataText: string): Promise<Message> {
  socket.ws.send(`{"event":"${event}","id":"${id}","data":${dataText}}`)
  return await socket.next((m) => m.id === id)
}

t.test('room:publish with a payload 5,000 levels deep → VALIDATION, and no error is logged', async (t) => {
  const server = await listen(t)
  const alice = await openSocket(t, server, { sub: 'alice' })
  const bob = await openSocket(t, server, { sub: 'bob' })
  await alice.request('room:join', { room: 'deep' })
  await bob.request('room:join', { room: 'deep' })

  const answer = await sendRaw(alice, 'deep-1', 'room:publish', `{"room":"deep","payload":${nestedText(5000)}}`)
  t.equal(answer.event, 'error')
  t.match(answer.data, { code: 'VALIDATION', message: /nests deeper than/, errors: [{ path: '/data' }] })
  t.equal(await bob.maybeNext((m) => m.event === 'room:message', 200), null, 'nothing was published')
  const errors = server.logs.lines().filter((line) => Number(line.level) >= 50)
  t.same(errors, [], 'no error log line (and no stack)')
  t.equal((await alice.request('ping')).event, 'ack', 'the connection stays open and usable')
})

t.test('every event is protected: deep data for another event is VALIDATION too', async (t) => {
  const server = await listen(t)
  const socket = await openSocket(t, server)
  t.match(await sendRaw(socket, 'p', 'ping', `{"a":${nestedText(5000)}}`), { event: 'error', data: { code: 'VALIDATION' } })
  const objects = '{"a":'.repeat(3000) + '1' + '}'.repeat(3000)
  t.match(await sendRaw(socket, 'o', 'ping', objects), { event: 'error', data: { code: 'VALIDATION' } }, 'nested objects count as arrays do')
  t.same(server.logs.lines().filter((line) => Number(line.level) >= 50), [])
})

t.test('ordinary nesting is published as sent', async (t) => {
  const server = await listen(t)
  const alice = await openSocket(t, server, { sub: 'alice' })
  const bob = await openSocket(t, server, { sub: 'bob' })
  await alice.request('room:join', { room: 'shallow' })
  await bob.request('room:join', { room: 'shallow' })
  const payload = { doc: { sections: [{ blocks: [{ spans: [{ marks: ['bold'], text: 'hi' }] }] }] }, deep: JSON.parse(nestedText(16, '{"ok":true}')) as unknown }
  t.equal((await alice.request('room:publish', { room: 'shallow', payload })).event, 'ack')
  t.same((await bob.next((m) => m.event === 'room:message')).data.payload, payload)
})
