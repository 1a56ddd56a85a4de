// W3C traceparent: the inbound trace continues with a new span per attempt, or a new trace starts;
// an inbound tracestate travels with it only within the W3C limits.

import t from 'tap'
import { boundTracestate, childTraceparent, newTrace, parseTraceparent } from '../../outbound/trace-context.ts'

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

/** A valid member `key=vvv…` whose text is exactly `length` characters. */
const member = (key: string, length: number) => `${key}=${'v'.repeat(length - key.length - 1)}`

t.test('tracestate: valid members pass, normalised (spaces and empty members dropped, repeated headers joined)', async (t) => {
  t.equal(boundTracestate('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'), 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7')
  t.equal(boundTracestate(' a=1 ,\tb=2,, '), 'a=1,b=2')
  t.equal(boundTracestate(['a=1', 'tenant@sys=x y']), 'a=1,tenant@sys=x y')
  for (const none of [undefined, '', ' , ', []]) t.equal(boundTracestate(none), undefined, JSON.stringify(none))
})

t.test('tracestate: a malformed list is dropped whole, never forwarded', async (t) => {
  for (const bad of ['novalue', 'A=upper', '1a=digit-first', 'a=has=equals', 'a=tab\tinside', 'a=1,a=2', `k=${'x'.repeat(257)}`,
    `${'k'.repeat(257)}=v`, 'x'.repeat(15_000), 'a=\u00e9']) {
    t.equal(boundTracestate(bad), undefined, bad.slice(0, 40))
  }
})

t.test('tracestate: more than 32 members is dropped whole (a 15 KB header never travels on)', async (t) => {
  const members32 = Array.from({ length: 32 }, (_, i) => `k${i}=${i}`)
  t.equal(boundTracestate(members32.join(',')), members32.join(','))
  t.equal(boundTracestate([...members32, 'k32=32'].join(',')), undefined)
  const large = Array.from({ length: 60 }, (_, i) => member(`k${i}`, 250)).join(',')
  t.ok(large.length > 15_000)
  t.equal(boundTracestate(large), undefined)
})

t.test('tracestate: over 512 characters, members over 128 characters go first, then members from the end', async (t) => {
  const small = Array.from({ length: 6 }, (_, i) => member(`s${i}`, 100))
  const big = member('big', 200)
  const bounded = boundTracestate([small[0], big, ...small.slice(1)].join(','))!
  t.ok(bounded.length <= 512, `${bounded.length} characters`)
  t.equal(bounded, small.slice(0, 5).join(','), 'the large member went first, then the last small one')
  const exactly512 = [member('a', 255), member('b', 256)].join(',')
  t.equal(exactly512.length, 512)
  t.equal(boundTracestate(exactly512), exactly512, '512 characters pass as they are')
})
