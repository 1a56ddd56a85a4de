// `npm run new` as a developer uses it, in a copy of this checkout: a generated resource, event and
// plugin typecheck, lint clean and pass their own generated tests (CRUD with ETags and 412/428,
// scopes, OpenAPI, a WebSocket room receiving changes, PostgreSQL with its migration); generating the
// same name again, or with bad arguments, is one line on stderr, exit 1, and no file changed. First,
// the parsing and naming rules on their own.

import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { createHash } from 'node:crypto'
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { ROOT, tempDir } from '../helpers/app.ts'
import { parseFields } from '../../scripts/generators/fields.ts'
import { nameForms, singularName } from '../../scripts/generators/names.ts'
import { GeneratorError, applyPlan, emptyPlan } from '../../scripts/generators/plan.ts'
import { registerResource } from '../../scripts/generators/project.ts'
import { resourcePlan } from '../../scripts/generators/resource.ts'

// Generating, typechecking the whole project and running the generated tests takes minutes on a busy machine.
t.setTimeout(20 * 60_000)

t.test('--fields: each kind with its bounds; anything else is refused with a reason', async (t) => {
  t.match(parseFields('title:string(1..200),done:boolean,due?:date-time,rank:integer(..10),tags:string[](..5),score:number(0..)'), [
    { name: 'title', column: 'title', kind: 'string', optional: false, min: 1, max: 200 },
    { name: 'done', kind: 'boolean', optional: false },
    { name: 'due', kind: 'date-time', optional: true },
    { name: 'rank', kind: 'integer', min: -2147483648, max: 10 },
    { name: 'tags', kind: 'string[]', max: 5 },
    { name: 'score', kind: 'number', min: 0, max: undefined }
  ])
  t.match(parseFields('dueAt:date-time'), [{ name: 'dueAt', column: 'due_at' }], 'columns are snake_case')
  const refused: Array<[string, RegExp]> = [
    ['', /empty/],
    ['title', /does not read as/],
    ['title:float', /unknown type "float"/],
    ['id:string', /already has id/],
    ['order:string', /reserved word/],
    ['a:string,a:integer', /declared twice/],
    ['a:string(5..2)', /empty/],
    ['a:string(0..0)', /at least 1/],
    ['a:boolean(1..2)', /no range/],
    ['a:integer(1.5..2)', /integers/]
  ]
  for (const [text, reason] of refused) t.throws(() => parseFields(text), reason, JSON.stringify(text))
})

t.test('names: every casing from one kebab-case name; plurals made singular by their last word', async (t) => {
  t.same(nameForms('audit-logs'), { kebab: 'audit-logs', camel: 'auditLogs', pascal: 'AuditLogs', constant: 'AUDIT_LOGS', snake: 'audit_logs', prose: 'audit logs' })
  const singulars: Array<[string, string | undefined]> = [
    ['notes', 'note'], ['audit-logs', 'audit-log'], ['categories', 'category'], ['boxes', 'box'], ['matches', 'match'],
    ['addresses', 'address'], ['people', 'person'], ['statuses', 'status'], ['keys', 'key'], ['note', undefined], ['class', undefined]
  ]
  for (const [plural, singular] of singulars) t.equal(singularName(plural), singular, plural)
  t.throws(() => nameForms('Notes'), GeneratorError)
})

t.test('templates name things from the model: JSON-schema keywords stay, every column follows its field', async (t) => {
  const plan = resourcePlan({
    names: nameForms('item-lists'),
    one: nameForms('item-list'),
    fields: parseFields('items:string[](..20),maxItems:integer(0..99),dueAt?:date-time'),
    scope: 'lists',
    realtime: true,
    pluginPrefix: 'keel'
  })
  const routes = plan.files.get('resources/item-lists/routes.ts')!
  t.match(routes, 'items: Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 20, uniqueItems: true })')
  t.match(routes, 'maxItems: Type.Integer({ minimum: 0, maximum: 99 })')
  t.match(routes, 'dueAt: body.dueAt === undefined ? null : Date.parse(body.dueAt)')
  t.match(routes, "scopes: ['lists:write']")
  t.match(plan.files.get('resources/item-lists/migrations/postgres/0001-create-item-lists.ts')!, /CREATE TABLE item_lists \([^)]*\bmax_items +integer +NOT NULL,[^)]*\bdue_at +timestamptz,/)
  t.match(plan.files.get('resources/item-lists/sqlite-store.ts')!, 'JSON.stringify(input.items)')
  t.notOk([...plan.files.values()].some((text) => /max(ItemList|Lists)|uniqueItemLists/.test(text)), 'no keyword was renamed')
})

