// W3C traceparent: the inbound trace continues with a new span per attempt, or a new trace starts.

import t from 'tap'
import { childTraceparent, newTrace, parseTraceparent } from '../../outbound/trace-context.ts'

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const VALID = `00-${TRACE}-00f067aa0ba902b7-01`

t.test('a valid inbound traceparent is continued with a fresh parent id and the same flags', async (t) => {
  const trace = parseTraceparent(VALID)
  t.same(trace, { traceId: TRACE, flags: '01' })
  const a = childTraceparent(trace!)
  const b = childTraceparent(trace!)
  t.match(a, new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`))
  t.not(a, b, 'each attempt is its own span')
  t.notMatch(a, /-00f067aa0ba902b7-/)
})

t.test('future versions are read by their first four fields', async (t) => {
  t.same(parseTraceparent(`01-${TRACE}-00f067aa0ba902b7-00-extra`), { traceId: TRACE, flags: '00' })
})

t.test('a missing or malformed traceparent starts a new, unsampled trace', async (t) => {
  for (const bad of [undefined, ['x'], '', 'garbage', `ff-${TRACE}-00f067aa0ba902b7-01`, `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`,
    `00-${TRACE}-${'0'.repeat(16)}-01`, `00-${TRACE.toUpperCase()}-00f067aa0ba902b7-01`, `${VALID}-extra`]) {
    t.equal(parseTraceparent(bad), undefined, JSON.stringify(bad))
  }
  const fresh = newTrace()
  t.match(fresh.traceId, /^[0-9a-f]{32}$/)
  t.equal(fresh.flags, '00')
  t.not(newTrace().traceId, fresh.traceId)
})
