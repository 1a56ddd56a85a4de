// Which failures are which: undici's and the OS's errors turned into typed upstream errors, and for
// each upstream error whether another attempt may help, whether it says the upstream is unwell (the
// breaker counts only those) and the outcome label it is reported under.

import { errors as undiciErrors } from 'undici'
import {
  UpstreamConnectionError, UpstreamError, UpstreamHttpError, UpstreamResponseInvalidError, UpstreamTimeoutError
} from './upstream-errors.ts'

const SYSTEM_CONNECTION_ERRORS = new Set(['UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_DESTROYED'])
const INVALID_RESPONSE_ERRORS = new Set(['UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'UND_ERR_HEADERS_OVERFLOW', 'UND_ERR_RES_EXCEEDED_MAX_SIZE'])
const RETRYABLE_STATUS = new Set([429, 502, 503, 504])

/** undici's and the OS's errors as ours; anything else (a bug, e.g. an invalid header) is returned unchanged. */
export function toUpstreamError (name: string, err: unknown): unknown {
  if (err instanceof UpstreamError) return err
  const { code, syscall } = (err ?? {}) as { code?: unknown, syscall?: unknown }
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return new UpstreamTimeoutError(name, 'connect', err)
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return new UpstreamTimeoutError(name, 'headers', err)
  if (code === 'UND_ERR_BODY_TIMEOUT') return new UpstreamTimeoutError(name, 'body', err)
  if (typeof code === 'string' && (INVALID_RESPONSE_ERRORS.has(code) || code.startsWith('HPE_'))) {
    return new UpstreamResponseInvalidError(name, code, err)
  }
  // undici's parser errors often carry no code at all (bytes that are not HTTP, e.g. the wrong port).
  if (err instanceof undiciErrors.HTTPParserError) return new UpstreamResponseInvalidError(name, 'not an HTTP response', err)
  if (typeof syscall === 'string' || (typeof code === 'string' && SYSTEM_CONNECTION_ERRORS.has(code))) {
    return new UpstreamConnectionError(name, err)
  }
  return err
}

/** Errors after which another attempt may succeed (and the request may be sent again). */
export function isRetryable (err: UpstreamError): boolean {
  if (err.stoppedBy !== undefined) return false
  if (err instanceof UpstreamConnectionError) return true
  if (err instanceof UpstreamTimeoutError) return err.phase !== 'deadline'
  return err instanceof UpstreamHttpError && RETRYABLE_STATUS.has(err.status)
}

/** Errors that say the upstream is unwell; the breaker counts only these. */
export function countsAgainstHealth (err: unknown): boolean {
  if (err instanceof UpstreamHttpError) return err.status >= 500
  return err instanceof UpstreamTimeoutError || err instanceof UpstreamConnectionError || err instanceof UpstreamResponseInvalidError
}

/** `outcome` label values: `success`, or an upstream error's code without its `UPSTREAM_` prefix, lowercased. */
export type CallOutcome = string

export function outcomeOf (err: unknown): CallOutcome {
  return err instanceof UpstreamError ? err.code.slice('UPSTREAM_'.length).toLowerCase() : 'error'
}