t.test('app.ts edits are anchored: without the example resource the registration goes under the Resources comment; without the comment, nothing is written', async (t) => {
  const app = "import x from './core/x.ts'\nimport './core/route-config.ts'\n\nexport async function buildApp () {\n  // Resources: each registers its store.\n\n  return app\n}\n"
  t.equal(registerResource('notes', 'notes')(app),
    "import x from './core/x.ts'\nimport notes from './resources/notes/index.ts'\nimport './core/route-config.ts'\n\nexport async function buildApp () {\n  // Resources: each registers its store.\n  await typed.register(notes)\n\n  return app\n}\n")
  t.throws(() => registerResource('notes', 'notes')(app.replace('// Resources', '// Other')), /no "\/\/ Resources" comment/)
  const root = tempDir()
  writeFileSync(join(root, 'app.ts'), 'no anchors here\n')
  const plan = emptyPlan()
  plan.files.set('resources/notes/index.ts', 'x')
  plan.edits.set('app.ts', registerResource('notes', 'notes'))
  t.throws(() => applyPlan(root, plan), GeneratorError)
  t.notOk(existsSync(join(root, 'resources')), 'no file was created')
  t.equal(readFileSync(join(root, 'app.ts'), 'utf8'), 'no anchors here\n')
})

interface Run { code: number | null, stdout: string, stderr: string }

