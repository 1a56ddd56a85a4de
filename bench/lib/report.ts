// Turns results into the one format printed and stored: a markdown table of medians and ratios per
// scenario, the goals beside the measured ratios, and BENCHMARKS.md, whose per-scenario sections
// (`<!-- bench:NAME -->` … `<!-- /bench:NAME -->`) are replaced one by one, so running one scenario
// keeps the others' last figures. Pure: run.ts does the printing and the file I/O.

import type { Machine } from './machine.ts'
import { RATE, type Row, type ScenarioResult } from './scenario.ts'
import type { GoalOutcome } from './stats.ts'

/** A figure for a table: thousands separators, fixed digits, an em dash when not measured. */
export function formatNumber (value: number | undefined, digits = 0): string {
  if (value === undefined || !Number.isFinite(value)) return '—'
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

export function formatRatio (value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? '—' : `${value.toFixed(2)}×`
}

/** Markdown table: one row per contender, its medians, then its ratio against each baseline. */
export function formatTable (result: ScenarioResult): string {
  const { scenario } = result
  const labelOf = (id: string): string => scenario.contenders.find((c) => c.id === id)?.label ?? id
  const header = ['contender', ...scenario.metrics.map((m) => m.label), ...scenario.baselines.map((b) => `vs ${labelOf(b)}`)]
  const align = ['---', ...header.slice(1).map(() => '---:')]
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`
  const rows = result.rows.map((row: Row) => line([
    row.problems.length > 0 ? `${row.label} ⚠` : row.label,
    ...scenario.metrics.map((m) => formatNumber(row.medians[m.key], m.digits)),
    ...scenario.baselines.map((b) => formatRatio(row.ratios[b]))
  ]))
  return [line(header), line(align), ...rows].join('\n')
}

export function formatGoal (outcome: GoalOutcome): string {
  const { goal, value, met, shortBy } = outcome
  const figure = goal.against !== undefined ? formatRatio(value) : formatNumber(value, 1)
  if (!Number.isFinite(value)) return `- ✗ ${goal.text}: not measured`
  const cpu = outcome.byCpu === undefined ? '' : `; by server CPU per request: ${formatRatio(outcome.byCpu)}`
  return `- ${met ? '✓' : '✗'} ${goal.text}: ${figure}${met ? '' : ` (${Math.round(shortBy * 100)} % short)`}${cpu}`
}

export function machineLine (m: Machine): string {
  return `${m.cpuModel}, ${m.cores} CPUs, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}; ${m.pinningNote}; load average ${m.loadAverage.toFixed(2)} at start`
}

/** One scenario's section of BENCHMARKS.md (also what the terminal shows). */
export function formatSection (result: ScenarioResult, machine: Machine): string {
  const { scenario, settings } = result
  const out = [`<!-- bench:${scenario.name} -->`, `### ${scenario.number}. ${scenario.title}`, '']
  out.push(`\`npm run bench -- ${scenario.name}\` · ${result.startedAt.toISOString()} · ${settings.rounds} interleaved rounds × ${settings.seconds} s per contender after ${settings.warmupSeconds} s of warm-up · medians`, '')
  out.push(`Machine: ${machineLine(machine)}.`, '')
  for (const line of scenario.describe) out.push(`- ${line}`)
  out.push('')
  if (result.skipped !== undefined) {
    out.push(`**Skipped:** ${result.skipped}`)
  } else {
    if (result.failed !== undefined) out.push(`**Failed:** ${result.failed}`, '')
    if (result.rows.some((r) => Number.isFinite(r.medians[RATE]))) out.push(formatTable(result), '')
    if (result.goals.length > 0) out.push('Goals:', ...result.goals.map(formatGoal), '')
    if (scenario.references.length > 0) out.push('Reference points (measured earlier on this machine class, for comparison):', ...scenario.references.map((r) => `- ${r}`), '')
    const observed = result.rows.filter((r) => r.notes.length > 0)
    if (observed.length > 0) out.push('What each contender answered (one probe before the load):', ...observed.map((r) => `- ${r.label}: ${r.notes.join('; ')}`), '')
    const troubled = result.rows.filter((r) => r.problems.length > 0)
    if (troubled.length > 0) out.push('⚠ Problems during the load (figures of these rows are suspect):', ...troubled.map((r) => `- ${r.label}: ${r.problems.join('; ')}`), '')
    if (result.notes.length > 0) out.push(...result.notes, '')
  }
  out.push(`<!-- /bench:${scenario.name} -->`)
  return out.join('\n')
}

