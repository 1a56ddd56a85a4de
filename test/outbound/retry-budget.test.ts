// The retry budget: retries limited to a fraction of recent calls plus a per-second reserve.

import t from 'tap'
import { createRetryBudget } from '../../outbound/retry-budget.ts'

t.test('retries are limited to ratio × calls plus the reserve within the window', async (t) => {
  let now = 1_000_000
  const budget = createRetryBudget({ ratio: 0.2, minPerSecond: 1, windowMs: 10_000, now: () => now })
  t.equal(budget.available(), 10, 'the reserve: 1 per second over 10 s')
  for (let i = 0; i < 100; i++) budget.recordCall()
  t.equal(budget.available(), 30)
  let granted = 0
  while (budget.tryRetry()) granted++
  t.equal(granted, 30, '20 % of 100 calls + 10 reserve')
  now += 5_000
  t.notOk(budget.tryRetry(), 'still spent half a window later')
  now += 5_001
  t.equal(budget.available(), 10, 'calls and retries leave the window together')
  t.ok(budget.tryRetry())
})

t.test('the window slides bucket by bucket', async (t) => {
  let now = 0
  const budget = createRetryBudget({ ratio: 1, minPerSecond: 0, windowMs: 1000, now: () => now })
  budget.recordCall()
  now = 500
  budget.recordCall()
  t.equal(budget.available(), 2)
  now = 1050
  t.equal(budget.available(), 1, 'the first call aged out, the second has not')
  now = 1600
  t.equal(budget.available(), 0)
})

t.test('a budget without calls or reserve allows no retry', async (t) => {
  const budget = createRetryBudget({ ratio: 0.2, minPerSecond: 0, windowMs: 10_000 })
  t.notOk(budget.tryRetry())
})

t.test('a budget refuses nonsensical settings', async (t) => {
  t.throws(() => createRetryBudget({ ratio: -1, minPerSecond: 0, windowMs: 1000 }), RangeError)
  t.throws(() => createRetryBudget({ ratio: 0.2, minPerSecond: Number.NaN, windowMs: 1000 }), RangeError)
  t.throws(() => createRetryBudget({ ratio: 0.2, minPerSecond: 0, windowMs: 5 }), RangeError)
})
