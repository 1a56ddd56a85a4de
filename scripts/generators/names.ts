// Names for generated code: one kebab-case name in every casing (the same forms `npm run init` uses),
// the singular of a plural resource name, and the words a generated identifier must never be. Casing
// is computed from the name's words, never found-and-replaced in existing code.

import { nameForms as serviceNameForms, type NameForms } from '../lib/names.ts'
import { GeneratorError } from './plan.ts'

export { KEBAB_NAME, capitalize, type NameForms } from '../lib/names.ts'

/** The name's forms for generated code, where the prose form goes mid-sentence (`audit logs`, lower case). */
export function nameForms (name: string): NameForms {
  let forms: NameForms
  try {
    forms = serviceNameForms(name)
  } catch (err) {
    throw new GeneratorError((err as Error).message)
  }
  return { ...forms, prose: name.split('-').join(' ') }
}

/** `a note`, `an audit log`: the indefinite article by the first letter (good enough for generated prose). */
export const withArticle = (prose: string): string => `${/^[aeiou]/.test(prose) ? 'an' : 'a'} ${prose}`

// English plurals the suffix rules below get wrong; `--singular` covers the rest.
const IRREGULAR: Record<string, string> = {
  people: 'person',
  children: 'child',
  men: 'man',
  women: 'woman',
  statuses: 'status',
  aliases: 'alias',
  buses: 'bus',
  caches: 'cache',
  analyses: 'analysis',
  indices: 'index',
  data: 'datum'
}

/**
 * The singular of a plural word (`notes` → `note`, `categories` → `category`, `boxes` → `box`), or
 * undefined when the word does not look plural (`note`, `class`, `news` is taken as plural of `new`
 * and should be given with `--singular`).
 */
export function singularWord (plural: string): string | undefined {
  const irregular = IRREGULAR[plural]
  if (irregular !== undefined) return irregular
  if (/[^aeiou]ies$/.test(plural)) return plural.slice(0, -3) + 'y'
  if (/(?:ss|x|z|ch|sh)es$/.test(plural)) return plural.slice(0, -2)
  if (/[^s]s$/.test(plural) && plural.length > 2) return plural.slice(0, -1)
  return undefined
}

/** The singular of a kebab-case plural name: only its last word changes (`audit-logs` → `audit-log`). */
export function singularName (plural: string): string | undefined {
  const words = plural.split('-')
  const last = singularWord(words[words.length - 1]!)
  return last === undefined ? undefined : [...words.slice(0, -1), last].join('-')
}

/** Words that may not be a binding in strict-mode TypeScript, nor a type name. */
export const RESERVED_IDENTIFIERS = new Set([
  'arguments', 'await', 'break', 'case', 'catch', 'class', 'const', 'continue', 'debugger', 'default', 'delete',
  'do', 'else', 'enum', 'eval', 'export', 'extends', 'false', 'finally', 'for', 'function', 'if', 'implements',
  'import', 'in', 'instanceof', 'interface', 'let', 'new', 'null', 'package', 'private', 'protected', 'public',
  'return', 'static', 'super', 'switch', 'this', 'throw', 'true', 'try', 'typeof', 'var', 'void', 'while', 'with',
  'yield', 'any', 'unknown', 'never', 'object', 'string', 'number', 'boolean', 'symbol', 'bigint', 'undefined'
])

/** SQL words (PostgreSQL and SQLite) that cannot name a column or table without quoting. */
export const SQL_RESERVED = new Set([
  'all', 'analyse', 'analyze', 'and', 'any', 'array', 'as', 'asc', 'asymmetric', 'both', 'case', 'cast', 'check',
  'collate', 'column', 'constraint', 'create', 'current_date', 'current_role', 'current_time', 'current_timestamp',
  'current_user', 'default', 'deferrable', 'desc', 'distinct', 'do', 'else', 'end', 'except', 'false', 'fetch', 'for',
  'foreign', 'from', 'grant', 'group', 'having', 'in', 'index', 'initially', 'intersect', 'into', 'is', 'join',
  'lateral', 'leading', 'limit', 'localtime', 'localtimestamp', 'not', 'null', 'offset', 'on', 'only', 'or', 'order',
  'placing', 'primary', 'references', 'returning', 'select', 'session_user', 'some', 'symmetric', 'table', 'then',
  'to', 'trailing', 'true', 'union', 'unique', 'user', 'using', 'values', 'variadic', 'when', 'where', 'window', 'with'
])
