// The invalid-token budget on its own: per address, in one-minute windows, with bounded memory.

import t from 'tap'
import { AuthFailureThrottle, FAILURE_WINDOW_MS } from '../../auth/failure-throttle.ts'

t.test('an address spends its budget in a window and has it back when the window ends', async (t) => {
  const throttle = new AuthFailureThrottle(3)
  const start = 1_000_000
  t.same([1, 2, 3].map(() => throttle.record('a', start)), [false, false, true], 'the third failure spends it')
  t.equal(throttle.retryAfterSec('a', start), 60)
  t.equal(throttle.retryAfterSec('a', start + 30_500), 30, 'rounded up to whole seconds')
  t.equal(throttle.retryAfterSec('b', start), 0, 'another address is not affected')
  t.equal(throttle.retryAfterSec('a', start + FAILURE_WINDOW_MS), 0, 'a new window, a new budget')
  t.equal(throttle.record('a', start + FAILURE_WINDOW_MS), false)
})

t.test('memory stays bounded whatever the number of addresses', async (t) => {
  const throttle = new AuthFailureThrottle(1)
  for (let i = 0; i < 25_000; i++) throttle.record(`10.0.${i >> 8}.${i & 255}`, 0)
  let remembered = 0
  for (let i = 0; i < 25_000; i++) if (throttle.retryAfterSec(`10.0.${i >> 8}.${i & 255}`, 0) > 0) remembered++
  t.ok(remembered <= 10_000, `${remembered} addresses remembered`)
  t.equal(throttle.retryAfterSec('10.0.97.167', 0) > 0, true, 'the most recent ones are kept')
})
