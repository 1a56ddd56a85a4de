// The Prometheus scrape endpoint, on a plain-HTTP listener of its own (METRICS_HOST:METRICS_PORT),
// never on the public API port: GET/HEAD /metrics serves the app's registry (core/metrics.ts), 404
// elsewhere, 405 for other methods. It opens when the app listens (an app that only takes `inject`
// opens no port), before the API port, and closes with the app. None of the API's edge policies
// (auth, rate limit, load shedding) apply: it is a separate server, so overload never sheds a scrape.

import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyListenOptions } from 'fastify'
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { once } from 'node:events'
import type { Registry } from 'prom-client'

declare module 'fastify' {
  interface FastifyInstance {
    /** Where the metrics listener is bound; null before the app listens, after it closes, or with METRICS_PORT=off. */
    metricsAddress: () => AddressInfo | null
  }
}

export interface MetricsListenerOptions {
  /** False with METRICS_PORT=off: nothing serves the registry. */
  enabled: boolean
  host: string
  /** 0 = any free port. */
  port: number
}

const PATH = '/metrics'
// A scraper or two connect here; anything more is a misconfiguration, not load to serve.
const MAX_CONNECTIONS = 32
// A scrape is one small GET: 10 s to send it bounds a client that holds one of those connections idle.
const REQUEST_TIMEOUT_MS = 10_000

/** Answers one request on the metrics listener. */
async function answer (registry: Registry, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const path = (request.url ?? '').split('?', 1)[0]
  if (path !== PATH) return plain(response, 404, 'Not Found\n')
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.setHeader('allow', 'GET, HEAD')
    return plain(response, 405, 'Method Not Allowed\n')
  }
  let body: string
  try {
    body = await registry.metrics()
  } catch {
    // A collector that throws is a bug in that collector; the scrape fails visibly, without details.
    return plain(response, 500, 'Internal Server Error\n')
  }
  response.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) })
  response.end(body)
}

function plain (response: ServerResponse, status: number, text: string): void {
  response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) })
  response.end(text)
}

/** `host:port` as a URL authority (IPv6 addresses in brackets). */
function authority (host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`
}

/** Binds the metrics server; a bind error becomes one line naming the variables to change. */
async function bind (server: Server, options: MetricsListenerOptions): Promise<void> {
  server.listen(options.port, options.host)
  try {
    await once(server, 'listening')
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'EADDRINUSE' ? 'address already in use' : (err as Error).message
    throw new Error(`metrics listener: cannot listen on ${authority(options.host, options.port)} (METRICS_HOST, METRICS_PORT): ${reason}`)
  }
}

async function close (server: Server): Promise<void> {
  if (!server.listening) return
  const closed = once(server, 'close')
  server.close()
  // Prometheus keeps its connection alive between scrapes; a scrape cut short at shutdown is harmless.
  server.closeAllConnections()
  await closed
}

export default fp<MetricsListenerOptions>(async function metricsListener (fastify, options) {
  const server = createServer({ headersTimeout: REQUEST_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS }, (request, response) => {
    answer(fastify.metrics, request, response).catch((err: unknown) => {
      fastify.log.error({ err }, 'metrics listener: answering a scrape failed')
      response.destroy()
    })
  })
  server.maxConnections = MAX_CONNECTIONS
  fastify.decorate('metricsAddress', () => {
    const address = server.listening ? server.address() : null
    return typeof address === 'object' ? address : null
  })
  fastify.addHook('onClose', async () => { await close(server) })

  // Fastify runs onListen hooks after listen() has resolved and only logs their errors, so a port clash
  // there could not stop the start. Opening inside listen() makes it fail listen() itself, as a clash
  // on the API port does, and before the API port opens.
  const listenApi = fastify.listen.bind(fastify) as (listenOptions?: FastifyListenOptions) => Promise<string>
  async function listen (listenOptions?: FastifyListenOptions, ...rest: unknown[]): Promise<string> {
    // The callback form would be dropped here, and its callback never called: refused, not hung.
    if (typeof listenOptions === 'function' || rest.length > 0) throw new TypeError('app.listen() takes its promise form only: await app.listen(options)')
    if (!options.enabled) {
      fastify.log.info('metrics listener off (METRICS_PORT=off): the registry is served nowhere')
      return await listenApi(listenOptions)
    }
    // Not after ready(): a wrapper around listen() registered earlier may still add plugins before its boot.
    await bind(server, options)
    const { address, port } = server.address() as AddressInfo
    fastify.log.info(`metrics served at http://${authority(address, port)}${PATH}`)
    try {
      return await listenApi(listenOptions)
    } catch (err) {
      await close(server)
      throw err
    }
  }
  fastify.listen = listen as FastifyInstance['listen']
}, { name: 'keel-metrics-listener', dependencies: ['keel-metrics'] })
