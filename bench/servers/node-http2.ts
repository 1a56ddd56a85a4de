// The floor under every HTTP/2 framework: a raw `node:http2` secure server (compatibility API,
// `(req, res)`, which Fastify itself builds on), TLS 1.3 only, HTTP/1.1 allowed through ALPN.

import { createSecureServer } from 'node:http2'
import { readFileSync } from 'node:fs'
import { once } from 'node:events'
import { announceListening, closeOnSignal, serverOptions } from '../lib/serve.ts'
import { LARGE_PATH, SMALL_PATH, largeBody, smallBody } from '../lib/workload.ts'

const { tls } = serverOptions()
if (tls === undefined) throw new Error('node-http2 needs TLS options (certFile, keyFile)')

const bodies = new Map([[SMALL_PATH, smallBody], [LARGE_PATH, largeBody]])
const server = createSecureServer({ allowHTTP1: true, minVersion: 'TLSv1.3', cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) },
  (req, res) => {
    const body = bodies.get(req.url)
    if (body === undefined) {
      res.writeHead(404).end()
      return
    }
    // Serialized per request, as every other server does.
    const json = JSON.stringify(body)
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json) }).end(json)
  })

server.listen(0, '127.0.0.1')
await once(server, 'listening')
await announceListening(server)
closeOnSignal(async () => {
  server.close()
  // HTTP/2 sessions stay open until the client goes; the harness stops its load first.
})
