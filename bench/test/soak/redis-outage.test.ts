// The tap subset of reliability run 4 (bench/soak/runs/redis-outage.ts) with small counts: Redis killed
// and restarted under WebSocket and rate-limited traffic on two instances.

import t from 'tap'
import { assertSoakPasses } from './assert-soak-passes.ts'
import { redisSkipReason } from '../../../test/helpers/redis.ts'
import { run } from '../../soak/runs/redis-outage.ts'

t.test('a Redis crash and restart: no instance dies, local rooms keep delivering, readiness and cross-instance delivery recover', { skip: redisSkipReason({ control: true }) }, async (t) => {
  await assertSoakPasses(t, run)
})
