// TokenBucket: burst, continuous refill at the rate, and "full" once the client has slowed down.

import t from 'tap'
import { TokenBucket } from '../../realtime/protocol/token-bucket.ts'

t.test('allows a burst, then one message per 1/rate seconds', async (t) => {
  const bucket = new TokenBucket(10, 3, 0)
  t.same([bucket.take(0), bucket.take(0), bucket.take(0), bucket.take(0)], [true, true, true, false])
  t.notOk(bucket.take(99), 'not yet a whole token after 99 ms at 10/s')
  t.ok(bucket.take(100))
  t.notOk(bucket.take(100))
})

t.test('refills up to the burst, never beyond, and reports when full', async (t) => {
  const bucket = new TokenBucket(10, 3, 0)
  for (let i = 0; i < 3; i++) bucket.take(0)
  t.notOk(bucket.isFull(200))
  t.ok(bucket.isFull(300))
  t.ok(bucket.isFull(60_000))
  t.same([bucket.take(60_000), bucket.take(60_000), bucket.take(60_000), bucket.take(60_000)], [true, true, true, false], 'a long pause is still one burst')
  t.notOk(bucket.take(59_000), 'a clock that goes back adds nothing')
})

t.test('rejects a rate or burst that cannot work', async (t) => {
  t.throws(() => new TokenBucket(0, 1, 0), RangeError)
  t.throws(() => new TokenBucket(1, 0, 0), RangeError)
  t.throws(() => new TokenBucket(Number.NaN, 1, 0), RangeError)
})
