// One attempt of a call: the prepared request sent through the pool under the call's signal, with
// what changes per attempt (its span, named in `traceparent`; the time left); a status >= 400 becomes `UpstreamHttpError`
// (its body drained within a limit, to keep the connection); a 2xx body is read within
// `maxResponseBytes` and decoded (`jsonDecoder` checks JSON against a schema). Every failure leaves
// as a typed upstream error, or as itself when it is a bug.

import type { Readable } from 'node:stream'
import type { Span } from '@opentelemetry/api'
import type { Dispatcher } from 'undici'
import type { Static, TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import { parseRetryAfter } from './backoff.ts'
import type { Clock, CallScope } from './call-scope.ts'
import type { OutboundRequest, UpstreamResponse } from './outbound-request.ts'
import { toUpstreamError } from './failure-classification.ts'
import { RetryStop, UpstreamError, UpstreamHttpError, UpstreamResponseInvalidError } from './upstream-errors.ts'

// An error response's body is read (to keep the connection) only up to this; larger ones close it.
const ERROR_BODY_LIMIT = 4096

export interface AttemptContext {
  name: string
  /** The pool's origin (`http://host:port`). */
  origin: string
  dispatcher: Dispatcher
  clock: Clock
  headersTimeoutMs: number
  bodyTimeoutMs: number
  maxResponseBytes: number
  /** Called as each attempt starts. */
  onAttempt?: () => void
}

export type Attempt = <T>(req: OutboundRequest<T>, scope: CallScope) => Promise<T>

export function createAttempt (ctx: AttemptContext): Attempt {
  const { name, origin, dispatcher, clock, headersTimeoutMs: headersTimeout, bodyTimeoutMs: bodyTimeout } = ctx
  return async function attempt<T> (req: OutboundRequest<T>, scope: CallScope): Promise<T> {
    scope.attempts++
    ctx.onAttempt?.()
    const headers: Record<string, string> = {
      ...req.headers,
      // The time left, so the upstream can stop working on an answer nobody will wait for (gRPC-style).
      'x-request-timeout-ms': String(Math.max(0, Math.floor(scope.at - clock.now())))
    }
    const span = scope.trace.startAttempt(scope.attempts, headers)
    try {
      const value = await send(req, scope, headers, span)
      scope.trace.endAttempt(span)
      return value
    } catch (err) {
      scope.trace.endAttempt(span, err)
      throw err
    }
  }

  async function send<T> (req: OutboundRequest<T>, scope: CallScope, headers: Record<string, string>, span: Span): Promise<T> {
    let response
    try {
      response = await dispatcher.request({
        origin, method: req.method as Dispatcher.HttpMethod, path: req.path, headers, body: req.body, signal: scope.signal, headersTimeout, bodyTimeout
      })
    } catch (err) {
      throw toUpstreamError(name, err)
    }
    const { statusCode, headers: responseHeaders, body } = response
    scope.trace.responded(span, statusCode)
    if (statusCode >= 400) {
      const retryAfterMs = parseRetryAfter(responseHeaders['retry-after'], clock.now())
      await body.dump({ limit: ERROR_BODY_LIMIT }).catch(() => {})
      throw new UpstreamHttpError(name, statusCode, retryAfterMs)
    }
    const bytes = await readBody(name, body, ctx.maxResponseBytes)
    return req.decode({ status: statusCode, headers: responseHeaders, body: bytes })
  }
}

/** The whole body, at most `maxBytes`; errors are typed, and final once a byte has arrived. */
function readBody (name: string, body: Readable, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let received = 0
    body.on('data', (chunk: Buffer) => {
      received += chunk.length
      if (received > maxBytes) body.destroy(new UpstreamResponseInvalidError(name, `body over ${maxBytes} bytes`))
      else chunks.push(chunk)
    })
    body.on('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received)))
    body.on('error', (err) => {
      const failure = toUpstreamError(name, err)
      // Part of the answer is in: sending the request again could double its effects downstream.
      if (received > 0 && failure instanceof UpstreamError) failure.stoppedBy ??= RetryStop.BODY_CONSUMED
      reject(failure)
    })
  })
}

const compiled = new WeakMap<TSchema, TypeCheck<TSchema>>()
/** Compiles each schema once, however many calls use it. */
function checkerFor (schema: TSchema): TypeCheck<TSchema> {
  let check = compiled.get(schema)
  if (check === undefined) {
    check = TypeCompiler.Compile(schema)
    compiled.set(schema, check)
  }
  return check
}

/** Decodes a JSON body and checks it against `schema` (not JSON, or not its shape: `UpstreamResponseInvalidError`). */
export function jsonDecoder<T extends TSchema> (name: string, schema: T): (response: UpstreamResponse) => Static<T> {
  const check = checkerFor(schema)
  return ({ body }) => {
    let value: unknown
    try {
      value = JSON.parse(body.toString('utf8'))
    } catch (err) {
      throw new UpstreamResponseInvalidError(name, 'body is not JSON', err)
    }
    if (!check.Check(value)) {
      const first = check.Errors(value).First()
      throw new UpstreamResponseInvalidError(name, `body does not match the schema at ${first?.path ?? '/'}: ${first?.message ?? 'invalid'}`)
    }
    return value as Static<T>
  }
}
