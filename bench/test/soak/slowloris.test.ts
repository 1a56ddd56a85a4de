// The tap subset of reliability run 2 (bench/soak/runs/slowloris.ts) with small counts: connections that
// send headers one byte a second neither slow a normal client down nor outlive HEADERS_TIMEOUT_MS.

import t from 'tap'
import { assertSoakPasses } from './assert-soak-passes.ts'
import { run } from '../../soak/runs/slowloris.ts'

t.test('slowloris: a normal client keeps its latency and the slow connections are cut at HEADERS_TIMEOUT_MS', async (t) => {
  await assertSoakPasses(t, run)
})
