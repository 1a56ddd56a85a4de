// GET /ws: the WebSocket endpoint (protocol: contract §4, README "WebSocket"). Every check runs before
// the upgrade, so a refusal is a plain HTTP problem response and never a 101: Origin (403, the
// cross-site WebSocket hijacking defence — CORS does not cover WebSockets), token (401), connection
// limit (429). Then realtime/plugin.ts takes the socket over. Events live in realtime/protocol/events/.

import type { FastifyPluginAsync, FastifyRequest, FastifySchema } from 'fastify'
import { AppError, ErrorCode } from '../../core/errors.ts'

export interface WsRouteOptions {
  /** `CORS_ORIGINS`: cross-site pages allowed to open a socket with their users' credentials. */
  allowedOrigins: readonly string[]
  /** Whether the server speaks TLS: its own origin is then https:// + the Host header. */
  tls: boolean
}

/**
 * An onRequest hook for credentialed streams (WebSocket, SSE): a browser always sends Origin, and a
 * page may open one only to its own server or a listed origin. `what` names the stream in the 403.
 */
export function originCheck (options: WsRouteOptions, what: string): (request: FastifyRequest) => Promise<void> {
  const allowed = new Set(options.allowedOrigins)
  // Behind a TLS-terminating proxy (TLS=off) the browser's origin is https:// while we see http.
  const ownSchemes = options.tls ? ['https://'] : ['https://', 'http://']
  const refusal = `this Origin may not open ${what} (not the server itself nor listed in CORS_ORIGINS)`
  return async function checkOrigin (request) {
    const origin = request.headers.origin
    if (origin === undefined || allowed.has(origin)) return
    const host = request.headers.host
    if (host !== undefined && ownSchemes.some((scheme) => origin === scheme + host)) return
    throw new AppError(ErrorCode.FORBIDDEN, refusal)
  }
}

const UPGRADE_TO_WEBSOCKET = { upgrade: 'websocket', connection: 'Upgrade' }

const wsRoutes: FastifyPluginAsync<WsRouteOptions> = async (fastify, options) => {
  const checkOrigin = originCheck(options, 'WebSocket connections')

  async function authenticate (request: FastifyRequest): Promise<void> {
    const user = await fastify.authenticate(request, { allowQueryToken: true })
    fastify.webSockets.admit(user)
  }

  fastify.route({
    method: 'GET',
    url: '/ws',
    // The route authenticates itself (in the onRequest hook below) to accept ?access_token=.
    config: { auth: false },
    onRequest: [checkOrigin, authenticate],
    // Not an HTTP API: kept out of the OpenAPI document.
    schema: { hide: true } as FastifySchema,
    // A plain GET (or an HTTP/2 request, which cannot upgrade) gets 426 instead of a socket; over
    // HTTP/1.1 it names the protocol to upgrade to (HTTP/2 forbids the Upgrade header).
    handler: async (request: FastifyRequest) => {
      const detail = 'GET /ws is a WebSocket endpoint: open it with an HTTP/1.1 Upgrade (an HTTP/2 client must use ALPN http/1.1)'
      throw new AppError(ErrorCode.UPGRADE_REQUIRED, detail, request.raw.httpVersionMajor === 1 ? { headers: UPGRADE_TO_WEBSOCKET } : {})
    },
    wsHandler: (socket, request) => {
      fastify.webSockets.accept(socket, request.user)
    }
  })
}

export default wsRoutes
