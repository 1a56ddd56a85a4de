// `new plugin <name>`: a capability plugin in core/ — fastify-plugin with a name and dependencies, a
// decorator typed by declaration merging, its configuration section added to core/config.ts (schema
// and mapping together, listed in SECTIONS), a readiness check and a metric — registered in app.ts,
// with a test. The edits of config.ts and app.ts are anchored and refuse when an anchor is gone.

import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { GeneratorError, emptyPlan, type Plan } from './plan.ts'
import { RESERVED_IDENTIFIERS, capitalize, nameForms, type NameForms } from './names.ts'
import { appBindings, decoratorsTaken, insertLine, pluginPrefix, read } from './project.ts'

interface PluginModel {
  readonly n: NameForms
  readonly prefix: string
}

function pluginFile ({ n, prefix }: PluginModel): string {
  return `// \`fastify.${n.camel}\`: the ${n.prose} capability. It runs each unit of its work within
// ${n.constant}_TIMEOUT_MS (a stuck dependency costs the caller a 503, not a hung request), counts the
// outcomes in ${n.snake}_operations_total, and reports its last failure on /health/ready (degraded, not
// required: the rest of the app keeps serving). Configured by the ${n.constant}_* variables (core/config.ts).

import fp from 'fastify-plugin'
import { Counter } from 'prom-client'
import type { Config } from './config.ts'
import { AppError, ErrorCode } from './errors.ts'

export type ${n.pascal}Options = Config['${n.camel}']

export interface ${n.pascal} {
  /** Whether the capability is on (${n.constant}_ENABLED). */
  readonly enabled: boolean
  /** Runs \`work\` within the deadline (its signal aborts then); 503 when switched off or past the deadline. */
  run: <T>(work: (signal: AbortSignal) => Promise<T>) => Promise<T>
}

declare module 'fastify' {
  interface FastifyInstance {
    ${n.camel}: ${n.pascal}
  }
}

/** Rejects with the signal's reason once it aborts. */
const abortion = async (signal: AbortSignal): Promise<never> => await new Promise((_resolve, reject) => {
  signal.addEventListener('abort', () => reject(signal.reason), { once: true })
})

export default fp<${n.pascal}Options>(async function ${n.camel} (fastify, options) {
  const operations = new Counter({
    name: '${n.snake}_operations_total',
    help: '${capitalize(n.prose)} operations by outcome (ok, error, timeout, off)',
    labelNames: ['outcome'] as const,
    registers: [fastify.metrics]
  })
  let lastFailure: string | undefined

  async function run<T> (work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    if (!options.enabled) {
      operations.inc({ outcome: 'off' })
      throw new AppError(ErrorCode.SERVICE_UNAVAILABLE, 'the ${n.prose} capability is switched off')
    }
    // A timer of our own, not AbortSignal.timeout: that one does not keep the process alive to fire.
    const deadline = new AbortController()
    const timer = setTimeout(() => deadline.abort(new Error('deadline')), options.timeoutMs)
    try {
      const result = await Promise.race([work(deadline.signal), abortion(deadline.signal)])
      operations.inc({ outcome: 'ok' })
      lastFailure = undefined
      return result
    } catch (err) {
      const timedOut = deadline.signal.aborted
      operations.inc({ outcome: timedOut ? 'timeout' : 'error' })
      lastFailure = timedOut ? \`no answer within \${options.timeoutMs} ms\` : 'the last operation failed'
      if (timedOut) throw new AppError(ErrorCode.SERVICE_UNAVAILABLE, \`the ${n.prose} capability did not answer within \${options.timeoutMs} ms\`)
      throw err
    } finally {
      clearTimeout(timer)
    }
  }

  fastify.health.addCheck('${n.kebab}', () => lastFailure === undefined ? { status: 'ok' } : { status: 'degraded', detail: lastFailure }, { required: false })
  fastify.decorate<${n.pascal}>('${n.camel}', { enabled: options.enabled, run })
}, { name: '${prefix}-${n.kebab}', dependencies: ['${prefix}-metrics', '${prefix}-health'] })
`
}

function pluginTestFile ({ n }: PluginModel): string {
  return `// fastify.${n.camel} as the app builds it: work runs and is counted, a stuck operation costs a 503 at
// the deadline and shows as degraded on readiness (which stays ready), ${n.constant}_ENABLED=off refuses
// with 503, and a bad ${n.constant}_TIMEOUT_MS stops the start naming the variable.

import t from 'tap'
import { build } from '../helpers/app.ts'
import { ConfigError, loadConfig } from '../../core/config.ts'

t.test('work runs through fastify.${n.camel} and is counted in ${n.snake}_operations_total', async (t) => {
  const { app } = await build(t)
  t.equal(app.${n.camel}.enabled, true)
  t.equal(await app.${n.camel}.run(async () => 42), 42)
  t.match(await app.metrics.getSingleMetricAsString('${n.snake}_operations_total'), /outcome="ok"} 1/)
  t.match((await app.health.evaluate()).checks['${n.kebab}'], { status: 'ok' })
})

t.test('an operation past ${n.constant}_TIMEOUT_MS → 503, aborted, and readiness reports it degraded but stays ready', async (t) => {
  const { app } = await build(t, { ${n.constant}_TIMEOUT_MS: '50' })
  let aborted = false
  const stuck = app.${n.camel}.run(async (signal) => await new Promise<never>(() => { signal.addEventListener('abort', () => { aborted = true }) }))
  await t.rejects(stuck, { code: 'SERVICE_UNAVAILABLE', statusCode: 503 })
  t.ok(aborted, 'the work saw its signal abort')
  const readiness = await app.health.evaluate()
  t.match(readiness.checks['${n.kebab}'], { status: 'degraded', detail: /50 ms/ })
  t.equal(readiness.ready, true)
  t.equal(await app.${n.camel}.run(async () => 'again'), 'again', 'the next operation runs')
  t.match((await app.health.evaluate()).checks['${n.kebab}'], { status: 'ok' })
})

t.test('${n.constant}_ENABLED=off: every operation → 503', async (t) => {
  const { app } = await build(t, { ${n.constant}_ENABLED: 'off' })
  t.equal(app.${n.camel}.enabled, false)
  await t.rejects(app.${n.camel}.run(async () => 1), { code: 'SERVICE_UNAVAILABLE' })
})

t.test('a bad ${n.constant}_TIMEOUT_MS stops the start with one line naming it', async (t) => {
  t.throws(() => loadConfig({ ${n.constant}_TIMEOUT_MS: 'soon' }, '/nonexistent'), ConfigError)
  t.throws(() => loadConfig({ ${n.constant}_TIMEOUT_MS: '0' }, '/nonexistent'), /^invalid configuration: ${n.constant}_TIMEOUT_MS /)
})
`
}

