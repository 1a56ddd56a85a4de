// The floor of scenario 1: raw node:http writing the very response Keel writes for the small JSON GET.
// The harness hands it the headers Keel's probe showed (ServerOptions.mirror); it writes them in Keel's
// order with the same body, and computes per request what changes per request: a fresh x-request-id, the
// ETag hashed from the serialized body (with Keel's own hash), the length and the rate-limit count.
// No routing, no hooks, no policy decisions: what this response costs when nothing else runs.

import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { createServer } from 'node:http'
import { weakETagOf } from '../../edge/conditional.ts'
import { announceListening, closeOnSignal, serverOptions } from '../lib/serve.ts'
import { BENCH_RATE_LIMIT, SMALL_PATH, smallBody } from '../lib/workload.ts'

const { tls, mirror } = serverOptions()
if (tls !== undefined || mirror === undefined) throw new Error('node-http-floor serves cleartext HTTP/1.1 and needs the headers to repeat (mirror)')

// node:http writes these itself, after the headers handed to writeHead, as it does for Keel.
const WRITTEN_BY_NODE = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding'])

// The rate limiter's fixed window: one for every client, as the load comes from one address.
let windowEnds = 0
let counted = 0
function countRequest (now: number): void {
  if (now >= windowEnds) {
    windowEnds = now + BENCH_RATE_LIMIT.windowMs
    counted = 0
  }
  counted++
}

type PerRequest = (json: string, now: number) => string
const PER_REQUEST: Record<string, PerRequest> = {
  'x-request-id': () => randomUUID(),
  etag: (json) => weakETagOf(json),
  'content-length': (json) => String(Buffer.byteLength(json)),
  'ratelimit-remaining': () => String(BENCH_RATE_LIMIT.max - counted),
  'ratelimit-reset': (_json, now) => String(Math.ceil((windowEnds - now) / 1000))
}

// The response's header list, flat (name, value, name, value…) as writeHead takes it, and where in it
// the per-request values go.
const headers: string[] = []
const slots: Array<[index: number, compute: PerRequest]> = []
for (const [name, value] of Object.entries(mirror)) {
  if (value === undefined || WRITTEN_BY_NODE.has(name)) continue
  const compute = PER_REQUEST[name]
  if (compute !== undefined) slots.push([headers.length + 1, compute])
  for (const one of [value].flat()) headers.push(name, one)
}

const server = createServer((req, res) => {
  if (req.url !== SMALL_PATH) {
    res.writeHead(404).end()
    return
  }
  // Serialized per request, as every other server does.
  const json = JSON.stringify(smallBody)
  const now = Date.now()
  countRequest(now)
  for (const [index, compute] of slots) headers[index] = compute(json, now)
  // writeHead turns the list into the header block before it returns: one list serves every response.
  res.writeHead(200, headers).end(json)
})
// Keel's idle keep-alive timeout, which node:http announces in the Keep-Alive header.
const keepAliveSeconds = /timeout=(\d+)/.exec(String(mirror['keep-alive']))?.[1]
if (keepAliveSeconds !== undefined) server.keepAliveTimeout = Number(keepAliveSeconds) * 1000

server.listen(0, '127.0.0.1')
await once(server, 'listening')
await announceListening(server)
closeOnSignal(async () => {
  server.closeAllConnections()
  server.close()
})
