// The tap subset of reliability run 6 (bench/soak/runs/ws-abuse.ts) with small counts: abusive
// WebSocket clients get the protocol's answers while well-behaved ones keep their latency.

import t from 'tap'
import { assertSoakPasses } from './assert-soak-passes.ts'
import { run } from '../../soak/runs/ws-abuse.ts'

t.test('WebSocket floods, oversized frames and invalid JSON get the protocol\'s answers, and neither memory nor well-behaved clients suffer', async (t) => {
  await assertSoakPasses(t, run)
})
