// `npm run bench [-- names…]`: runs the benchmark scenarios (bench/scenarios/) against their peers on this machine, prints
// each scenario's table of medians and ratios beside its goals, and updates BENCHMARKS.md.
// Exit code: 0 when every scenario ran (goals met or not: a benchmark reports, it does not judge),
// 1 when one failed to run, 2 on a usage error.

import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { BenchUsageError, parseOptions, type BenchOptions } from './lib/options.ts'
import { pinHarness, readMachine } from './lib/machine.ts'
import { runScenario, type RunSettings, type Scenario } from './lib/scenario.ts'
import { documentHead, formatSection, machineLine, mergeDocument } from './lib/report.ts'
import { loadScenarios, scenarioGroups } from './scenarios/index.ts'

const BENCHMARKS_FILE = resolve(import.meta.dirname, '..', 'BENCHMARKS.md')
// Per contender: process start, the probe and the pauses between windows.
const START_OVERHEAD_S = 2

// Leave through process.exit so the server processes are killed (bench/lib/server-process.ts).
process.once('SIGINT', () => process.exit(130))
process.once('SIGTERM', () => process.exit(143))

const log = (line: string): void => { process.stdout.write(`${line}\n`) }

function estimateSeconds (scenarios: Scenario[], o: BenchOptions): number {
  return scenarios.reduce((sum, s) => sum + s.contenders.length * (START_OVERHEAD_S + o.warmupSeconds + o.rounds * o.seconds), 0)
}

const scenarios = await loadScenarios()
let options: BenchOptions
try {
  options = parseOptions(process.argv.slice(2), process.env, scenarioGroups(scenarios))
} catch (err) {
  if (!(err instanceof BenchUsageError)) throw err
  process.stderr.write(`bench: ${err.message}\n`)
  process.exit(2)
}

if (options.list) {
  for (const s of scenarios) log(`${s.name.padEnd(14)} ${s.number}. ${s.title}`)
  process.exit(0)
}

const selected = scenarios.filter((s) => options.scenarios.includes(s.name))
const machine = readMachine()
if (machine.pinning !== undefined) pinHarness(machine.pinning.load)
const settings: RunSettings = {
  seconds: options.seconds,
  rounds: options.rounds,
  warmupSeconds: options.warmupSeconds,
  profile: options.profile,
  pinning: machine.pinning,
  workDir: mkdtempSync(join(tmpdir(), 'keel-bench-run-'))
}

log(`Machine: ${machineLine(machine)}`)
log(`Versions: ${Object.entries(machine.versions).map(([n, v]) => `${n} ${v}`).join(', ')}; ${machine.h2load}`)
if (machine.loadAverage > 0.5) log(`Note: load average ${machine.loadAverage.toFixed(2)} — other work is running; figures will be noisy.`)
log(`Scenarios: ${selected.map((s) => s.name).join(', ')} — about ${Math.ceil(estimateSeconds(selected, options) / 60)} min ` +
  `(${options.rounds} rounds × ${options.seconds} s per contender, ${options.warmupSeconds} s warm-up).`)

const began = Date.now()
const fresh = new Map<string, string>()
let failed = 0
for (const scenario of selected) {
  log(`\n== ${scenario.number}. ${scenario.title}`)
  const result = await runScenario(scenario, settings, log)
  if (result.failed !== undefined) failed++
  const section = formatSection(result, machine)
  fresh.set(scenario.name, section)
  log('')
  log(section)
}

if (options.write) {
  const previous = existsSync(BENCHMARKS_FILE) ? readFileSync(BENCHMARKS_FILE, 'utf8') : ''
  writeFileSync(BENCHMARKS_FILE, mergeDocument(documentHead(machine, new Date()), previous, fresh, scenarios.map((s) => s.name)))
  log(`\nUpdated ${BENCHMARKS_FILE}`)
}
log(`Done in ${Math.round((Date.now() - began) / 1000)} s; scratch files (certificates, profiles) in ${settings.workDir}`)
process.exit(failed > 0 ? 1 : 0)
