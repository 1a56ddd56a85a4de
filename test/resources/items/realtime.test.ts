// The example resource's real-time side, declared in its folder: room `items` (anyone signed in may
// watch, only the server writes, no presence, slow watchers miss messages rather than being cut off)
// and its feed — every change made over HTTP reaches WebSocket and SSE watchers as `items:changed`.

import t, { type Test } from 'tap'
import { listen } from '../../helpers/app.ts'
import { h2request, h2session } from '../../helpers/http.ts'
import { isEvent, openSse } from '../../helpers/sse.ts'
import { testToken } from '../../helpers/tokens.ts'
import { openSocket, type WsTarget } from '../../helpers/ws.ts'

async function createItem (t: Test, server: WsTarget, name: string): Promise<string> {
  const session = await h2session(server.url, { ca: server.ca })
  t.teardown(() => session.close())
  const token = testToken({ sub: 'writer', scope: 'items:write' })
  const created = await h2request(session, '/api/v1/items', { ':method': 'POST', authorization: `Bearer ${token}`, 'content-type': 'application/json' }, JSON.stringify({ name }))
  t.equal(created.status, 201)
  return (JSON.parse(created.body) as { id: string }).id
}

t.test('an item created over HTTP reaches a WebSocket member of room items as items:changed', async (t) => {
  const server = await listen(t)
  const watcher = await openSocket(t, server, { sub: 'watcher' })
  t.match(await watcher.request('room:join', { room: 'items' }), { event: 'ack' })
  const id = await createItem(t, server, 'hello')
  const event = await watcher.next((m) => m.event === 'items:changed')
  t.same(event, { event: 'items:changed', data: { id, op: 'created', room: 'items', seq: 1 } })
})

t.test('an item created over HTTP reaches an SSE subscriber of room items', async (t) => {
  const server = await listen(t)
  const sse = await openSse(t, server, { path: '/sse?room=items' })
  await sse.next(isEvent('stream:ready'))
  const id = await createItem(t, server, 'streamed')
  const event = await sse.next(isEvent('items:changed'))
  t.same(JSON.parse(event.data!), { id, op: 'created', room: 'items', seq: 1 })
  t.equal(event.id, '1')
})

t.test('room items: any signed-in user may watch it; clients may not write to it; it has no presence', async (t) => {
  const server = await listen(t)
  const socket = await openSocket(t, server, { sub: 'alice' })
  t.match(await socket.request('room:join', { room: 'items' }), { event: 'ack', data: { room: 'items', joined: true } })
  t.match(await socket.request('room:publish', { room: 'items', payload: 1 }), { data: { code: 'FORBIDDEN' } }, 'a server-written room')
  t.match(await socket.request('presence:list', { room: 'items' }), { data: { code: 'FORBIDDEN' } }, 'a feed without presence')
  t.equal(server.app.roomHub.policyFor('items')?.slowConsumer, 'drop', 'a watcher that falls behind misses notifications (and sees the seq gap)')
})
