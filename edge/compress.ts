// Compression on @fastify/compress: responses in br, gzip or deflate (zstd when a client prefers it and
// the runtime has it), never under 1 KiB and never text/event-stream; and, on routes that take a body,
// compressed request bodies whose inflated size is capped at the body limit (413 at the cap, inflation
// stops there).
// Around the plugin: `identity;q=0` is honoured (compressed at any size, or 406 when nothing we offer
// is acceptable), and every response whose coding depended on Accept-Encoding says so in `Vary`.

import { Transform, type TransformCallback } from 'node:stream'
import * as zlib from 'node:zlib'
import fp from 'fastify-plugin'
import fastifyCompress, { type FastifyCompressOptions } from '@fastify/compress'
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction, RouteOptions } from 'fastify'
import { AppError, ErrorCode } from '../core/errors.ts'
import { routeHooks, type OnSendHook } from '../core/route-config.ts'
import { takesNoBody } from '../core/request-body.ts'
import { addVary } from '../core/vary.ts'

export interface CompressOptions {
  /** Largest inflated request body, for routes without their own `bodyLimit` (the app's body limit). */
  maxInflatedBytes: number
}

export const COMPRESS_THRESHOLD_BYTES = 1024
// Bodies up to 64 KiB are compressed in one synchronous call, larger ones stream through zlib's thread
// pool. Measured here on 64 KiB of JSON: brotli (quality 4) 0.9 ms, gzip 0.7 ms of event-loop time, while
// the streaming path costs about twice the CPU on small bodies. The plugin's default depends on the
// CPU count (8 KiB on a 2-core host), which would make benchmarks measure different paths per machine.
export const SYNC_COMPRESS_MAX_BYTES = 64 * 1024

// Our preference on ties, best first. zstd is offered last: Node 24 still marks it experimental, so it
// is used only when a client weights it above the others or offers nothing else (browsers send
// `gzip, deflate, br, zstd` at equal weight and get br). The plugin drops zstd where zlib lacks it.
const RESPONSE_ENCODINGS: Array<'br' | 'gzip' | 'deflate' | 'zstd'> = ['br', 'gzip', 'deflate', 'zstd']
// Request bodies: no zstd, whose decoder may allocate a window of up to 128 MiB a frame asks for.
const REQUEST_ENCODINGS: Array<'gzip' | 'deflate' | 'br' | 'identity'> = ['gzip', 'deflate', 'br', 'identity']
// JSON and problem+json, XML, and text except text/event-stream (SSE must reach the client as written).
const COMPRESSIBLE = /^text\/(?!event-stream)|[/+](?:json|xml)(?:;|$)/
// Same settings as the plugin (brotli quality 4: quality 11 costs an order of magnitude more CPU).
const BROTLI_OPTIONS = { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4 } }

const compressSync: Record<string, ((body: Buffer) => Buffer) | undefined> = {
  br: (body) => zlib.brotliCompressSync(body, BROTLI_OPTIONS),
  gzip: (body) => zlib.gzipSync(body),
  deflate: (body) => zlib.deflateSync(body),
  zstd: typeof zlib.zstdCompressSync === 'function' ? (body) => zlib.zstdCompressSync(body) : undefined
}
const OFFERED = RESPONSE_ENCODINGS.filter((coding) => compressSync[coding] !== undefined)

/**
 * Inflates a request body until `cap` bytes have come out, then fails it with 413 and stops: a
 * decompression bomb (100 KiB that inflates to 100 MiB) costs at most `cap` bytes of work and memory.
 * Without it @fastify/compress leaves the count to the body reader, which answers 413 but lets the
 * inflater run through the whole bomb.
 */
export class CappedInflation extends Transform {
  readonly #inflater: Transform
  #inflated = 0
  #pending: TransformCallback | undefined

  constructor (inflater: Transform, cap: number) {
    super()
    this.#inflater = inflater
    inflater.on('data', (chunk: Buffer) => {
      if (this.destroyed) return
      this.#inflated += chunk.length
      if (this.#inflated <= cap) {
        this.push(chunk)
        return
      }
      this.destroy(new AppError(ErrorCode.PAYLOAD_TOO_LARGE, `the request body inflates to more than ${cap} bytes`))
    })
    inflater.on('error', (err) => this.destroy(err))
  }

