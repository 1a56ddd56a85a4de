// `npm run init -- --name <service> [--keep-examples]`: makes the template a named service. Renames it
// in every tracked text file and file name (case-aware: scripts/lib/token-rename.ts), removes the example
// resources unless kept, resets the benchmark figures, stages the result and says what it did.
// Refuses with one line, changing nothing, on a bad name, outside git or on a dirty work tree;
// run again with the same name, it finds nothing to do.

import { execFileSync } from 'node:child_process'
import { builtinModules } from 'node:module'
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { KEBAB_NAME, nameForms, type NameForms } from './lib/names.ts'
import { identifierSpans, isScript, renameTokens } from './lib/token-rename.ts'
import { EXAMPLE_FOLDERS, EXAMPLES_END, EXAMPLES_START, withoutExamplePassages, withoutImportsFrom } from './lib/examples.ts'
import { TEMPLATE_MARKER, templateName } from './lib/template.ts'

const USAGE = 'usage: npm run init -- --name <service> [--keep-examples]'
const ROOT = resolve(import.meta.dirname, '..')
const COMPOSITION_ROOT = 'app.ts'
const BENCHMARKS = 'BENCHMARKS.md'
const README = 'README.md'
// npm's limit on a package name's length.
const MAX_NAME_LENGTH = 214
// Words a camelCase name cannot be: the service's name becomes variables such as `const ordersService`.
const RESERVED = new Set(('break case catch class const continue debugger default delete do else enum export extends ' +
  'false finally for function if import in instanceof new null return super switch this throw true try typeof var void ' +
  'while with yield let static implements interface package private protected public await').split(' '))
// Lock-file fields that record downloads: never rewritten, whatever letters a hash happens to contain.
const LOCKED_FIELDS = /^\s*"(?:integrity|resolved)":/

/** A refusal: one line on stderr, nothing changed. */
class Refusal extends Error {}

interface Options { name: string, keepExamples: boolean }

/** What init will do, computed in memory before anything is written. */
interface Plan {
  /** Tracked files to delete (the examples, the template marker). */
  removed: string[]
  /** The example folders among them. */
  removedFolders: string[]
  /** New contents, by the file's current path. */
  writes: Map<string, string>
  renames: Array<[from: string, to: string]>
  /** Words that contain the template's name without being it, left as they are. */
  skipped: Set<string>
  /** The credits line added to the README, if any. */
  credits?: string
}

function options (): Options {
  let values
  try {
    ({ values } = parseArgs({ options: { name: { type: 'string' }, 'keep-examples': { type: 'boolean', default: false } }, strict: true }))
  } catch (err) {
    throw new Refusal(`${(err as Error).message.split('\n')[0]!} (${USAGE})`)
  }
  if (values.name === undefined) throw new Refusal(`--name is required (${USAGE})`)
  return { name: values.name, keepExamples: values['keep-examples'] }
}

function checkName (name: string, template: string | undefined): void {
  if (!KEBAB_NAME.test(name) || name.length > MAX_NAME_LENGTH) {
    throw new Refusal(`--name "${name}" must be a kebab-case npm package name: lowercase letters and digits in words joined by "-", starting with a letter`)
  }
  if (builtinModules.includes(name)) throw new Refusal(`--name "${name}" is the name of a Node.js module; choose another`)
  if (RESERVED.has(nameForms(name).camel)) throw new Refusal(`--name "${name}" is a JavaScript keyword, which the service's variables cannot be named`)
  if (template !== undefined && name.includes(template)) throw new Refusal(`--name "${name}" must not contain the template's name "${template}"`)
}

function git (args: string[]): string {
  return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 })
}

function checkGitRepository (): void {
  try {
    git(['rev-parse', '--is-inside-work-tree'])
  } catch {
    throw new Refusal('not a git repository: run `git init && git add -A && git commit -m template` first, so that init\'s changes can be reviewed and undone')
  }
}

