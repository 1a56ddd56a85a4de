// Backoff delays and Retry-After parsing: jittered, capped, and the upstream's ask honoured.

import t from 'tap'
import { backoffDelay, parseRetryAfter } from '../../outbound/backoff.ts'

const policy = { baseMs: 100, maxMs: 1000 }

t.test('backoff delays are full-jittered below an exponentially growing ceiling', async (t) => {
  const nearlyOne = () => 0.999999
  t.same([1, 2, 3, 4].map((n) => backoffDelay(n, policy, nearlyOne)), [99, 199, 399, 799], 'ceilings 100, 200, 400, 800')
  t.same([1, 2, 3, 4].map((n) => backoffDelay(n, policy, () => 0)), [0, 0, 0, 0], 'full jitter reaches down to zero')
  t.equal(backoffDelay(3, policy, () => 0.5), 200, 'half of the 400 ms ceiling')
})

t.test('backoff delays never exceed the cap, however many retries', async (t) => {
  for (const retry of [5, 6, 10, 40, 2000]) t.ok(backoffDelay(retry, policy, () => 0.999999) < 1000, `retry ${retry}`)
})

t.test('Retry-After accepts delay-seconds and HTTP dates', async (t) => {
  const now = Date.parse('2026-01-01T00:00:00Z')
  t.equal(parseRetryAfter('1', now), 1000)
  t.equal(parseRetryAfter(' 120 ', now), 120_000)
  t.equal(parseRetryAfter(['2', '9'], now), 2000, 'the first of repeated headers')
  t.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now), 5000, 'IMF-fixdate')
  t.equal(parseRetryAfter('Thursday, 01-Jan-26 00:00:07 GMT', now), 7000, 'RFC 850 date')
  t.equal(parseRetryAfter('Wed, 31 Dec 2025 23:59:00 GMT', now), 0, 'a date in the past means now')
})

t.test('a malformed Retry-After is ignored', async (t) => {
  const now = Date.now()
  for (const bad of [undefined, '', '-1', '1.5', 'soon', 'Thu Jan  1 00:00:05 2026', 'Thu, 99 Foo 2026 00:00:05 GMT', '99999999999']) {
    t.equal(parseRetryAfter(bad, now), undefined, JSON.stringify(bad))
  }
})
