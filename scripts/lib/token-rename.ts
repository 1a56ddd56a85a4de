// Case-aware renaming of one single-word name (the template's) inside a file's text: for a template
// named acme, each occurrence becomes the new name in the casing its surroundings call for — `acmePool`
// → ordersServicePool, `AcmeClient` → OrdersServiceClient, `ACME_A` → ORDERS_SERVICE_A, `acme-client.ts`
// → orders-service-client.ts, "Acme's image" → "Orders service's image". A bare lowercase word is kebab-case
// in text but camelCase where TypeScript/JavaScript uses it as an identifier (`acme.port`), which only
// a parser can tell apart from a string, a comment or a regular expression: identifierSpans asks TypeScript's.

import ts from 'typescript'
import type { NameForms } from './names.ts'

/** Half-open character ranges [start, end) of a source file's identifiers. */
export type Spans = ReadonlyArray<readonly [number, number]>

export interface RenameResult {
  text: string
  /** How many occurrences were rewritten. */
  renamed: number
  /** Words that contain the name but are not it (`acmeist`, a hash): left as they are. */
  skipped: string[]
}

const SCRIPT_KINDS: Record<string, ts.ScriptKind> = {
  '.ts': ts.ScriptKind.TS,
  '.mts': ts.ScriptKind.TS,
  '.cts': ts.ScriptKind.TS,
  '.tsx': ts.ScriptKind.TSX,
  '.js': ts.ScriptKind.JS,
  '.mjs': ts.ScriptKind.JS,
  '.cjs': ts.ScriptKind.JS,
  '.jsx': ts.ScriptKind.JSX
}

/** Whether `path` holds TypeScript or JavaScript source, whose identifiers identifierSpans finds. */
export function isScript (path: string): boolean {
  return Object.keys(SCRIPT_KINDS).some((ext) => path.endsWith(ext))
}

/** The identifiers of a script whose text matches `mentioning` (all of them without it). */
export function identifierSpans (path: string, text: string, mentioning = /./): Spans {
  const kind = Object.entries(SCRIPT_KINDS).find(([ext]) => path.endsWith(ext))?.[1] ?? ts.ScriptKind.TS
  const source = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, false, kind)
  const spans: Array<[number, number]> = []
  const visit = (node: ts.Node): void => {
    if ((ts.isIdentifier(node) || ts.isPrivateIdentifier(node)) && mentioning.test(node.text)) {
      spans.push([node.getStart(source), node.getEnd()])
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return spans
}

// A word: what an identifier can be made of. Longer words are taken for hashes or encoded data.
const WORD = /[A-Za-z0-9_$]+/g
const LONGEST_WORD = 40

/**
 * Renames every occurrence of `from` (a one-word lowercase name such as `acme`) in `text`.
 * `identifiers` marks the ranges where a bare lowercase or capitalised word is code, not prose.
 */
export function renameTokens (text: string, from: string, to: NameForms, identifiers: Spans = []): RenameResult {
  const occurrence = new RegExp(from, 'gi')
  const skipped: string[] = []
  let renamed = 0
  const result = text.replace(WORD, (word, offset: number) => {
    if (!occurrence.test(word)) return word
    occurrence.lastIndex = 0
    if (word.length > LONGEST_WORD) { skipped.push(word); return word }
    const inCode = identifiers.some(([start, end]) => offset >= start && offset < end)
    let missed = false
    const next = word.replace(occurrence, (found, at: number) => {
      const form = formFor(word, found, at, inCode, to)
      if (form === undefined) { missed = true; return found }
      renamed++
      return form
    })
    if (missed) skipped.push(word)
    return next
  })
  return { text: result, renamed, skipped }
}

const isUpper = (c: string | undefined): boolean => c !== undefined && c >= 'A' && c <= 'Z'
const isLower = (c: string | undefined): boolean => c !== undefined && c >= 'a' && c <= 'z'
const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9'

/**
 * The form replacing `found` at `at` inside `word`, from the casing of the occurrence and of its
 * neighbours; undefined when the occurrence is part of another word (`acmeist`, `Acmes`).
 */
function formFor (word: string, found: string, at: number, inCode: boolean, to: NameForms): string | undefined {
  const before = word[at - 1]
  const after = word[at + found.length]
  const alone = word.length === found.length
  if (isLower(after) || (isLower(before) && found === found.toLowerCase())) return undefined
  if (found === found.toUpperCase()) return to.constant
  if (found === found.toLowerCase()) {
    if (alone) return inCode ? to.camel : to.kebab
    if (before === '_' || after === '_') return to.snake
    if (at === 0 && (isUpper(after) || isDigit(after) || after === '$')) return to.camel
    return undefined
  }
  if (isUpper(found[0]) && found.slice(1) === found.slice(1).toLowerCase()) {
    return alone && !inCode ? to.prose : to.pascal
  }
  return undefined
}