  override _transform (chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#pending = callback
    this.#inflater.write(chunk, () => {
      const pending = this.#pending
      this.#pending = undefined
      pending?.()
    })
  }

  override _flush (callback: TransformCallback): void {
    this.#inflater.once('end', () => callback())
    this.#inflater.end()
  }

  override _destroy (err: Error | null, callback: (error?: Error | null) => void): void {
    this.#pending = undefined
    this.#inflater.destroy()
    callback(err)
  }
}

/** The plugin's request-side options for a body limit of `cap` inflated bytes. */
function requestDecompression (cap: number): Pick<FastifyCompressOptions, 'requestEncodings' | 'zlib' | 'onInvalidRequestPayload'> {
  const capped = (create: () => Transform) => () => new CappedInflation(create(), cap)
  return {
    requestEncodings: REQUEST_ENCODINGS,
    // Only the inflaters are replaced; the plugin takes everything else from node:zlib.
    zlib: { createGunzip: capped(zlib.createGunzip), createInflate: capped(zlib.createInflate), createBrotliDecompress: capped(zlib.createBrotliDecompress) },
    // Keeps our 413 (the plugin would turn every inflater error into its 400 "could not decompress").
    onInvalidRequestPayload: (_encoding, _request, error) => error instanceof AppError ? error : undefined
  }
}

/** Accept-Encoding as coding → weight (`q`, 1 when absent); codings lower-cased. */
function weights (header: string): Map<string, number> {
  const result = new Map<string, number>()
  for (const entry of header.split(',')) {
    const [name = '', ...params] = entry.split(';')
    const coding = name.trim().toLowerCase()
    if (coding === '') continue
    const q = params.map((p) => /^\s*q\s*=\s*([01](?:\.\d{0,3})?)\s*$/i.exec(p)?.[1]).find((v) => v !== undefined)
    result.set(coding, q === undefined ? 1 : Number(q))
  }
  return result
}

/**
 * When Accept-Encoding refuses the uncompressed form (`identity;q=0`, or `*;q=0` with no identity
 * entry): the coding to send instead — the client's highest-weighted one among ours, ties in our
 * order — or `null` when it accepts none of them. `undefined` when identity is acceptable.
 */
export function codingWithoutIdentity (header: string): string | null | undefined {
  const w = weights(header)
  if ((w.get('identity') ?? w.get('*') ?? 1) > 0) return undefined
  let best: string | null = null
  let bestWeight = 0
  for (const coding of OFFERED) {
    const weight = w.get(coding) ?? w.get('*') ?? 0
    if (weight > bestWeight) {
      best = coding
      bestWeight = weight
    }
  }
  return best
}

// Every refusal of identity contains a zero weight; most requests skip the parse with this one scan.
const mayRefuseIdentity = (header: string | undefined): header is string =>
  header !== undefined && (header.includes('q=0') || header.includes('Q=0'))

function isCompressible (reply: FastifyReply): boolean {
  const type = reply.getHeader('content-type')
  return COMPRESSIBLE.test(typeof type === 'string' ? type : 'application/json')
}

// Lower-case, as the plugin writes it, so it recognises ours and adds no second one.
const varyOnAcceptEncoding = (reply: FastifyReply): void => { addVary(reply, 'accept-encoding') }

function refuseUnacceptableEncoding (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
  const accept = request.headers['accept-encoding']
  if (mayRefuseIdentity(accept) && codingWithoutIdentity(accept) === null) {
    done(new AppError(ErrorCode.NOT_ACCEPTABLE, `Accept-Encoding refuses identity and accepts none of ${OFFERED.join(', ')}`))
    return
  }
  done()
}

/**
 * Runs before the plugin's route-level onSend. Bodies at or over the threshold may be compressed or
 * not depending on Accept-Encoding, so they always carry `Vary` (the plugin adds it only when it
 * compresses). Smaller bodies are sent as they are, unless the client refused identity: then they
 * are compressed here.
 */
