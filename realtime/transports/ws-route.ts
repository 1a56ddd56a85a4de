// The WebSocket transport, /ws (README "WebSocket"): an HTTP/1.1 upgrade of GET /ws and, on the HTTPS
// server, an HTTP/2 extended CONNECT (ws-h2.ts). The stream handshake (handshake.ts) runs before
// either opens, so a refusal is a plain HTTP problem response and never a 101 or 200; the open socket
// becomes a session (ws-sessions.ts) whose frames the event router dispatches. The events are the
// files of realtime/protocol/events/. Decorates `fastify.webSockets`. Needs @fastify/websocket
// (ws-server.ts) registered before it.

import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest, FastifySchema } from 'fastify'
import type { Config } from '../../core/config.ts'
import { AppError, ErrorCode } from '../../core/errors.ts'
import { EventRouter, loadEventDirectory, type EventDefinition } from '../protocol/event-router.ts'
import { webSocketMetrics } from '../metrics.ts'
import { streamHandshake, type HandshakeOptions } from './handshake.ts'
import type { ConnectionPolicy } from './ws-connection.ts'
import { WebSocketSessions } from './ws-sessions.ts'
import { acceptWebSocketsOverHttp2 } from './ws-h2.ts'

export interface WebSocketTransport {
  /** The events clients may send. */
  readonly events: string[]
  /** Their definitions, as loaded from the events directory (sorted by file name): what POST /events runs and the AsyncAPI document shows. */
  readonly definitions: readonly EventDefinition[]
  /** Open connections on this instance. */
  readonly size: number
}

declare module 'fastify' {
  interface FastifyInstance {
    webSockets: WebSocketTransport
  }
}

const UPGRADE_TO_WEBSOCKET = { upgrade: 'websocket', connection: 'Upgrade' }

export interface WebSocketTransportOptions extends HandshakeOptions {
  ws: Config['ws']
  /** The directory whose files each define one event (`defineEvent`); loaded at start-up. */
  eventsDir: string
}

async function webSocketTransport (fastify: FastifyInstance, options: WebSocketTransportOptions): Promise<void> {
  const limits = options.ws
  const metrics = webSocketMetrics(fastify.metrics)
  const definitions = await loadEventDirectory(options.eventsDir)
  const router = new EventRouter(definitions, {
    onHandlerError: (err, event) => fastify.log.error({ err, event }, 'WebSocket event handler failed'),
    onReceived: (event) => metrics.received(event).inc(),
    onErrorSent: (code) => metrics.errors(code).inc()
  })
  const policy: ConnectionPolicy = {
    app: fastify,
    maxBufferedBytes: limits.maxBufferedBytes,
    messageRate: limits.messageRate,
    messageBurst: limits.messageBurst,
    rateCloseAfter: limits.rateCloseAfter,
    onSent: (event) => fastify.realtime.countSent(event),
    onSlowConsumer: (action) => metrics.slowConsumers(action).inc()
  }
  const sessions = new WebSocketSessions({
    realtime: fastify.realtime,
    router,
    policy,
    metrics,
    log: fastify.log,
    pingIntervalMs: limits.pingIntervalMs,
    pongTimeoutMs: limits.pongTimeoutMs,
    closeGraceMs: limits.closeGraceMs
  })
  sessions.startHeartbeat()
  fastify.addHook('preClose', async () => { await sessions.closeAll() })

  fastify.decorate('webSockets', {
    events: router.events,
    definitions,
    get size () { return sessions.size }
  })

  const handshake = streamHandshake(fastify, options, 'WebSocket connections')
  fastify.route({
    method: 'GET',
    url: '/ws',
    // The route authenticates itself (in the handshake hooks) to accept ?access_token=.
    config: { auth: false },
    ...handshake,
    // Not an HTTP API: kept out of the OpenAPI document.
    schema: { hide: true } as FastifySchema,
    // A plain GET (over HTTP/2 a GET cannot upgrade) gets 426 instead of a socket; over HTTP/1.1 it
    // names the protocol to upgrade to (HTTP/2 forbids the Upgrade header).
    handler: async (request: FastifyRequest) => {
      const detail = 'GET /ws is a WebSocket endpoint: open it with an HTTP/1.1 Upgrade or, over HTTP/2, an extended CONNECT (:protocol websocket)'
      throw new AppError(ErrorCode.UPGRADE_REQUIRED, detail, request.raw.httpVersionMajor === 1 ? { headers: UPGRADE_TO_WEBSOCKET } : {})
    },
    wsHandler: (socket, request) => {
      sessions.accept(socket, request.user!, 'h1', request.log)
    }
  })

  // The HTTPS server speaks HTTP/2: the same route, handshake and sessions over its streams.
  if (options.tls) {
    acceptWebSocketsOverHttp2(fastify, {
      url: '/ws',
      handshake,
      accept: (socket, request) => { sessions.accept(socket, request.user!, 'h2', request.log) }
    })
  }
}

export default fp(webSocketTransport, { name: 'keel-websocket', dependencies: ['keel-realtime', 'keel-auth', '@fastify/websocket'] })
