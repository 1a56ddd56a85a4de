// The tap subset of reliability run 1 (bench/soak/runs/shutdown.ts) with small counts: SIGTERM under
// HTTP/1.1, HTTP/2 and WebSocket traffic loses no accepted request and closes WebSockets with 1001.

import t from 'tap'
import { assertSoakPasses } from './assert-soak-passes.ts'
import { run } from '../../soak/runs/shutdown.ts'

t.test('SIGTERM under load: every request accepted before the signal gets its whole answer, WebSockets get 1001, exit 0', async (t) => {
  await assertSoakPasses(t, run)
})