function compressionPolicy (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err?: Error | null, payload?: unknown) => void): void {
  if (typeof payload !== 'string' && !Buffer.isBuffer(payload)) {
    // A stream of unknown size: the plugin compresses it whenever the client accepts a coding.
    if (payload !== null && payload !== undefined && isCompressible(reply)) varyOnAcceptEncoding(reply)
    done()
    return
  }
  if (payload.length >= COMPRESS_THRESHOLD_BYTES) {
    if (isCompressible(reply)) varyOnAcceptEncoding(reply)
    done()
    return
  }
  const accept = request.headers['accept-encoding']
  // Empty bodies (204, 304, HEAD of nothing) stay empty.
  if (payload.length === 0 || !mayRefuseIdentity(accept) || reply.getHeader('content-encoding') !== undefined || !isCompressible(reply)) {
    done()
    return
  }
  const coding = codingWithoutIdentity(accept)
  const encode = coding === null || coding === undefined ? undefined : compressSync[coding]
  if (encode === undefined) {
    done()
    return
  }
  varyOnAcceptEncoding(reply)
  reply.header('content-encoding', coding)
  done(null, encode(Buffer.isBuffer(payload) ? payload : Buffer.from(payload)))
}

/** A string or Buffer body of fewer bytes than the threshold (a string's length bounds its UTF-8 size both ways). */
function isUnderThreshold (payload: unknown): boolean {
  if (Buffer.isBuffer(payload)) return payload.length < COMPRESS_THRESHOLD_BYTES
  if (typeof payload !== 'string' || payload.length >= COMPRESS_THRESHOLD_BYTES) return false
  return payload.length * 3 < COMPRESS_THRESHOLD_BYTES || Buffer.byteLength(payload) < COMPRESS_THRESHOLD_BYTES
}

/**
 * The plugin's onSend, skipped where it can only pass the body on untouched: a string or Buffer under
 * the threshold (given our options: no `onUnsupportedEncoding`, no `inflateIfDeflated`). Before
 * reaching that size check it negotiates Accept-Encoding and tests the Content-Type on every response,
 * about 2 µs a small JSON response. Everything else — every body it may compress — still goes to it.
 */
function skipUncompressible (pluginOnSend: OnSendHook): OnSendHook {
  return function compressOnSend (request, reply, payload, done) {
    if (isUnderThreshold(payload)) {
      done()
      return
    }
    pluginOnSend.call(this, request, reply, payload, done)
  }
}

export default fp(async function compress (fastify, options: CompressOptions) {
  // The onSend hooks each route had before the plugin added its own, to find and wrap the plugin's below.
  const before = new WeakMap<RouteOptions, unknown[]>()
  // A route with its own body limit gets an inflation cap to match; a route that takes no body never
  // inflates one. Added before the plugin registers, so this hook runs before the plugin reads the
  // route's `decompress` options.
  fastify.addHook('onRoute', (route: RouteOptions) => {
    if (takesNoBody(route)) route.decompress = false
    else if (route.bodyLimit !== undefined && route.decompress === undefined) route.decompress = requestDecompression(route.bodyLimit)
    before.set(route, routeHooks(route.onSend))
  })
  await fastify.register(fastifyCompress, {
    encodings: RESPONSE_ENCODINGS,
    threshold: COMPRESS_THRESHOLD_BYTES,
    syncThreshold: SYNC_COMPRESS_MAX_BYTES,
    customTypes: COMPRESSIBLE,
    brotliOptions: BROTLI_OPTIONS,
    ...requestDecompression(options.maxInflatedBytes)
  })
  // Runs after the plugin's onRoute, which appended its onSend to the route's list.
  fastify.addHook('onRoute', (route: RouteOptions) => {
    const previous = before.get(route) ?? []
    const hooks = routeHooks(route.onSend) as OnSendHook[]
    // New array, never an in-place edit: Fastify derives the HEAD route from the GET route's options.
    route.onSend = hooks.map((hook) => previous.includes(hook) ? hook : skipUncompressible(hook)) as RouteOptions['onSend']
  })
  fastify.addHook('onRequest', refuseUnacceptableEncoding)
  fastify.addHook('onSend', compressionPolicy)
}, { name: 'keel-compress', dependencies: ['keel-errors'] })
