// Whether a checkout is still the template, and under which name: scripts/lib/template.json says so
// until `npm run init` renames the service and deletes it. Kept out of init.ts so its test reads the
// same answer.

import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

/** The marker's path, from the checkout's root. */
export const TEMPLATE_MARKER = 'scripts/lib/template.json'

/** The template's name in the checkout at `root`; undefined once init has made it a named service. */
export function templateName (root: string): string | undefined {
  const file = join(root, TEMPLATE_MARKER)
  if (!existsSync(file)) return undefined
  const { templateName } = JSON.parse(readFileSync(file, 'utf8')) as { templateName: string }
  return templateName
}
