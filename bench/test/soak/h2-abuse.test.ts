// The tap subset of reliability run 3 (bench/soak/runs/h2-abuse.ts) with small counts: rapid stream
// resets and a SETTINGS/PING flood neither take the server down nor fail another client's requests.

import t from 'tap'
import { assertSoakPasses } from './assert-soak-passes.ts'
import { run } from '../../soak/runs/h2-abuse.ts'

t.test('HTTP/2 rapid reset and a SETTINGS/PING flood: the server stays up and answers every request of another client', async (t) => {
  await assertSoakPasses(t, run)
})
