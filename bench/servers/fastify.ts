// The baseline: bare Fastify 5 — no plugins, no logger — serving the benchmark's pages with the same
// response schemas as Keel. With TLS options it is an HTTPS + HTTP/2 server shaped like Keel's
// (HTTP/1.1 through ALPN, TLS 1.3 only).

import { readFileSync } from 'node:fs'
import Fastify, { type FastifyInstance } from 'fastify'
import { announceListening, closeOnSignal, serverOptions } from '../lib/serve.ts'
import { LARGE_PATH, SMALL_PATH, largeBody, pageSchema, smallBody } from '../lib/workload.ts'

const { tls } = serverOptions()
const app = (tls === undefined
  ? Fastify()
  : Fastify({
    http2: true,
    https: { allowHTTP1: true, minVersion: 'TLSv1.3', cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) }
  })) as unknown as FastifyInstance

app.get(SMALL_PATH, { schema: { response: { 200: pageSchema } } }, async () => smallBody)
app.get(LARGE_PATH, { schema: { response: { 200: pageSchema } } }, async () => largeBody)

await app.listen({ host: '127.0.0.1', port: 0 })
await announceListening(app.server)
closeOnSignal(() => app.close())