function configSection ({ n }: PluginModel): string {
  return `// ---------------------------------------------------------------------------------------------------
// ${capitalize(n.prose)} (core/${n.kebab}.ts): on unless switched off, each operation bounded in time.

const ${n.camel} = section({
  ${n.constant}_ENABLED: oneOf(['on', 'off'], 'on'),
  // 5 s per operation: past it the caller gets 503 rather than waiting on a stuck dependency.
  ${n.constant}_TIMEOUT_MS: int(1, 600_000, 5000, 'milliseconds, 1–600000')
}, (e) => ({
  ${n.camel}: { enabled: e.${n.constant}_ENABLED === 'on', timeoutMs: e.${n.constant}_TIMEOUT_MS }
}))
`
}

/** core/config.ts with the section declared above the assembly and listed last in SECTIONS. */
function addConfigSection (p: PluginModel): (text: string) => string {
  return (text) => {
    const lines = text.split('\n')
    const assembly = lines.findIndex((l) => /^\/\/ Assembly\b/.test(l))
    if (assembly < 1 || !/^\/\/ -{20,}$/.test(lines[assembly - 1]!)) {
      throw new GeneratorError('refusing: core/config.ts has no "// Assembly" block (after its separator line) to add the section above; nothing was changed')
    }
    lines.splice(assembly - 1, 0, ...configSection(p).split('\n'))
    const withSection = lines.join('\n')
    const sections = /^const SECTIONS = \[([^\]]+)\] as const$/m
    if (!sections.test(withSection)) throw new GeneratorError('refusing: core/config.ts has no "const SECTIONS = [...] as const" line; nothing was changed')
    return withSection.replace(sections, (_line, list: string) => `const SECTIONS = [${list.trimEnd()}, ${p.n.camel}] as const`)
  }
}

/**
 * app.ts with the plugin's import after the last core import, and its registration among the app's
 * own decorators: after the domain events (and the plugins generated before it), before the edge.
 */
function registerPlugin ({ n }: PluginModel): (text: string) => string {
  return (text) => {
    const imported = insertLine(text, `import ${n.camel} from './core/${n.kebab}.ts'`, { after: /^import \w+ from '\.\/core\/[^']+'$/ }, 'the plugin\'s import in app.ts')
    const lines = imported.split('\n')
    let at = lines.findIndex((l) => /^\s*await typed\.register\(domainEvents\)$/.test(l))
    if (at < 0) throw new GeneratorError('refusing: app.ts no longer registers domainEvents, after which plugins go; nothing was changed')
    while (/^\s*await typed\.register\(\w+, config\.\w+\)$/.test(lines[at + 1] ?? '')) at++
    lines.splice(at + 1, 0, `  await typed.register(${n.camel}, config.${n.camel})`)
    return lines.join('\n')
  }
}

function checkName (root: string, n: NameForms): void {
  const refuse = (why: string): never => { throw new GeneratorError(`refusing "${n.kebab}": ${why}; nothing was changed`) }
  if (existsSync(join(root, 'core', `${n.kebab}.ts`))) refuse(`core/${n.kebab}.ts already exists`)
  if (RESERVED_IDENTIFIERS.has(n.camel)) refuse('it is a reserved word in TypeScript')
  if (decoratorsTaken(root).has(n.camel)) refuse(`fastify.${n.camel} is already taken`)
  if (appBindings(root).has(n.camel)) refuse(`app.ts already has a binding named ${n.camel}`)
  const config = read(root, 'core/config.ts')
  if (new RegExp(`\\b${n.camel}\\b`).test(config)) refuse(`core/config.ts already uses the name ${n.camel}`)
  if (config.includes(`${n.constant}_`)) refuse(`core/config.ts already has variables named ${n.constant}_*`)
}

export function pluginPlan (root: string, name: string): Plan {
  const n = nameForms(name)
  checkName(root, n)
  const model: PluginModel = { n, prefix: pluginPrefix(root) }
  const plan = emptyPlan()
  plan.files.set(`core/${n.kebab}.ts`, pluginFile(model))
  plan.files.set(`test/core/${n.kebab}.test.ts`, pluginTestFile(model))
  plan.edits.set('core/config.ts', addConfigSection(model))
  plan.edits.set('app.ts', registerPlugin(model))
  return plan
}
