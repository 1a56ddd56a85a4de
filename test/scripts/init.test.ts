// `npm run init` as a user runs it: the real script, in a git copy of this checkout (uncommitted changes
// included, node_modules linked), then typecheck, lint, a representative part of the suite and the built
// app of the renamed copy. Skipped once this checkout is itself a named service (the template marker is gone).

import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { nameForms } from '../../scripts/lib/names.ts'
import { identifierSpans, renameTokens } from '../../scripts/lib/token-rename.ts'
import { TEMPLATE_MARKER, templateName } from '../../scripts/lib/template.ts'
import { EXAMPLES_END, EXAMPLES_START, withoutExamplePassages } from '../../scripts/lib/examples.ts'

const ROOT = resolve(import.meta.dirname, '../..')
const TEMPLATE = templateName(ROOT)
const skip = TEMPLATE === undefined ? 'this checkout is a service made from the template: init has already run' : false
const NAME = 'orders-service'
// Bounds for the child processes: typecheck and lint of the whole tree take a while on a loaded machine.
const INIT_TIMEOUT_MS = 60_000
const CHECK_TIMEOUT_MS = 240_000
// A part of the suite that covers what the rename reaches: server, errors, auth (realm), WebSockets.
const SUITE_PART = ['test/core/server.test.ts', 'test/core/errors.test.ts', 'test/auth/plugin.test.ts', 'test/realtime/ws.test.ts']
// The Node.js running this test, first on PATH, for the tools' `#!/usr/bin/env node`.
const ENV = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` }
// Typecheck, lint and part of the suite of a whole copy: longer than the suite's default file timeout.
t.setTimeout(480_000)

interface Teardown { teardown: (fn: () => unknown) => void }
interface Run { status: number | null, stdout: string, stderr: string }

function sh (cwd: string, command: string, args: string[], timeout = INIT_TIMEOUT_MS): Run {
  const r = spawnSync(command, args, { cwd, env: ENV, encoding: 'utf8', timeout, maxBuffer: 64 * 1024 * 1024 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** The same command without blocking, so that the slow checks run side by side. */
async function shAsync (cwd: string, command: string, args: string[], timeout = CHECK_TIMEOUT_MS): Promise<Run> {
  const child = spawn(command, args, { cwd, env: ENV, timeout, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const status = await new Promise<number | null>((resolve) => child.on('close', resolve))
  return { status, stdout, stderr }
}

const git = (cwd: string, ...args: string[]): string => sh(cwd, 'git', ['-c', 'user.name=init test', '-c', 'user.email=init@test.invalid', '-c', 'commit.gpgsign=false', ...args]).stdout
const init = (cwd: string, ...args: string[]): Run => sh(cwd, process.execPath, ['scripts/init.ts', ...args])
/** Everything a run could have changed: the work tree's and the index's state. */
const state = (cwd: string): string => git(cwd, 'status', '--porcelain') + git(cwd, 'diff', '--staged') + git(cwd, 'diff')

/** A committed git copy of this checkout as it is now (uncommitted changes included), node_modules linked. */
function copyCheckout (t: Teardown, { withGit = true } = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'init-test-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const files = sh(ROOT, 'git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard']).stdout.split('\0')
  for (const file of new Set(files.filter((f) => f !== '' && existsSync(join(ROOT, f))))) {
    if (lstatSync(join(ROOT, file)).isDirectory()) continue
    mkdirSync(dirname(join(dir, file)), { recursive: true })
    cpSync(join(ROOT, file), join(dir, file), { verbatimSymlinks: true })
  }
  symlinkSync(realpathSync(join(ROOT, 'node_modules')), join(dir, 'node_modules'))
  if (withGit) {
    git(dir, 'init', '-q')
    // The link is no directory, so .gitignore's `node_modules/` does not cover it.
    writeFileSync(join(dir, '.git/info/exclude'), 'node_modules\n')
    git(dir, 'add', '-A')
    git(dir, 'commit', '-q', '-m', 'the template')
  }
  return dir
}

/** Builds the app of the checkout in `dir` in a child process and answers what `script` returns (JSON). */
function inBuiltApp (dir: string, script: string): unknown {
  const program = `
    import { buildApp } from ${JSON.stringify(join(dir, 'app.ts'))}
    import { loadConfig } from ${JSON.stringify(join(dir, 'core/config.ts'))}
    const config = loadConfig({ NODE_ENV: 'test', TLS: 'off', LOG_LEVEL: 'silent', DATABASE_FILE: ':memory:', JWT_SECRET: 'init-test-secret-init-test-secret-0123' }, ${JSON.stringify(dir)})
    const app = await buildApp(config)
    try {
      const answer = await (async (app) => { ${script} })(app)
      process.stdout.write(JSON.stringify(answer))
    } finally {
      await app.close()
    }`
  const r = sh(dir, process.execPath, ['--input-type=module', '-e', program])
  if (r.status !== 0) throw new Error(`the built app failed: ${r.stderr}`)
  return JSON.parse(r.stdout)
}

/** The failed assertions of a TAP report, with the lines that follow each (its diagnostics). */
function failures (report: string): string {
  const lines = report.split('\n')
  return lines.flatMap((line, i) => /^\s*not ok /.test(line) ? lines.slice(i, i + 12) : []).join('\n').slice(0, 6000)
}

const mentionsOfTemplate = (dir: string, template: string): string[] =>
  git(dir, 'grep', '-n', '-i', '-I', '-e', template).split('\n').filter((l) => l !== '')

t.test('names: each casing of a kebab-case name', async (t) => {
  t.same(nameForms('orders-service'), { kebab: 'orders-service', camel: 'ordersService', pascal: 'OrdersService', constant: 'ORDERS_SERVICE', snake: 'orders_service', prose: 'Orders service' })
  t.same(nameForms('billing'), { kebab: 'billing', camel: 'billing', pascal: 'Billing', constant: 'BILLING', snake: 'billing', prose: 'Billing' })
  t.throws(() => nameForms('Orders_Service'), /not a kebab-case name/)
})

t.test('the rename gives each occurrence the casing of its surroundings: identifiers stay identifiers, text stays text', async (t) => {
  const source = [
    "// Acme's store, AcmeClient and startAcme()",
    "const acme = { port: 1 }; const acmePool = startAcme(); const ACME_A = 'acme-a'; const db = 'acme_test_1'",
    // eslint-disable-next-line no-template-curly-in-string -- source text that holds a template literal
    "const path = './acme-client.ts'; const key = /acme:hub:room:/; const url = `${acme.port} acme`",
    'const other = acmeist; const Acmes = 0'
  ].join('\n')
  const { text, skipped } = renameTokens(source, 'acme', nameForms(NAME), identifierSpans('x.ts', source, /acme/i))
  t.equal(text, [
    "// Orders service's store, OrdersServiceClient and startOrdersService()",
    "const ordersService = { port: 1 }; const ordersServicePool = startOrdersService(); const ORDERS_SERVICE_A = 'orders-service-a'; const db = 'orders_service_test_1'",
    // eslint-disable-next-line no-template-curly-in-string -- source text that holds a template literal
    "const path = './orders-service-client.ts'; const key = /orders-service:hub:room:/; const url = `${ordersService.port} orders-service`",
    'const other = acmeist; const Acmes = 0'
  ].join('\n'))
  t.same(skipped, ['acmeist', 'Acmes'], 'words that only contain the name are left, and reported')
})

t.test('Markdown between the examples markers goes with the examples, markers included', async (t) => {
  const readme = ['# Service', '', 'Keep.', '', EXAMPLES_START, '## The example', '', 'Gone.', EXAMPLES_END, '', '## Next', ''].join('\n')
  t.equal(withoutExamplePassages(readme), '# Service\n\nKeep.\n\n## Next\n')
})

t.test(`npm run init -- --name ${NAME}: every user-visible name is the new one, the examples are gone, and typecheck, lint and the core tests pass`, { skip, timeout: 400_000 }, async (t) => {
  const template = TEMPLATE!
  const dir = copyCheckout(t)
  const run = init(dir, '--name', NAME)
  t.equal(run.status, 0, `init succeeds: ${run.stderr}`)
  t.match(run.stdout, `init: ${template} → ${NAME}`)
  t.match(run.stdout, /renamed {4}client\/\S+ → client\/orders-service-client\.ts/, 'file names follow')
  t.match(run.stdout, /Next: npm run typecheck && npm run lint && npm test/)

  const left = mentionsOfTemplate(dir, template)
  t.equal(left.length, 1, `only the credits line mentions the template: ${left.join('\n')}`)
  t.match(left[0], /^README\.md:\d+:Built from the \w+ template\.$/)
  t.notOk(existsSync(join(dir, TEMPLATE_MARKER)), 'the template marker is gone')
  t.equal(JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).name, NAME)
  t.equal(JSON.parse(readFileSync(join(dir, 'package-lock.json'), 'utf8')).name, NAME)
  t.notOk(existsSync(join(dir, 'resources/items')) || existsSync(join(dir, 'resources/quotes')), 'the example resources are removed')
  t.notOk(existsSync(join(dir, 'test/resources/items')), 'with their tests')
  t.notMatch(readFileSync(join(dir, 'app.ts'), 'utf8'), /resources\/(items|quotes)/, 'and their lines in app.ts')
  t.match(readFileSync(join(dir, 'BENCHMARKS.md'), 'utf8'), /^# Benchmarks\n\nNo figures yet for orders-service\. `npm run bench`/)
  t.equal(git(dir, 'status', '--porcelain').split('\n').filter((l) => /^.\S/.test(l)).length, 0, 'every change is staged')

  const answers = inBuiltApp(dir, `
    app.get('/init-probe', async () => ({}))
    const denied = await app.inject({ url: '/init-probe' })
    const docs = await app.inject({ url: '/docs/json' })
    return { realm: denied.headers['www-authenticate'], type: denied.json().type, title: docs.json().info.title }`)
  t.match(answers, { realm: /^Bearer realm="orders-service"/, type: /^urn:orders-service:problem:/, title: 'orders-service API' }, 'the realm, the problem types and the API title carry the new name')

  const [typecheck, lint] = await Promise.all([
    shAsync(dir, process.execPath, ['node_modules/typescript/bin/tsc', '--noEmit']),
    shAsync(dir, process.execPath, ['node_modules/eslint/bin/eslint.js', '.'])
  ])
  // After them, not beside them: the suite has timing-sensitive tests that a saturated machine would fail.
  const suite = await shAsync(dir, process.execPath, ['node_modules/tap/dist/esm/run.mjs', '--disable-coverage', '-R', 'tap', ...SUITE_PART])
  t.equal(typecheck.status, 0, `npm run typecheck passes: ${typecheck.stdout}`)
  t.equal(lint.status, 0, `npm run lint passes: ${lint.stdout}`)
  t.equal(suite.status, 0, `the core tests pass: ${failures(suite.stdout)}`)

  t.test('run again with the same name, it finds nothing to do and changes nothing', async (t) => {
    const before = state(dir)
    const again = init(dir, '--name', NAME)
    t.equal(again.status, 0)
    t.match(again.stdout, /^init: nothing to do: this service is already orders-service, without the example resources\n$/)
    t.equal(state(dir), before)
  })

  t.test('with another name, it refuses with one line: the service is no longer the template', async (t) => {
    const before = state(dir)
    const other = init(dir, '--name', 'billing')
    t.equal(other.status, 1)
    t.match(other.stderr, /^init: this service is already named "orders-service": init renames only the template[^\n]*\n$/)
    t.equal(state(dir), before)
  })
})

t.test('on a dirty work tree, or with a name that cannot be a package, init refuses with one line and changes nothing', { skip, timeout: 120_000 }, async (t) => {
  const dir = copyCheckout(t)
  const refusals: Array<[string[], RegExp]> = [
    [['--name', 'Orders_Service'], /must be a kebab-case npm package name/],
    [['--name', `${TEMPLATE!}-orders`], /must not contain the template's name/],
    [['--name', 'http'], /name of a Node\.js module/],
    [['--name', 'class'], /JavaScript keyword/],
    [[], /--name is required/],
    [['--name', NAME, '--colour'], /Unknown option '--colour'/]
  ]
  for (const [args, message] of refusals) {
    const r = init(dir, ...args)
    t.equal(r.status, 1, args.join(' '))
    t.match(r.stderr, new RegExp(`^init: [^\\n]*${message.source}[^\\n]*\\n$`), `${args.join(' ')}: one line`)
    t.equal(state(dir), '', `${args.join(' ')}: nothing changed`)
  }
  writeFileSync(join(dir, 'notes.txt'), 'work in progress\n')
  const before = state(dir)
  const dirty = init(dir, '--name', NAME)
  t.equal(dirty.status, 1)
  t.match(dirty.stderr, /^init: the work tree has uncommitted changes \(1 paths\): commit them first[^\n]*\n$/)
  t.equal(dirty.stdout, '')
  t.equal(state(dir), before, 'nothing changed')
})

t.test('outside a git repository, init refuses with one line: its changes could be neither reviewed nor undone', { skip, timeout: 60_000 }, async (t) => {
  const dir = copyCheckout(t, { withGit: false })
  const r = init(dir, '--name', NAME)
  t.equal(r.status, 1)
  t.match(r.stderr, /^init: not a git repository: run `git init && git add -A && git commit -m template` first[^\n]*\n$/)
  t.equal(JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).name, TEMPLATE)
})

t.test('--keep-examples renames the examples with the rest and keeps them serving; a later run without it removes them', { skip, timeout: 120_000 }, async (t) => {
  const dir = copyCheckout(t)
  const run = init(dir, '--name', NAME, '--keep-examples')
  t.equal(run.status, 0, run.stderr)
  t.notMatch(run.stdout, /removed the example resources/)
  t.equal(mentionsOfTemplate(dir, TEMPLATE!).length, 1, 'only the credits line mentions the template')
  t.ok(existsSync(join(dir, 'resources/items/routes.ts')))
  const items = inBuiltApp(dir, `
    const page = await app.inject({ url: '/api/v1/items' })
    return { status: page.statusCode, items: Array.isArray(page.json().items) }`)
  t.same(items, { status: 200, items: true }, 'GET /api/v1/items answers')

  git(dir, 'commit', '-q', '-m', 'orders-service')
  const later = init(dir, '--name', NAME)
  t.equal(later.status, 0, later.stderr)
  t.match(later.stdout, /^init: orders-service\nremoved the example resources: resources\/items, resources\/quotes, test\/resources\/items, test\/resources\/quotes/)
  t.notOk(existsSync(join(dir, 'resources/items')))
})
