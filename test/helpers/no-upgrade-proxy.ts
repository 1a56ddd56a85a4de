// A reverse proxy that will not carry WebSockets, as some corporate proxies and hosting policies do:
// HTTPS over HTTP/1.1 only (so no extended CONNECT either), every ordinary request forwarded to the
// backend and its answer streamed back unbuffered (SSE passes), every Upgrade refused with a 403 of its
// own. For the client's fallback tests; on loopback, with the certificate it is given.

import { Agent, createServer, request } from 'node:https'
import { once } from 'node:events'
import type { IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'

interface Teardown { teardown: (fn: () => unknown) => void }

export interface NoUpgradeProxy {
  url: string
  port: number
  /** Upgrade requests refused so far. */
  refusedUpgrades: () => number
}

// Hop-by-hop: meaningful for one connection only, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer'])

function endToEnd (headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const [name, value] of Object.entries(headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value
  return out
}

/** Starts the proxy in front of `backend` (an https:// origin whose certificate is `ca`), serving with `cert`/`key`. */
export async function startNoUpgradeProxy (t: Teardown, backend: string, tls: { cert: Buffer, key: Buffer, ca: Buffer }): Promise<NoUpgradeProxy> {
  const agent = new Agent({ ca: tls.ca, servername: 'localhost', keepAlive: true })
  let refused = 0
  const server = createServer({ cert: tls.cert, key: tls.key, ALPNProtocols: ['http/1.1'] }, (req, res) => {
    const upstream = request(new URL(req.url ?? '/', backend), { method: req.method, headers: endToEnd(req.headers), agent }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, endToEnd(answer.headers))
      // Each chunk goes out as it comes: an event stream must not wait in a buffer.
      res.flushHeaders()
      answer.pipe(res)
    })
    upstream.on('error', () => { if (!res.headersSent) res.writeHead(502); res.end() })
    res.on('close', () => { upstream.destroy() })
    req.pipe(upstream)
  })
  server.on('upgrade', (_req, socket: Duplex) => {
    refused++
    const body = 'WebSockets are not allowed here\n'
    socket.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    server.closeAllConnections()
    server.close()
    agent.destroy()
  })
  const { port } = server.address() as AddressInfo
  return { url: `https://127.0.0.1:${port}`, port, refusedUpgrades: () => refused }
}
