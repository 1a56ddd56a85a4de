// The app's real API document (/docs/json) passes Redocly's recommended OpenAPI rules, as configured in
// redocly.yaml at the repository root: no error, and no warning but those the config turns off, each
// with its reason there.

import t from 'tap'
import { join } from 'node:path'
import { lintFromString, loadConfig, type NormalizedProblem } from '@redocly/openapi-core'
import { build, ROOT } from '../helpers/app.ts'

// Start-up blocks the event loop for long on a busy machine; these tests read the document, so no load shedding.
const DOCUMENT_ONLY = { SHED_MAX_EVENT_LOOP_DELAY_MS: '0' }

/** One line per problem: rule, severity, where and what, for a failing assertion to show. */
function describe (problems: NormalizedProblem[]): string {
  return problems.map((p) => `${p.severity} ${p.ruleId} at ${p.location[0]?.pointer ?? '?'}: ${p.message}`).join('\n')
}

t.test('the API document passes the OpenAPI linter with no error and no warning redocly.yaml does not allow', async (t) => {
  const { app } = await build(t, DOCUMENT_ONLY)
  const res = await app.inject('/docs/json')
  t.equal(res.statusCode, 200)
  const config = await loadConfig({ configPath: join(ROOT, 'redocly.yaml') })
  const problems = (await lintFromString({ source: res.body, absoluteRef: join(ROOT, 'openapi.json'), config })).filter((p) => p.ignored !== true)
  t.equal(describe(problems), '', 'no problems')
})
