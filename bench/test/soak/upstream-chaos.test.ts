// The tap subset of reliability run 5 (bench/soak/runs/upstream-chaos.ts) with small counts: behind a
// chaotic upstream, every quote request is answered in time and the retry budget bounds the upstream's load.

import t from 'tap'
import { assertSoakPasses } from './assert-soak-passes.ts'
import { run } from '../../soak/runs/upstream-chaos.ts'

t.test('behind a chaotic upstream every quote request gets a documented answer within its deadline, and retries stay within the budget', async (t) => {
  await assertSoakPasses(t, run)
})
