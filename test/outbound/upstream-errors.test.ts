// What a failed outbound call becomes for Keel's own client: 503 + Retry-After when refused locally,
// 504 when the deadline ran out, 502 otherwise — never with upstream detail.

import t from 'tap'
import { AppError } from '../../core/errors.ts'
import {
  BulkheadFullError, CircuitOpenError, UpstreamAbortedError, UpstreamConnectionError, UpstreamHttpError,
  UpstreamResponseInvalidError, UpstreamTimeoutError, upstreamFailure
} from '../../outbound/upstream-errors.ts'

const SERVICE = 'the quote service'

t.test('refusals are 503 with a Retry-After in whole seconds (at least 1)', async (t) => {
  t.match(upstreamFailure(new CircuitOpenError('quotes', 2500), SERVICE), { statusCode: 503, code: 'SERVICE_UNAVAILABLE', headers: { 'retry-after': '3' } })
  t.match(upstreamFailure(new CircuitOpenError('quotes', 0), SERVICE), { statusCode: 503, headers: { 'retry-after': '1' } })
  t.match(upstreamFailure(new BulkheadFullError('quotes'), SERVICE), { statusCode: 503, headers: { 'retry-after': '1' }, message: /busy/ })
})

t.test('the call deadline is 504; per-attempt timeouts and every other failure are 502', async (t) => {
  t.match(upstreamFailure(new UpstreamTimeoutError('quotes', 'deadline'), SERVICE), { statusCode: 504, code: 'GATEWAY_TIMEOUT' })
  for (const err of [
    new UpstreamTimeoutError('quotes', 'headers'), new UpstreamTimeoutError('quotes', 'body'), new UpstreamTimeoutError('quotes', 'connect'),
    new UpstreamHttpError('quotes', 503, 1000), new UpstreamConnectionError('quotes', Object.assign(new Error('x'), { code: 'ECONNRESET' })),
    new UpstreamResponseInvalidError('quotes', 'body is not JSON'), new UpstreamAbortedError('quotes')
  ]) {
    const mapped = upstreamFailure(err, SERVICE) as AppError
    t.match(mapped, { statusCode: 502, code: 'BAD_GATEWAY', message: 'the quote service failed to answer' }, err.code)
    t.equal(mapped.cause, err, 'the upstream error is kept as the cause, for the log')
  }
})

t.test('errors that are not upstream errors pass through unchanged', async (t) => {
  const bug = new TypeError('bug')
  t.equal(upstreamFailure(bug, SERVICE), bug)
})

t.test('upstream errors carry a stable code and the upstream name, never its URL', async (t) => {
  const err = new UpstreamConnectionError('quotes', Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:80'), { code: 'ECONNREFUSED' }))
  t.equal(err.code, 'UPSTREAM_CONNECTION_FAILED')
  t.equal(err.message, 'quotes: connection failed (ECONNREFUSED)')
  t.equal(new UpstreamConnectionError('quotes', {}).message, 'quotes: connection failed (unknown)')
  t.equal(new UpstreamHttpError('quotes', 500).retryAfterMs, undefined)
})
