// W3C traceparent on outbound calls, by OpenTelemetry's W3C propagator: without tracing, the caller's
// trace travels on unchanged (its span is the upstream's parent); a malformed one travels nowhere;
// an inbound tracestate travels with it only within the W3C bounds.

import t from 'tap'
import { callerContext, injectTraceHeaders } from '../../outbound/trace-context.ts'

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const VALID = `00-${TRACE}-00f067aa0ba902b7-01`

function sent (traceparent: string | string[] | undefined, tracestate?: string | string[]): Record<string, string> {
  const headers: Record<string, string> = {}
  injectTraceHeaders(callerContext(traceparent, tracestate), headers)
  return headers
}

t.test('a valid caller traceparent travels on with its trace id, parent id and flags', async (t) => {
  t.same(sent(VALID), { traceparent: VALID })
  t.same(sent(`00-${TRACE}-00f067aa0ba902b7-00`), { traceparent: `00-${TRACE}-00f067aa0ba902b7-00` })
})

t.test('future versions are read by their first four fields', async (t) => {
  t.same(sent(`01-${TRACE}-00f067aa0ba902b7-00-extra`), { traceparent: `00-${TRACE}-00f067aa0ba902b7-00` })
})

t.test('a missing or malformed traceparent sends none', async (t) => {
  for (const bad of [undefined, ['x'], '', 'garbage', `ff-${TRACE}-00f067aa0ba902b7-01`, `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`,
    `00-${TRACE}-${'0'.repeat(16)}-01`, `00-${TRACE.toUpperCase()}-00f067aa0ba902b7-01`, `${VALID}-extra`]) {
    t.same(sent(bad, 'k=v'), {}, JSON.stringify(bad))
  }
})

/** A valid member `key=vvv…` whose text is exactly `length` characters. */
const member = (key: string, length: number) => `${key}=${'v'.repeat(length - key.length - 1)}`

t.test('tracestate: valid members pass, normalised (spaces and empty members dropped, repeated headers joined)', async (t) => {
  t.equal(sent(VALID, 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7').tracestate, 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7')
  t.equal(sent(VALID, ' a=1 ,\tb=2,, ').tracestate, 'a=1,b=2')
  t.equal(sent(VALID, ['a=1', 'tenant@sys=x y']).tracestate, 'a=1,tenant@sys=x y')
  for (const none of ['', ' , ', []]) t.equal(sent(VALID, none).tracestate, undefined, JSON.stringify(none))
})

t.test('tracestate: invalid members are dropped, never forwarded', async (t) => {
  for (const bad of ['novalue', 'A=upper', 'a=tab\tinside', `k=${'x'.repeat(257)}`, `${'k'.repeat(257)}=v`, 'x'.repeat(15_000), 'a=\u00e9']) {
    t.equal(sent(VALID, bad).tracestate, undefined, bad.slice(0, 40))
  }
  t.equal(sent(VALID, 'ok=1,A=upper').tracestate, 'ok=1', 'the valid members of a list stay')
})

t.test('tracestate: at most 32 members and 512 characters travel on (a 15 KB header never does)', async (t) => {
  const members33 = Array.from({ length: 33 }, (_, i) => `k${i}=${i}`)
  t.equal(sent(VALID, members33.join(',')).tracestate, members33.slice(0, 32).join(','))
  const large = Array.from({ length: 60 }, (_, i) => member(`k${i}`, 250)).join(',')
  t.ok(large.length > 15_000)
  const bounded = sent(VALID, large).tracestate!
  t.ok(bounded.length <= 512, `${bounded.length} characters`)
  const exactly512 = [member('a', 255), member('b', 256)].join(',')
  t.equal(exactly512.length, 512)
  t.equal(sent(VALID, exactly512).tracestate, exactly512, '512 characters pass as they are')
})

t.test('a tracestate without a valid traceparent travels nowhere', async (t) => {
  t.same(sent(undefined, 'k=v'), {})
})
