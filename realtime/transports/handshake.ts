// The handshake every credentialed stream (GET /ws, GET /sse) runs before it opens, as the route's
// onRequest hooks, so a refusal is a plain HTTP problem response: Origin (403, the cross-site hijacking
// defence — CORS does not cover WebSockets or EventSource), token (401; `?access_token=` accepted, as
// browsers cannot set headers there), then the real-time layer's admission (503 shutting down, 429 over
// the per-user limit). The handler finds the verified user in `request.user`.

import { isIP } from 'node:net'
import { checkServerIdentity, type PeerCertificate, type TLSSocket } from 'node:tls'
import type { FastifyInstance, FastifyRequest, onRequestHookHandler } from 'fastify'
import { AppError, ErrorCode } from '../../core/errors.ts'

export interface HandshakeOptions {
  /** `CORS_ORIGINS`: cross-site pages allowed to open a stream with their users' credentials. */
  allowedOrigins: readonly string[]
  /** Whether the server speaks TLS: its own origins are then https://, else http://. */
  tls: boolean
}

/** The origin the request was addressed to (scheme + its authority) and that authority's host name. */
function addressedOrigin (request: FastifyRequest, scheme: string): { origin: string, hostname: string } | undefined {
  // HTTP/2 requests carry the authority in :authority; a Host header there is optional.
  const authority = (request.headers[':authority'] as string | undefined) ?? request.headers.host
  if (authority === undefined) return undefined
  let url: URL
  try { url = new URL(`${scheme}//${authority}`) } catch { return undefined }
  if (url.username !== '' || url.password !== '' || url.pathname !== '/' || url.search !== '' || url.hash !== '') return undefined
  return { origin: url.origin, hostname: url.hostname.replace(/^\[(.*)\]$/, '$1') }
}

function isLoopback (address: string): boolean {
  return address === '::1' || /^(::ffff:)?127\./.test(address)
}

/**
 * Whether `hostname` is one of this server's own names, never because the client says so (a page on
 * a name that resolves to the server — DNS rebinding — sends that name as its Host). With TLS: the
 * names of the certificate this connection was served (its subjectAltName), which is what the browser
 * verified. Without: the address the connection reached, or `localhost` when that is a loopback one.
 */
function isOwnName (request: FastifyRequest, hostname: string, tls: boolean): boolean {
  const socket = request.raw.socket
  if (tls) {
    const certificate = (socket as TLSSocket).getCertificate?.()
    if (certificate === null || certificate === undefined || !('subject' in certificate)) return false
    return checkServerIdentity(hostname, certificate as PeerCertificate) === undefined
  }
  const local = socket.localAddress
  if (local === undefined) return false
  if (hostname === 'localhost') return isLoopback(local)
  return isIP(hostname) !== 0 && hostname.toLowerCase() === local.replace(/^::ffff:(?=\d+\.)/, '').toLowerCase()
}

/**
 * An onRequest hook for credentialed streams: a browser always sends Origin, and a page may open one
 * only from the server's own origin (the request's authority, when that is one of the server's own
 * names) or from an origin listed in CORS_ORIGINS. `what` names the stream in the 403.
 */
export function originCheck (options: HandshakeOptions, what: string): (request: FastifyRequest) => Promise<void> {
  const allowed = new Set(options.allowedOrigins)
  const scheme = options.tls ? 'https:' : 'http:'
  const refusal = `this Origin may not open ${what} (not the server itself nor listed in CORS_ORIGINS)`
  return async function checkOrigin (request) {
    const origin = request.headers.origin
    if (origin === undefined || allowed.has(origin)) return
    const addressed = addressedOrigin(request, scheme)
    if (addressed !== undefined && origin === addressed.origin && isOwnName(request, addressed.hostname, options.tls)) return
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
