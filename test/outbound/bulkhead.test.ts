// The bulkhead: bounded concurrency, a bounded queue, immediate refusal beyond both.

import t from 'tap'
import { createBulkhead } from '../../outbound/bulkhead.ts'
import { BulkheadFullError } from '../../outbound/upstream-errors.ts'

const full = () => new BulkheadFullError('test')

t.test('calls beyond capacity wait in the queue; beyond the queue they are refused at once', async (t) => {
  const bulkhead = createBulkhead(2, 1, full)
  const signal = new AbortController().signal
  await bulkhead.acquire(signal)
  await bulkhead.acquire(signal)
  t.equal(bulkhead.active, 2)
  let third = false
  const waiting = bulkhead.acquire(signal).then(() => { third = true })
  t.equal(bulkhead.queued, 1)
  await t.rejects(bulkhead.acquire(signal), { code: 'UPSTREAM_BULKHEAD_FULL' }, 'queue full: refused')
  t.notOk(third)
  bulkhead.release()
  await waiting
  t.ok(third, 'a release hands the slot to the next waiter')
  t.equal(bulkhead.active, 2)
  bulkhead.release()
  bulkhead.release()
  t.equal(bulkhead.active, 0)
})

t.test('an aborted waiter leaves the queue with the signal reason', async (t) => {
  const bulkhead = createBulkhead(1, 2, full)
  await bulkhead.acquire(new AbortController().signal)
  const controller = new AbortController()
  const waiting = bulkhead.acquire(controller.signal)
  const reason = new Error('deadline')
  controller.abort(reason)
  await t.rejects(waiting, reason)
  t.equal(bulkhead.queued, 0)
  await t.rejects(bulkhead.acquire(controller.signal), reason, 'an already-aborted signal never waits')
  bulkhead.release()
  t.equal(bulkhead.active, 0, 'the slot was not handed to the departed waiter')
})

t.test('a bulkhead refuses nonsensical settings', async (t) => {
  t.throws(() => createBulkhead(0, 1, full), RangeError)
  t.throws(() => createBulkhead(1.5, 1, full), RangeError)
  t.throws(() => createBulkhead(1, -1, full), RangeError)
})
