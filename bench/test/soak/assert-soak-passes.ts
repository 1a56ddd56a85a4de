// The tap side of `npm run soak`: runs one reliability run with small counts and asserts it passed,
// showing its figures with any failure. Shared by the soak tests beside it.

import { tempDir } from '../../../test/helpers/app.ts'
import type { Test } from 'tap'
import type { SoakRun } from '../../soak/run.ts'

export async function assertSoakPasses (t: Test, soak: SoakRun): Promise<void> {
  const outcome = await soak.run({ quick: true, workDir: tempDir('keel-soak-'), log: () => {} })
  t.same(outcome.failures, [], outcome.figures.map(([label, value]) => `${label}: ${value}`).join('\n'))
  t.ok(outcome.pass, `${soak.name} passed`)
}
