// The handshake every credentialed stream (GET /ws, GET /sse) runs before it opens, as the route's
// onRequest hooks, so a refusal is a plain HTTP problem response: Origin (403, the cross-site hijacking
// defence — CORS does not cover WebSockets or EventSource), token (401; `?access_token=` accepted, as
// browsers cannot set headers there), then the real-time layer's admission (503 shutting down, 429 over
// the per-user limit). The handler finds the verified user in `request.user`.

import type { FastifyInstance, FastifyRequest, onRequestHookHandler } from 'fastify'
import { AppError, ErrorCode } from '../../core/errors.ts'

export interface HandshakeOptions {
  /** `CORS_ORIGINS`: cross-site pages allowed to open a stream with their users' credentials. */
  allowedOrigins: readonly string[]
  /** Whether the server speaks TLS: its own origin is then https:// + the Host header. */
  tls: boolean
}

/**
 * An onRequest hook for credentialed streams: a browser always sends Origin, and a page may open one
 * only to its own server or a listed origin. `what` names the stream in the 403.
 */
export function originCheck (options: HandshakeOptions, what: string): (request: FastifyRequest) => Promise<void> {
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

/** The onRequest hooks of a stream route, in order: Origin, token, admission. `what` names the stream in refusals. */
export function streamHandshake (fastify: FastifyInstance, options: HandshakeOptions, what: string): onRequestHookHandler[] {
  async function authenticateAndAdmit (request: FastifyRequest): Promise<void> {
    const user = await fastify.authenticate(request, { allowQueryToken: true })
    fastify.realtime.admit(user)
  }
  return [originCheck(options, what), authenticateAndAdmit] as onRequestHookHandler[]
}
