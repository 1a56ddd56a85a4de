// KeelClient against real test servers: a client whose sockets are `ws` sockets trusting the test
// certificate (Node's global WebSocket cannot take a CA), and bounded waits for the client's events.

import type { ConnectionOptions } from 'node:tls'
import WebSocket, { type ClientOptions } from 'ws'
import { KeelClient, type KeelClientOptions, type KeelEventName, type KeelEvents } from '../../client/keel-client.ts'
import type { WsTarget } from './ws.ts'
import { testToken } from './tokens.ts'

interface Teardown { teardown: (fn: () => unknown) => void }

export interface TestClient {
  client: KeelClient
  /** Every `ws` socket the client opened, newest last (to cut a connection from the test). */
  sockets: WebSocket[]
}

/** A `ws` socket to `url` trusting the test server's certificate (ws passes TLS options through; its types omit `servername`). */
export function trustedSocket (server: WsTarget, url: string, headers?: Record<string, string>): WebSocket {
  const options: ClientOptions & Pick<ConnectionOptions, 'servername'> = { ca: server.ca, servername: 'localhost', headers }
  return new WebSocket(url, options)
}

/** A client for `server`'s /ws as user `sub` (fast reconnects); closed when the test ends. Not connected yet. */
export function testClient (t: Teardown, server: WsTarget, options: Partial<KeelClientOptions> & { sub?: string } = {}): TestClient {
  const sockets: WebSocket[] = []
  const { sub = 'user-1', ...rest } = options
  const client = new KeelClient({
    url: server.url.replace(/^http/, 'ws') + '/ws',
    token: testToken({ sub }),
    createSocket: (url) => {
      const socket = trustedSocket(server, url)
      sockets.push(socket)
      return socket
    },
    ackTimeoutMs: 3000,
    reconnect: { baseMs: 20, capMs: 200 },
    ...rest
  })
  t.teardown(() => client.close())
  return { client, sockets }
}

/** Resolves with the data of the client's next `event` that matches `predicate`; rejects after `timeoutMs`. */
export async function nextEvent<E extends KeelEventName> (
  client: KeelClient, event: E, predicate: (data: KeelEvents[E]) => boolean = () => true, timeoutMs = 5000
): Promise<KeelEvents[E]> {
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => { off(); reject(new Error(`no "${event}" event within ${timeoutMs} ms`)) }, timeoutMs)
    const off = client.on(event, (data) => {
      if (!predicate(data)) return
      clearTimeout(timer)
      off()
      resolve(data)
    })
  })
}

/** Records every `event` the client emits from now on, in order. */
export function record<E extends KeelEventName> (client: KeelClient, event: E): Array<KeelEvents[E]> {
  const seen: Array<KeelEvents[E]> = []
  client.on(event, (data) => { seen.push(data) })
  return seen
}
