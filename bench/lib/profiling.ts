// The profiling pass: run a contender and its baseline again, one after the other, under V8's CPU
// profiler (what `node --cpu-prof` runs, started once the server listens: bench/lib/serve.ts) with the
// same load, then show per owner (package / project file) what each costs in µs per request and the
// difference — so a plugin's owner sees what their code adds. Separate from the measured rounds: the
// profiler's own overhead never touches the table's figures.

import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { httpContender, type HttpContenderSpec } from './http-contender.ts'
import { summarizeProfile, type CpuProfile, type ProfileSummary } from './profile.ts'
import type { RunSettings } from './scenario.ts'
import { formatNumber } from './report.ts'

const ROOT = resolve(import.meta.dirname, '../..')
const OWNERS_SHOWN = 16
const FUNCTIONS_SHOWN = 16

interface Profiled { spec: HttpContenderSpec, summary: ProfileSummary, requests: number, file: string }

async function profileOne (spec: HttpContenderSpec, settings: RunSettings, seconds: number): Promise<Profiled> {
  const file = join(settings.workDir, `${spec.id}-${Date.now()}.cpuprofile`)
  const running = await httpContender({ ...spec, profileFile: file }).start(settings)
  let requests = 0
  try {
    // Profiled from the first request on: the warm-up window's requests count too.
    requests += (await running.measure(Math.min(seconds, 2))).operations
    requests += (await running.measure(seconds)).operations
  } finally {
    await running.stop()
  }
  if (!existsSync(file)) throw new Error(`${spec.label} wrote no profile`)
  return { spec, summary: summarizeProfile(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, ROOT), requests, file }
}

const perRequest = (ms: number, requests: number): number => ms * 1000 / requests
/** A name as inline code in a table cell: V8 names regexps by their source, which may hold | and backticks. */
const cell = (name: string): string => `\`\` ${name.replaceAll('|', '\\|')} \`\``

/**
 * Profiles `subject` and `baseline` under the same load; returns markdown lines for the scenario's notes:
 * busy µs per request of each, then per owner the subject's attributed cost beside the baseline's.
 */
export async function profileAgainst (subject: HttpContenderSpec, baseline: HttpContenderSpec, settings: RunSettings,
  seconds: number, why: string): Promise<string[]> {
  const a = await profileOne(subject, settings, seconds)
  const b = await profileOne(baseline, settings, seconds)
  const busyA = perRequest(a.summary.busyMs, a.requests)
  const busyB = perRequest(b.summary.busyMs, b.requests)
  const baselineOwner = new Map(b.summary.owners.map((c) => [c.name, c]))
  const baselineFunction = new Map(b.summary.functions.map((c) => [c.name, c]))
  const us = (v: number): string => formatNumber(v, 1)
  return [
    `**Profiling pass** (${why}): ${subject.label} and ${baseline.label} under V8's CPU profiler (the sampler of ` +
      '`node --cpu-prof`, started once the server listened, so start-up is excluded), same load, one after the other.',
    '',
    `Busy CPU per request: ${subject.label} ${us(busyA)} µs (${formatNumber(a.requests)} requests), ` +
      `${baseline.label} ${us(busyB)} µs (${formatNumber(b.requests)} requests): **+${us(busyA - busyB)} µs** per request.`,
    '',
    'Per owner (a package, a project file, or Node itself when no package is on the stack), "attributed" charges each ' +
      'sample to the innermost package or project frame on its stack: its own code plus the Node/native work it called ' +
      '(a hash, a header write). "Inclusive" counts every sample with the owner anywhere on the stack; for a Fastify hook ' +
      'that includes the rest of the request, which continues inside its callback.',
    '',
    `| owner | attributed % | attributed µs/req | ${baseline.label} µs/req | difference µs/req | inclusive µs/req |`,
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...a.summary.owners.slice(0, OWNERS_SHOWN).map((c) => {
      const mine = perRequest(c.attributedMs, a.requests)
      const theirs = perRequest(baselineOwner.get(c.name)?.attributedMs ?? 0, b.requests)
      return `| ${cell(c.name)} | ${c.attributedPct.toFixed(1)} | ${us(mine)} | ${us(theirs)} | ${mine >= theirs ? '+' : ''}${us(mine - theirs)} | ${us(perRequest(c.inclusiveMs, a.requests))} |`
    }),
    '',
    `Functions whose own (self) time grew the most, ${subject.label} against ${baseline.label}:`,
    '',
    `| function owner:line | self % | self µs/req | ${baseline.label} µs/req | difference µs/req |`,
    '| --- | ---: | ---: | ---: | ---: |',
    ...a.summary.functions
      .map((c) => ({ c, mine: perRequest(c.selfMs, a.requests), theirs: perRequest(baselineFunction.get(c.name)?.selfMs ?? 0, b.requests) }))
      .sort((x, y) => (y.mine - y.theirs) - (x.mine - x.theirs))
      .slice(0, FUNCTIONS_SHOWN)
      .map(({ c, mine, theirs }) => `| ${cell(c.name)} | ${c.selfPct.toFixed(1)} | ${us(mine)} | ${us(theirs)} | ${mine >= theirs ? '+' : ''}${us(mine - theirs)} |`),
    '',
    `Profiles (open in Chrome DevTools → Performance): \`${a.file}\`, \`${b.file}\`.`
  ]
}
