// Whether the example resource is here: a few tests of other capabilities (tracing a database query,
// the proxy topology, log redaction of its URLs) exercise them through the items routes. Once a team
// removes the examples (`npm run init`, or by hand) those subtests skip, saying why.

import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from './app.ts'

/** Why a subtest that needs `resources/items` cannot run, or false when it can. */
export const itemsSkipReason: string | false = existsSync(join(ROOT, 'resources/items/index.ts'))
  ? false
  : 'the example resource (resources/items) was removed'
