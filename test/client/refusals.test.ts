// Refusals the client cannot fix, against the real app over TLS with Node's own WebSocket and fetch:
// a refused token or Origin stops the client within one attempt with a typed error (the WebSocket
// only closes with 1006; the probe's plain GET of the same URL reads the 401 or 403), and a token
// function gets exactly one chance to hand over a fresh token.

import t from 'tap'
import { KeelClient, type KeelClientOptions, type WebSocketLike } from '../../client/keel-client.ts'
import { listen } from '../helpers/app.ts'
import { nodeFetch, nodeSocket, record, rejection, trustingAgent } from '../helpers/keel-client.ts'
import { testToken } from '../helpers/tokens.ts'

type Server = Awaited<ReturnType<typeof listen>>

/** A client of `server` on Node's WebSocket and fetch, presenting `origin` when given; counts its sockets. */
function nodeClient (t: Parameters<typeof listen>[0], server: Server, options: Partial<KeelClientOptions> & { origin?: string } = {}) {
  const { origin, ...rest } = options
  const agent = trustingAgent(t, server)
  const headers: Record<string, string> = origin === undefined ? {} : { origin }
  const sockets: WebSocketLike[] = []
  const client = new KeelClient({
    url: server.url.replace(/^http/, 'ws') + '/ws',
    token: testToken({ sub: 'alice' }),
    createSocket: nodeSocket(agent, headers, sockets),
    fetch: nodeFetch(agent, headers),
    reconnect: { baseMs: 20, capMs: 200 },
    ...rest
  })
  t.teardown(() => client.close())
  return { client, sockets, reconnecting: record(client, 'reconnecting'), closes: record(client, 'close') }
}

t.test('a server refusing the token: connect() rejects with UNAUTHORIZED after one attempt, no retry loop', async (t) => {
  const server = await listen(t)
  const { client, sockets, reconnecting, closes } = nodeClient(t, server, { token: 'not-a-token' })
  const err = await rejection(client.connect())
  t.match(err, { name: 'KeelClientError', code: 'UNAUTHORIZED', status: 401 })
  t.equal(sockets.length, 1, 'one WebSocket attempt')
  t.same(reconnecting, [], 'no reconnect was scheduled')
  t.equal(client.state, 'closed')
  t.match(closes, [{ reconnect: false, error: { code: 'UNAUTHORIZED' } }], 'the close event carries the reason')
})

t.test('a server refusing the page\'s Origin: connect() rejects with ORIGIN_REFUSED after one attempt', async (t) => {
  const server = await listen(t, { CORS_ORIGINS: 'https://app.example' })
  const { client, sockets, reconnecting } = nodeClient(t, server, { origin: 'https://evil.example' })
  const err = await rejection(client.connect())
  t.match(err, { code: 'ORIGIN_REFUSED', status: 403, message: /CORS_ORIGINS/ })
  t.equal(sockets.length, 1, 'one WebSocket attempt')
  t.same(reconnecting, [])
})

t.test('a listed Origin connects as usual', async (t) => {
  const server = await listen(t, { CORS_ORIGINS: 'https://app.example' })
  const { client } = nodeClient(t, server, { origin: 'https://app.example' })
  t.equal((await client.connect()).user.sub, 'alice')
  t.equal(client.transport, 'websocket')
})

t.test('a refused token makes the client ask its token function once more: a fresh token connects', async (t) => {
  const server = await listen(t)
  const tokens = ['expired-or-revoked', testToken({ sub: 'alice' })]
  let asked = 0
  const { client, sockets } = nodeClient(t, server, { token: () => tokens[asked++] ?? 'none left' })
  t.equal((await client.connect()).user.sub, 'alice')
  t.equal(asked, 2)
  t.equal(sockets.length, 2)
})

t.test('a token function whose next token is refused too stops the client with UNAUTHORIZED', async (t) => {
  const server = await listen(t)
  let asked = 0
  const { client, sockets, reconnecting } = nodeClient(t, server, { token: () => `bad-${++asked}` })
  t.match(await rejection(client.connect()), { code: 'UNAUTHORIZED' })
  t.equal(asked, 2, 'asked once more, not forever')
  t.equal(sockets.length, 2)
  t.same(reconnecting, [])
})

t.test('a server that is down is retried with backoff, not refused', async (t) => {
  const server = await listen(t)
  const url = server.url
  await server.app.close()
  const { client, reconnecting } = nodeClient(t, { ...server, url }, { reconnect: { baseMs: 1, capMs: 5, maxAttempts: 2 } })
  t.match(await rejection(client.connect()), { code: 'CLOSED' })
  t.same(reconnecting.map((r) => r.attempt), [1, 2])
})
