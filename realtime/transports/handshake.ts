// The handshake every credentialed stream (GET /ws, GET /sse) runs before it opens, as the route's
// onRequest hooks, so a refusal is a plain HTTP problem response: Origin (403, the cross-site hijacking
// defence — CORS does not cover WebSockets or EventSource), token (401; `?access_token=` accepted, as
// browsers cannot set headers there), then the real-time layer's admission (503 shutting down, 429 over
// the per-user limit). The handler finds the verified user in `request.user`. Every refusal names the
// page's Origin in Access-Control-Allow-Origin: a browser hides a failed WebSocket's or EventSource's
// status, and this lets the page's own fetch of the same URL tell a refused origin or token from a
// network failure.

import { isIP } from 'node:net'
import { checkServerIdentity, type PeerCertificate, type TLSSocket } from 'node:tls'
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler, onSendHookHandler } from 'fastify'
import { AppError, ErrorCode } from '../../core/errors.ts'
import { addVary } from '../../core/vary.ts'

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

// What a browser sends as Origin: a serialized origin, or `null` (sandboxed frames, file: pages).
const SERIALIZED_ORIGIN = /^(?:null|[a-z][a-z0-9+.-]*:\/\/[^\s/?#]+)$/i

/**
 * An onSend hook: an error response (a refusal) names the request's Origin in Access-Control-Allow-Origin
 * and varies on Origin, without Allow-Credentials, so the refused page can read the status and the
 * problem+json, which say no more than the refusal. An origin CORS_ORIGINS lists keeps the CORS answer
 * it gets everywhere (set earlier by the CORS plugin); a stream that opens is never touched.
 */
export async function readableRefusal (request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> {
  const origin = request.headers.origin
  if (reply.statusCode < 400 || origin === undefined || !SERIALIZED_ORIGIN.test(origin)) return payload
  if (reply.getHeader('access-control-allow-origin') === undefined) reply.header('access-control-allow-origin', origin)
  addVary(reply, 'Origin')
  return payload
}

export interface StreamHandshake {
  /** Origin, token, admission, in that order. */
  onRequest: onRequestHookHandler[]
  /** Refusals readable cross-origin (`readableRefusal`). */
  onSend: onSendHookHandler
}

/** The hooks of a stream route: its checks, and refusals the refused page can read. `what` names the stream in refusals. */
export function streamHandshake (fastify: FastifyInstance, options: HandshakeOptions, what: string): StreamHandshake {
  async function authenticateAndAdmit (request: FastifyRequest): Promise<void> {
    const user = await fastify.authenticate(request, { allowQueryToken: true })
    fastify.realtime.admit(user)
  }
  return {
    onRequest: [originCheck(options, what), authenticateAndAdmit] as onRequestHookHandler[],
    onSend: readableRefusal as onSendHookHandler
  }
}
