// KeelClient against real test servers: a client whose sockets are `ws` sockets trusting the test
// certificate, or Node's own WebSocket and fetch given a dispatcher that trusts it; bounded waits for
// the client's events; and the client package built as `npm pack` builds it.

import { join } from 'node:path'
import type { ConnectionOptions } from 'node:tls'
import ts from 'typescript'
import { Agent } from 'undici'
import WebSocket, { type ClientOptions } from 'ws'
import { KeelClient, KeelClientError, type FetchLike, type KeelClientOptions, type KeelEventName, type KeelEvents, type WebSocketLike } from '../../client/keel-client.ts'
import { ROOT, tempDir } from './app.ts'
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

/** The client package's folder and its build configuration (what `npm pack` runs). */
export const CLIENT_DIR = join(ROOT, 'client')

let built: string | undefined

/**
 * Builds the client with client/tsconfig.build.json — the build `npm pack` runs — into a fresh
 * directory (never client/dist, which belongs to whoever runs the build by hand); once per process.
 * Returns the directory holding keel-client.js and its .d.ts files.
 */
export function buildClient (): string {
  if (built !== undefined) return built
  const outDir = tempDir('keel-client-build-')
  const host: ts.ParseConfigFileHost = {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n')) }
  }
  const parsed = ts.getParsedCommandLineOfConfigFile(join(CLIENT_DIR, 'tsconfig.build.json'), { outDir }, host)
  if (parsed === undefined) throw new Error('client/tsconfig.build.json could not be read')
  const program = ts.createProgram(parsed.fileNames, parsed.options)
  const emitted = program.emit()
  const problems = [...ts.getPreEmitDiagnostics(program), ...emitted.diagnostics]
  if (problems.length > 0) throw new Error(problems.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')).join('\n'))
  built = outDir
  return outDir
}

/** A dispatcher for Node's own fetch and WebSocket that trusts the test server's certificate. */
export function trustingAgent (t: Teardown, server: WsTarget): Agent {
  const agent = new Agent({ connect: { ca: server.ca, servername: 'localhost' } })
  t.teardown(() => agent.close())
  return agent
}

/** Node's global fetch through `agent`, with `headers` added (e.g. an Origin, as a browser page would send). */
export function nodeFetch (agent: Agent, headers: Record<string, string> = {}): FetchLike {
  return async (input, init = {}) => await fetch(input, { ...init, headers: { ...init.headers as Record<string, string>, ...headers }, dispatcher: agent } as RequestInit)
}

/** Node's global WebSocket through `agent`, with `headers` added; every socket goes into `opened`. */
export function nodeSocket (agent: Agent, headers: Record<string, string> = {}, opened: WebSocketLike[] = []): (url: string) => WebSocketLike {
  return (url) => {
    const socket = new globalThis.WebSocket(url, { dispatcher: agent, headers } as unknown as string[])
    opened.push(socket)
    return socket
  }
}

/** The KeelClientError a promise rejects with; fails the test when it resolves or rejects with anything else. */
export async function rejection (promise: Promise<unknown>): Promise<KeelClientError> {
  try {
    await promise
  } catch (err) {
    if (err instanceof KeelClientError) return err
    throw err
  }
  throw new Error('expected a rejection')
}
