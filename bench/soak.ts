// `npm run soak [-- names…] [--quick] [--no-write] [--list]`: runs the reliability runs (every
// file of bench/soak/runs/, in `number` order), each under a hard time bound, prints PASS/FAIL with its
// figures and a summary, and stores the figures in BENCHMARKS.md beside the benchmarks.
// Exit code: 0 when every run passed, 1 when one failed (or could not load), 2 on a usage error.

import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { readMachine } from './lib/machine.ts'
import { killAllKeelServers } from './soak/lib/keel-server.ts'
import {
  INTRO_SECTION, formatIntroSection, formatRunLines, formatRunSection, mergeSoakDocument, runVerdict, sectionName, soakMachineLine, type RunRecord
} from './soak/lib/soak-report.ts'
import type { SoakOutcome, SoakRun } from './soak/run.ts'

const RUNS_DIR = resolve(import.meta.dirname, 'soak', 'runs')
const BENCHMARKS_FILE = resolve(import.meta.dirname, '..', 'BENCHMARKS.md')
// The whole soak stays under 10 minutes. Six runs × 90 s leaves a minute for start-up and writing;
// a run that needs longer is a run that hangs.
const RUN_TIME_LIMIT_MS = 90_000
const TOTAL_TIME_LIMIT_MS = 9.5 * 60_000

// Leave through process.exit so the servers the runs started are killed (bench/soak/lib/keel-server.ts).
process.once('SIGINT', () => process.exit(130))
process.once('SIGTERM', () => process.exit(143))

const log = (line: string): void => { process.stdout.write(`${line}\n`) }

interface Options { names: string[], quick: boolean, write: boolean, list: boolean }

function parseArgs (argv: readonly string[]): Options {
  const options: Options = { names: [], quick: false, write: true, list: false }
  for (const arg of argv) {
    if (arg === '--quick') options.quick = true
    else if (arg === '--no-write') options.write = false
    else if (arg === '--list') options.list = true
    else if (arg.startsWith('-')) usage(`unknown option ${arg}`)
    else options.names.push(arg)
  }
  return options
}

function usage (message: string): never {
  process.stderr.write(`soak: ${message}\nusage: npm run soak [-- names…] [--quick] [--no-write] [--list]\n`)
  process.exit(2)
}

function isSoakRun (value: unknown): value is SoakRun {
  const run = value as Partial<SoakRun> | undefined
  return typeof run?.number === 'number' && typeof run.name === 'string' && typeof run.title === 'string' && typeof run.run === 'function'
}

/** Every run file's `run` export; a file that does not load is reported under its file name. */
async function loadRuns (): Promise<{ runs: SoakRun[], broken: Array<{ file: string, error: string }> }> {
  const runs: SoakRun[] = []
  const broken: Array<{ file: string, error: string }> = []
  for (const file of readdirSync(RUNS_DIR).filter((f) => f.endsWith('.ts') && !f.startsWith('_')).sort()) {
    try {
      const exported = (await import(pathToFileURL(join(RUNS_DIR, file)).href) as { run?: unknown }).run
      if (!isSoakRun(exported)) throw new Error('it does not export `run: SoakRun`')
      runs.push(exported)
    } catch (err) {
      broken.push({ file, error: (err as Error).message })
    }
  }
  return { runs: runs.sort((a, b) => a.number - b.number), broken }
}

/** The run's outcome, or a failed one when it throws or overruns its bound (its servers are then killed). */
async function runBounded (run: SoakRun, quick: boolean): Promise<SoakOutcome> {
  const workDir = mkdtempSync(join(tmpdir(), `keel-soak-${run.name}-`))
  let timer: NodeJS.Timeout | undefined
  const overrun = new Promise<SoakOutcome>((resolve) => {
    timer = setTimeout(() => resolve({ pass: false, figures: [], failures: [`did not finish within ${RUN_TIME_LIMIT_MS / 1000} s`] }), RUN_TIME_LIMIT_MS)
  })
  try {
    return await Promise.race([run.run({ quick, workDir, log: (line) => log(`  ${line}`) }), overrun])
  } catch (err) {
    return { pass: false, figures: [], failures: [`it threw: ${(err as Error).stack ?? String(err)}`] }
  } finally {
    clearTimeout(timer)
    await killAllKeelServers()
    rmSync(workDir, { recursive: true, force: true })
  }
}