/** Tracked files, without symlinks (their target is a path, not text to rename). */
function trackedFiles (): string[] {
  return git(['ls-files', '-s', '-z']).split('\0').filter((line) => line !== '' && !line.startsWith('120000 '))
    .map((line) => line.slice(line.indexOf('\t') + 1))
    .filter((path) => existsSync(join(ROOT, path)))
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** A file's text, or undefined for binary content. */
function readText (path: string): string | undefined {
  const bytes = readFileSync(join(ROOT, path))
  if (bytes.includes(0)) return undefined
  try {
    return utf8.decode(bytes)
  } catch {
    return undefined
  }
}

function planExamples (plan: Plan, files: readonly string[], current: (path: string) => string | undefined): void {
  plan.removedFolders = EXAMPLE_FOLDERS.filter((folder) => files.some((f) => f.startsWith(`${folder}/`)))
  if (plan.removedFolders.length === 0) return
  plan.removed.push(...files.filter((f) => plan.removedFolders.some((folder) => f.startsWith(`${folder}/`))))
  const app = current(COMPOSITION_ROOT)
  if (app !== undefined) plan.writes.set(COMPOSITION_ROOT, withoutImportsFrom(app, plan.removedFolders, COMPOSITION_ROOT))
  for (const file of files.filter((f) => f.endsWith('.md') && !plan.removed.includes(f))) {
    const text = current(file)
    if (text !== undefined) plan.writes.set(file, withoutExamplePassages(text))
  }
}

/** `text` renamed, with lock-file download fields left as they are. */
function renamedText (path: string, text: string, template: string, to: NameForms): { text: string, skipped: string[] } {
  if (path.endsWith('package-lock.json')) {
    const lines = text.split('\n').map((line) => LOCKED_FIELDS.test(line) ? { text: line, skipped: [] } : renameTokens(line, template, to))
    return { text: lines.map((l) => l.text).join('\n'), skipped: lines.flatMap((l) => l.skipped) }
  }
  const mentioning = new RegExp(template, 'i')
  return renameTokens(text, template, to, isScript(path) ? identifierSpans(path, text, mentioning) : [])
}

function planRename (plan: Plan, files: readonly string[], template: string, name: string, current: (path: string) => string | undefined): void {
  const to = nameForms(name)
  const mentioning = new RegExp(template, 'i')
  plan.removed.push(TEMPLATE_MARKER)
  for (const file of files.filter((f) => !plan.removed.includes(f))) {
    const text = current(file)
    if (text !== undefined && mentioning.test(text)) {
      const renamed = renamedText(file, text, template, to)
      plan.writes.set(file, renamed.text)
      for (const word of renamed.skipped) plan.skipped.add(word)
    }
    const path = renameTokens(file, template, to).text
    if (path !== file) plan.renames.push([file, path])
  }
  const readme = current(README)
  if (readme !== undefined) {
    plan.credits = `Built from the ${nameForms(template).prose} template.`
    plan.writes.set(README, withCredits(plan.writes.get(README) ?? readme, plan.credits))
  }
  plan.writes.set(BENCHMARKS, benchmarksStub(name))
  const changelog = files.find((f) => /^changelog(\.md)?$/i.test(f))
  if (changelog !== undefined) plan.writes.set(changelog, '# Changelog\n\n## Unreleased\n\n- The service, created with `npm run init`.\n')
}

/** The README with the credits line under its title (or first, without a title). */
function withCredits (readme: string, credits: string): string {
  const lines = readme.split('\n')
  const title = lines.findIndex((line) => line.startsWith('# '))
  lines.splice(title + 1, 0, ...(title === -1 ? [credits, ''] : ['', credits]))
  return lines.join('\n')
}

function benchmarksStub (name: string): string {
  return [
    '# Benchmarks',
    '',
    `No figures yet for ${name}. \`npm run bench\` measures this checkout on this machine (every scenario, under 10`,
    'minutes on 2 cores) and writes its figures here; `npm run bench -- --list` names the scenarios and',
    '`npm run bench -- <scenario>` runs one. Run it on an otherwise idle machine.',
    ''
  ].join('\n')
}

function makePlan ({ name, keepExamples }: Options, template: string | undefined): Plan {
  const plan: Plan = { removed: [], removedFolders: [], writes: new Map(), renames: [], skipped: new Set() }
  const files = trackedFiles()
  const current = (path: string): string | undefined => plan.writes.get(path) ?? (files.includes(path) ? readText(path) : undefined)
  if (!keepExamples) planExamples(plan, files, current)
  if (template !== undefined) planRename(plan, files, template, name, current)
  for (const [path, text] of plan.writes) {
    if (plan.removed.includes(path) || (files.includes(path) && readText(path) === text)) plan.writes.delete(path)
  }
  return plan
}

const isEmpty = (plan: Plan): boolean => plan.removed.length === 0 && plan.writes.size === 0 && plan.renames.length === 0

function apply (plan: Plan): void {
  if (plan.removed.length > 0) git(['rm', '-q', '-r', '--', ...plan.removed])
  for (const [path, text] of plan.writes) writeFileSync(join(ROOT, path), text)
  for (const [from, to] of plan.renames) {
    mkdirSync(dirname(join(ROOT, to)), { recursive: true })
    git(['mv', '--', from, to])
    removeEmptyFolders(dirname(from))
  }
  git(['add', '-A', '--', '.'])
}

function removeEmptyFolders (folder: string): void {
  for (let f = folder; f !== '.' && f !== '' && readdirSync(join(ROOT, f)).length === 0; f = dirname(f)) rmdirSync(join(ROOT, f))
}

/** Lines of tracked files (among `files`, a pathspec) matching `pattern` (git grep -n), as "path:line: text". */
function mentions (pattern: string, ignoreCase: boolean, files = '.'): string[] {
  try {
    return git(['grep', '-n', '-I', ...(ignoreCase ? ['-i'] : []), '-e', pattern, '--', files]).split('\n').filter((l) => l !== '')
  } catch {
    return []
  }
}

function report (plan: Plan, template: string | undefined, name: string): number {
  const out: string[] = [template === undefined ? `init: ${name}` : `init: ${template} → ${name}`]
  if (plan.removedFolders.length > 0) {
    out.push(`removed the example resources: ${plan.removedFolders.join(', ')}, and their lines in ${COMPOSITION_ROOT}`)
  }
  if (template !== undefined) out.push(`removed ${TEMPLATE_MARKER}: this checkout is no longer the template`)
  for (const [from, to] of plan.renames) out.push(`  renamed    ${from} → ${to}`)
  for (const path of [...plan.writes.keys()].sort()) out.push(`  rewritten  ${path}`)
  // Code that needed the examples would fail the typecheck; prose only a reader notices.
  const examplesLeft = plan.removedFolders.length === 0 ? [] : mentions(`\\(${plan.removedFolders.join('\\|')}\\)`, false, '*.md')
  if (examplesLeft.length > 0) {
    out.push(`documentation that still describes the removed examples (edit it by hand, or mark such passages with ${EXAMPLES_START} … ${EXAMPLES_END} lines for init to remove):`,
      ...examplesLeft.map((l) => `  ${l}`))
  }
  const left = template === undefined ? [] : mentions(template, true).filter((l) => plan.credits === undefined || !l.endsWith(`:${plan.credits}`))
  if (left.length > 0) out.push(`still mentioning "${template}" (not a whole name, left as is: ${[...plan.skipped].join(', ') || 'none'}):`, ...left.map((l) => `  ${l}`))
  out.push('Staged (git diff --staged). Next: npm run typecheck && npm run lint && npm test, then git commit.')
  process.stdout.write(`${out.join('\n')}\n`)
  return left.length > 0 ? 1 : 0
}

function init (): number {
  const opts = options()
  checkGitRepository()
  const template = templateName(ROOT)
  const pkgName = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string }).name
  if (template === undefined && pkgName !== opts.name) {
    throw new Refusal(`this service is already named "${pkgName}": init renames only the template (${TEMPLATE_MARKER} is gone)`)
  }
  checkName(opts.name, template)
  const plan = makePlan(opts, template)
  if (isEmpty(plan)) {
    process.stdout.write(`init: nothing to do: this service is already ${opts.name}${opts.keepExamples ? '' : ', without the example resources'}\n`)
    return 0
  }
  const dirty = git(['status', '--porcelain', '--', '.']).split('\n').filter((l) => l !== '')
  if (dirty.length > 0) throw new Refusal(`the work tree has uncommitted changes (${dirty.length} paths): commit them first, so that init's changes can be reviewed on their own`)
  apply(plan)
  return report(plan, template, opts.name)
}

try {
  process.exitCode = init()
} catch (err) {
  const message = err instanceof Refusal ? err.message : `failed: ${(err as Error).message}`
  process.stderr.write(`init: ${message.replaceAll('\n', ' ')}\n`)
  process.exitCode = 1
}
