// The tap side of `npm run soak`: runs one reliability run with small counts and asserts it passed,
// showing its figures with any failure; a run that did not run here (what it punishes is absent from
// the app, e.g. a removed example) is reported as skipped with its reason. Shared by the soak tests beside it.

import { tempDir } from '../../../test/helpers/app.ts'
import type { Test } from 'tap'
import type { SoakRun } from '../../soak/run.ts'

export async function assertSoakPasses (t: Test, soak: SoakRun): Promise<void> {
  const outcome = await soak.run({ quick: true, workDir: tempDir('keel-soak-'), log: () => {} })
  if (outcome.skipped !== undefined) {
    t.pass(`${soak.name} did not run`, { skip: outcome.skipped })
    return
  }
  t.same(outcome.failures, [], outcome.figures.map(([label, value]) => `${label}: ${value}`).join('\n'))
  t.ok(outcome.pass, `${soak.name} passed`)
}