const options = parseArgs(process.argv.slice(2))
const { runs, broken } = await loadRuns()
if (options.list) {
  for (const r of runs) log(`${r.name.padEnd(16)} ${r.number}. ${r.title}`)
  for (const b of broken) log(`${basename(b.file, '.ts').padEnd(16)} (does not load: ${b.error})`)
  process.exit(0)
}
const unknown = options.names.filter((n) => !runs.some((r) => r.name === n) && !broken.some((b) => basename(b.file, '.ts') === n))
if (unknown.length > 0) usage(`unknown run ${unknown.join(', ')} (runs: ${runs.map((r) => r.name).join(', ')})`)
const wanted = (name: string): boolean => options.names.length === 0 || options.names.includes(name)
const selected = runs.filter((r) => wanted(r.name))
const brokenSelected = broken.filter((b) => wanted(basename(b.file, '.ts')))

const machine = readMachine()
log(`Machine: ${soakMachineLine(machine)}`)
log(`Versions: ${Object.entries(machine.versions).map(([n, v]) => `${n} ${v}`).join(', ')}`)
if (machine.loadAverage > 0.5) log(`Note: load average ${machine.loadAverage.toFixed(2)} — other work is running; latency figures will be noisy.`)
log(`Runs: ${selected.map((r) => r.name).join(', ')}${options.quick ? ' (quick: tap-sized counts)' : ''}; each bounded to ${RUN_TIME_LIMIT_MS / 1000} s`)

const began = Date.now()
const records: RunRecord[] = []
for (const run of selected) {
  log(`\n== ${run.number}. ${run.title}`)
  const startedAt = new Date()
  const outcome = Date.now() - began > TOTAL_TIME_LIMIT_MS
    ? { pass: false, figures: [], failures: [`not started: the soak's ${TOTAL_TIME_LIMIT_MS / 60_000} minutes were spent`] }
    : await runBounded(run, options.quick)
  const record = { run, outcome, startedAt, seconds: (Date.now() - startedAt.getTime()) / 1000 }
  records.push(record)
  for (const line of formatRunLines(record)) log(line)
}

const count = (verdict: ReturnType<typeof runVerdict>): number => records.filter((r) => runVerdict(r.outcome) === verdict).length
const failed = count('FAIL') + brokenSelected.length
const skipped = count('SKIP') > 0 ? `, ${count('SKIP')} skipped` : ''
log(`\n== Summary: ${count('PASS')} passed, ${failed} failed${skipped} in ${Math.round((Date.now() - began) / 1000)} s`)
for (const { run, outcome, seconds } of records) log(`${runVerdict(outcome)} ${run.number}. ${run.name.padEnd(16)} ${seconds.toFixed(1)} s`)
for (const b of brokenSelected) log(`FAIL ${b.file}: does not load: ${b.error}`)

if (options.write && !options.quick && records.length > 0) {
  const fresh = new Map([[INTRO_SECTION, formatIntroSection(machine, new Date())]])
  for (const record of records) fresh.set(sectionName(record.run.name), formatRunSection(record, machine))
  const previous = existsSync(BENCHMARKS_FILE) ? readFileSync(BENCHMARKS_FILE, 'utf8') : ''
  writeFileSync(BENCHMARKS_FILE, mergeSoakDocument(previous, fresh, runs.map((r) => r.name), machine, new Date()))
  log(`\nUpdated ${BENCHMARKS_FILE}`)
} else if (options.quick) {
  log('\nQuick counts: BENCHMARKS.md left as it was.')
}
process.exit(failed > 0 ? 1 : 0)
