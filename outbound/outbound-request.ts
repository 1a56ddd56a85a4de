// The request one call sends, prepared once and repeated as is by every attempt: method, path under
// the base URL's prefix, headers (request id, idempotency key), the trace context it continues,
// whether it may be sent again, and how its answer becomes the call's value.

import { randomUUID } from 'node:crypto'
import type { Context } from '@opentelemetry/api'
import type { CallOptions } from './client-options.ts'
import { callerContext } from './trace-context.ts'

/** A 2xx answer, its body read in full. */
export interface UpstreamResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
}

export interface OutboundRequest<T> {
  method: string
  /** The base URL's prefix included. */
  path: string
  body?: string | Buffer
  headers: Record<string, string>
  /** The trace context the call continues (its span's parent). */
  parent: Context
  idempotent: boolean
  /** Turns the answer into the call's value; throws a typed error when it is not what was asked for. */
  decode: (response: UpstreamResponse) => T
}

/** What the caller asked for, before the client's defaults and the call's context are added. */
export interface RequestSpec<T> {
  method: string
  /** Starts with `/`. */
  path: string
  body?: string | Buffer
  decode: (response: UpstreamResponse) => T
}

// RFC 9110 §9.2.2. POST and PATCH become retryable only with an Idempotency-Key.
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])

export function prepareRequest<T> (client: { name: string, prefix: string }, spec: RequestSpec<T>, callOptions: CallOptions): OutboundRequest<T> {
  if (!spec.path.startsWith('/')) throw new TypeError(`${client.name}: request path must start with "/"`)
  const headers: Record<string, string> = { ...callOptions.headers }
  if (callOptions.requestId !== undefined) headers['x-request-id'] = callOptions.requestId
  if (callOptions.idempotencyKey !== undefined) {
    headers['idempotency-key'] = callOptions.idempotencyKey === true ? randomUUID() : callOptions.idempotencyKey
  }
  return {
    method: spec.method,
    path: client.prefix + spec.path,
    body: spec.body,
    headers,
    parent: callerContext(callOptions.traceparent, callOptions.tracestate),
    idempotent: IDEMPOTENT_METHODS.has(spec.method) || headers['idempotency-key'] !== undefined,
    decode: spec.decode
  }
}