const SECTION = /<!-- bench:([\w.-]+) -->[\s\S]*?<!-- \/bench:\1 -->/g

/** The sections of an existing BENCHMARKS.md, by name, in file order. */
export function readSections (doc: string): Map<string, string> {
  return new Map([...doc.matchAll(SECTION)].map((m) => [m[1]!, m[0]]))
}

/** The part of an existing BENCHMARKS.md above its first section (all of it when it has none), for runners that keep the head. */
export function headOf (doc: string): string {
  const first = doc.search(/<!-- bench:[\w.-]+ -->/)
  return first < 0 ? doc : doc.slice(0, first)
}

/**
 * The new BENCHMARKS.md: `head`, then the sections — fresh ones replacing old ones of the same name,
 * in `order`; sections of other names (not run this time, or written by another runner) are kept after.
 */
export function mergeDocument (head: string, previous: string, fresh: Map<string, string>, order: readonly string[]): string {
  const sections = readSections(previous)
  for (const [name, text] of fresh) sections.set(name, text)
  const names = [...order.filter((n) => sections.has(n)), ...[...sections.keys()].filter((n) => !order.includes(n))]
  return `${head.trimEnd()}\n\n${names.map((n) => sections.get(n)).join('\n\n')}\n`
}

/** The part of BENCHMARKS.md above the sections: how to read and reproduce, the machine of the latest run. */
export function documentHead (machine: Machine, generatedAt: Date): string {
  const versions = Object.entries(machine.versions).map(([name, v]) => `${name} ${v}`).join(', ')
  return [
    '# Benchmarks',
    '',
    'Generated by `npm run bench` (`bench/run.ts`); do not edit by hand. Each scenario starts the servers it compares as',
    'separate processes on 127.0.0.1, warms each up, then measures them in interleaved rounds (A B C, B C A, …) and',
    'reports medians. Ratios compare contenders measured in the same run on the same machine: compare ratios, not',
    'absolute requests per second, across machines. "Server CPU µs/req" is the server process\'s own CPU time',
    '(/proc) divided by the requests it answered; on a noisy machine it is steadier than throughput.',
    '',
    '## Reproduce',
    '',
    '```sh',
    'npm ci',
    'apt-get install nghttp2-client     # h2load, for the HTTP/2 scenario (skipped without it)',
    'npm run bench                      # every scenario, under 10 minutes on 2 cores; rewrites this file',
    'npm run bench -- edge              # one scenario (names: npm run bench -- --list); updates its section only',
    'npm run bench -- edge --profile    # also profile Keel and bare Fastify under load: what each package costs per request',
    'BENCH_SECONDS=1 BENCH_ROUNDS=1 BENCH_WARMUP_SECONDS=0 npm run bench -- --no-write   # a quick smoke run',
    '```',
    '',
    'Run it on an otherwise idle machine: the load average at start is recorded with each section.',
    '',
    `## Latest run (${generatedAt.toISOString()})`,
    '',
    `- Machine: ${machineLine(machine)}`,
    `- Load generators: autocannon ${machine.versions.autocannon ?? '?'} (HTTP/1.1, in the harness process), ${machine.h2load} (HTTP/2)`,
    `- Versions: ${versions}`,
    '',
    '## Results'
  ].join('\n')
}