// The child processes see none of this test's own tap and loader variables.
const cleanEnv = { PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`, HOME: process.env.HOME ?? tempDir() }

async function run (cwd: string, command: string, args: string[]): Promise<Run> {
  const child = spawn(command, args, { cwd, env: cleanEnv, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString() })
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  const [code] = await once(child, 'close') as [number | null]
  return { code, stdout, stderr }
}

/** `npm run new -- …` in `cwd`, as a developer types it. */
const runNew = async (cwd: string, args: string[]) => await run(cwd, 'npm', ['run', '--silent', 'new', '--', ...args])
const bin = (cwd: string, tool: string, args: string[]) => run(cwd, process.execPath, [join(cwd, 'node_modules', '.bin', tool), ...args])

/** A copy of this checkout's files as they are now (tracked and new, committed or not), sharing node_modules. */
function copyCheckout (): string {
  const dest = tempDir('keel-new-')
  const listed = spawnSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], { cwd: ROOT, encoding: 'utf8' })
  if (listed.status !== 0) throw new Error(`git ls-files failed: ${listed.stderr}`)
  for (const file of new Set(listed.stdout.split('\0'))) {
    if (file === '' || file === 'node_modules' || !existsSync(join(ROOT, file))) continue
    mkdirSync(dirname(join(dest, file)), { recursive: true })
    cpSync(join(ROOT, file), join(dest, file))
  }
  symlinkSync(realpathSync(join(ROOT, 'node_modules')), join(dest, 'node_modules'))
  return dest
}

/** A fingerprint of every file under `dir` (node_modules aside): any write changes it. */
function fingerprint (dir: string): string {
  const hash = createHash('sha256')
  const walk = (at: string): void => {
    for (const entry of readdirSync(at, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (entry.name === 'node_modules' || entry.name === '.tap') continue
      const path = join(at, entry.name)
      if (entry.isDirectory()) walk(path)
      else hash.update(relative(dir, path)).update('\0').update(readFileSync(path)).update('\0')
    }
  }
  walk(dir)
  return hash.digest('hex')
}

const created = (out: string): string[] => out.split('\n').filter((l) => l.startsWith('created ')).map((l) => l.slice('created '.length))

t.test('in a copy of the checkout', async (t) => {
  const copy = copyCheckout()
  const appBefore = readFileSync(join(copy, 'app.ts'), 'utf8')
  const newFiles: string[] = []

  t.test('new resource notes writes the resource and its tests and registers it in app.ts', async (t) => {
    const res = await runNew(copy, ['resource', 'notes', '--fields', 'title:string(1..200),done:boolean'])
    t.equal(res.code, 0, res.stderr)
    t.equal(res.stderr, '')
    newFiles.push(...created(res.stdout))
    for (const file of ['index.ts', 'store.ts', 'sqlite-store.ts', 'postgres-store.ts', 'migrations/sqlite/0001-create-notes.ts',
      'migrations/postgres/0001-create-notes.ts', 'store-plugin.ts', 'routes.ts', 'rooms.ts', 'feed.ts']) {
      t.ok(newFiles.includes(`resources/notes/${file}`), file)
    }
    const app = readFileSync(join(copy, 'app.ts'), 'utf8')
    const added = app.split('\n').filter((l) => !appBefore.split('\n').includes(l))
    t.same(added, ['import notes from \'./resources/notes/index.ts\'', '  await typed.register(notes)'], 'one import, one registration')
    t.ok(app.indexOf('await typed.register(notes)') > app.indexOf('await typed.register(items)'), 'after the example resource')
  })

  t.test('new event notes:pin writes the event file and its test', async (t) => {
    const res = await runNew(copy, ['event', 'notes:pin'])
    t.equal(res.code, 0, res.stderr)
    newFiles.push(...created(res.stdout))
    t.same(created(res.stdout), ['realtime/protocol/events/notes-pin.ts', 'test/realtime/protocol/events/notes-pin.test.ts'])
  })

  t.test('new plugin feature-flags writes the plugin, its config section and its registration', async (t) => {
    const res = await runNew(copy, ['plugin', 'feature-flags'])
    t.equal(res.code, 0, res.stderr)
    newFiles.push(...created(res.stdout))
    t.match(res.stdout, /edited {2}core\/config\.ts/)
    const config = readFileSync(join(copy, 'core/config.ts'), 'utf8')
    t.match(config, /FEATURE_FLAGS_TIMEOUT_MS: int\(/)
    t.match(config, /^const SECTIONS = \[.*, featureFlags\] as const$/m)
    t.match(readFileSync(join(copy, 'app.ts'), 'utf8'), /\n {2}await typed\.register\(featureFlags, config\.featureFlags\)\n/)
  })

  t.test('the project still typechecks, and the generated files lint clean', async (t) => {
    const tsc = await bin(copy, 'tsc', ['--noEmit', '-p', copy])
    t.equal(tsc.code, 0, tsc.stdout + tsc.stderr)
    const lint = await bin(copy, 'eslint', [...newFiles, 'app.ts', 'core/config.ts'])
    t.equal(lint.code, 0, lint.stdout + lint.stderr)
    t.equal(lint.stdout.trim(), '', 'not even a warning')
  })

  t.test('the generated tests pass: CRUD with ETags, 412/428, scopes, OpenAPI, the room over /ws, PostgreSQL with its migration, the event over /ws, the plugin', async (t) => {
    const tests = newFiles.filter((f) => f.endsWith('.test.ts'))
    t.equal(tests.length, 6)
    // One file at a time: on a busy machine two apps starting at once can trip each other's load shedding.
    const tap = await bin(copy, 'tap', ['--disable-coverage', '--reporter=tap', '--jobs=1', ...tests])
    t.equal(tap.code, 0, tap.stdout.split('\n').filter((l) => /not ok|# (fail|skip)/.test(l)).join('\n') + tap.stderr)
    const skipped = tap.stdout.split('\n').filter((l) => /# SKIP/.test(l))
    if (skipped.length > 0) t.comment(`skipped in the copy: ${skipped.join('; ')}`)
  })

  t.test('generating a name again refuses with one line, exit 1, and changes nothing', async (t) => {
    const before = fingerprint(copy)
    for (const args of [['resource', 'notes'], ['event', 'notes:pin'], ['plugin', 'feature-flags']]) {
      const res = await runNew(copy, args)
      t.equal(res.code, 1, args.join(' '))
      t.equal(res.stdout, '')
      t.match(res.stderr, /^refusing\b[^\n]*; nothing was changed\n$/, res.stderr)
    }
    t.equal(fingerprint(copy), before)
  })

  t.test('bad arguments: a one-line usage error, exit 1, nothing written', async (t) => {
    const before = fingerprint(copy)
    const cases: Array<[string[], RegExp]> = [
      [[], /^usage: npm run new/],
      [['widget', 'x'], /^usage: npm run new/],
      [['resource', 'note'], /does not look plural/],
      [['resource', 'Tasks'], /not a kebab-case name/],
      [['resource', 'tasks', '--fields', 'title:float'], /unknown type "float"/],
      [['resource', 'tasks', '--colour'], /Unknown option '--colour'; usage/],
      [['resource', 'metrics'], /fastify\.metrics is already taken/],
      [['event', 'pin'], /not an event name room:verb/],
      [['event', 'room:pin'], /the protocol already owns/],
      [['event', 'notes:archive', '--fields', 'x:string'], /applies to resources only/],
      [['plugin', 'auth'], /already has a binding named auth/]
    ]
    for (const [args, reason] of cases) {
      const res = await runNew(copy, args)
      t.equal(res.code, 1, args.join(' '))
      t.match(res.stderr, reason)
      t.equal(res.stderr.trimEnd().split('\n').length, 1, 'one line')
    }
    t.equal(fingerprint(copy), before)
  })
})
