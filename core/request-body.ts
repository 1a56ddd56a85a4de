// What a request body must be before a handler sees it, and who reads one at all. A route receives a
// body only when it declares `schema.body`: anywhere else (routes without one, unknown paths, unknown
// methods) the body is never read, inflated or parsed, so an unauthenticated client cannot make the
// server parse megabytes nobody asked for. JSON and text bodies must be UTF-8 (invalid bytes → 400,
// another declared charset → 415; never a silent U+FFFD), and JSON nesting is bounded before the
// parser runs: a deep `[[[…]]]` costs JSON.parse hundreds of milliseconds per MiB.

import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest, RequestPayload, RouteOptions } from 'fastify'
import { AppError, ErrorCode } from './errors.ts'
import { routeHooks } from './route-config.ts'

/** Arrays and objects may nest this deep in a JSON body; real payloads stay far below it. */
export const JSON_MAX_DEPTH = 64

// Fastify never reads a body for these methods; every other method may carry one.
const BODYLESS_METHODS = new Set(['GET', 'HEAD', 'TRACE'])
const UTF8_NAMES = new Set(['utf-8', 'utf8'])
const CHARSET = /;\s*charset\s*=\s*(?:"([^"]*)"|([^;\s]*))/i
// Decodes and checks in one pass; `fatal` throws on invalid bytes instead of substituting U+FFFD.
const utf8 = new TextDecoder('utf-8', { fatal: true })

type PreParsingDone = (err: Error | null, payload?: RequestPayload) => void

/**
 * A preParsing hook: the request goes on as if it carried no body. Fastify decides whether to read and
 * parse from these headers (an HTTP/2 body may come with Content-Type alone), so without them it calls
 * the handler at once; the unread bytes are discarded by Node once the response is sent.
 */
export function ignoreBody (request: FastifyRequest, _reply: FastifyReply, payload: RequestPayload, done: PreParsingDone): void {
  const headers = request.raw.headers
  if (headers['content-type'] !== undefined || headers['content-length'] !== undefined || headers['transfer-encoding'] !== undefined) {
    delete headers['content-length']
    delete headers['transfer-encoding']
    delete headers['content-type']
    delete headers['content-encoding']
  }
  done(null, payload)
}

/** True for a route that declares no body although its methods may carry one: such a route never reads a body. */
export function takesNoBody (route: RouteOptions): boolean {
  if (route.schema?.body !== undefined) return false
  const methods = Array.isArray(route.method) ? route.method : [route.method]
  return methods.some((method) => !BODYLESS_METHODS.has(method.toUpperCase()))
}

/** Whether the JSON text in `bytes` nests arrays and objects deeper than `max` (brackets inside strings do not count). */
export function nestsDeeperThan (bytes: Uint8Array, max: number): boolean {
  if (bytes.length <= max) return false
  let depth = 0
  let inString = false
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!
    if (inString) {
      if (byte === 0x5c /* \ */) i++
      else if (byte === 0x22 /* " */) inString = false
    } else if (byte === 0x22) {
      inString = true
    } else if (byte === 0x5b /* [ */ || byte === 0x7b /* { */) {
      if (++depth > max) return true
    } else if (byte === 0x5d /* ] */ || byte === 0x7d /* } */) {
      depth--
    }
  }
  return false
}

/** The body as text; refuses a declared charset other than UTF-8 (415) and bytes that are not UTF-8 (400). */
function utf8Text (request: FastifyRequest, body: Buffer, invalid: ErrorCode): string {
  const match = CHARSET.exec(request.headers['content-type'] ?? '')
  const charset = match === null ? undefined : (match[1] ?? match[2] ?? '').toLowerCase()
  if (charset !== undefined && !UTF8_NAMES.has(charset)) {
    throw new AppError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, `request bodies must be UTF-8 (charset=utf-8 or none), not ${charset.slice(0, 40)}`)
  }
  try {
    return utf8.decode(body)
  } catch {
    throw new AppError(invalid, 'the body is not valid UTF-8')
  }
}

export default fp(async function requestBody (fastify) {
  // Fastify's own JSON parsing (prototype-poisoning checks included) runs on the checked text.
  const parseJsonText = fastify.getDefaultJsonParser('error', 'error')
  fastify.removeContentTypeParser(['application/json', 'text/plain'])
  fastify.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const bytes = body as Buffer
    try {
      if (nestsDeeperThan(bytes, JSON_MAX_DEPTH)) throw new AppError(ErrorCode.BAD_REQUEST, `the JSON body nests deeper than ${JSON_MAX_DEPTH} levels`)
      parseJsonText(request, utf8Text(request, bytes, ErrorCode.MALFORMED_JSON), done)
    } catch (err) {
      done(err as Error, undefined)
    }
  })
  fastify.addContentTypeParser('text/plain', { parseAs: 'buffer' }, (request, body, done) => {
    try {
      done(null, utf8Text(request, body as Buffer, ErrorCode.BAD_REQUEST))
    } catch (err) {
      done(err as Error, undefined)
    }
  })

  // Resolved once per route (edge/compress.ts leaves such routes' bodies uninflated too).
  fastify.addHook('onRoute', (route: RouteOptions) => {
    if (!takesNoBody(route)) return
    route.preParsing = [ignoreBody, ...routeHooks(route.preParsing)] as RouteOptions['preParsing']
  })
}, { name: 'keel-request-body' })
