// The profiling pass of the fan-out scenario: Keel and a peer run the fan-out load again, one after the
// other, under V8's CPU profiler (bench/lib/serve.ts starts it once the server listens), and the notes
// show per owner what each costs in µs per delivered message. A CPU profile sees only the process's
// own (user-space) work; the system time of the socket writes is read from /proc beside it.

import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { summarizeProfile, type CpuProfile, type ProfileSummary } from './profile.ts'
import { formatNumber } from './report.ts'
import type { RunSettings } from './scenario.ts'
import { roomsContender, type WsContenderSpec } from './ws-contender.ts'

const ROOT = resolve(import.meta.dirname, '../..')
const OWNERS_SHOWN = 12
const FUNCTIONS_SHOWN = 12

interface Profiled { spec: WsContenderSpec, summary: ProfileSummary, deliveries: number, userUs: number, systemUs: number, file: string }

async function profileOne (spec: WsContenderSpec, settings: RunSettings, seconds: number): Promise<Profiled> {
  const file = join(settings.workDir, `${spec.id}-fanout-${Date.now()}.cpuprofile`)
  const running = await roomsContender({ ...spec, profileFile: file, fanoutOnly: true }).start(settings)
  let sample
  try {
    await running.measure(Math.min(seconds, 2))
    sample = await running.measure(seconds)
  } finally {
    await running.stop()
  }
  if (!existsSync(file)) throw new Error(`${spec.label} wrote no profile`)
  return {
    spec,
    summary: summarizeProfile(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, ROOT),
    deliveries: sample.operations,
    userUs: sample.metrics.userUs ?? Number.NaN,
    systemUs: sample.metrics.systemUs ?? Number.NaN,
    file
  }
}

/** Profiles `subject` and `peer` under the fan-out load; markdown lines for the scenario's notes. */
export async function profileFanout (subject: WsContenderSpec, peer: WsContenderSpec, settings: RunSettings, seconds: number, why: string): Promise<string[]> {
  const a = await profileOne(subject, settings, seconds)
  const b = await profileOne(peer, settings, seconds)
  const us = (v: number): string => formatNumber(v, 2)
  const perDelivery = (p: Profiled, ms: number): number => ms * 1000 / p.deliveries
  const peerOwner = new Map(b.summary.owners.map((c) => [c.name, c.attributedMs]))
  const cell = (name: string): string => `\`\` ${name.replaceAll('|', '\\|')} \`\``
  const split = (p: Profiled): string => `${p.spec.label} ${us(p.userUs)} µs user + ${us(p.systemUs)} µs system ` +
    `(${formatNumber(p.deliveries)} deliveries; the profiler's busy samples of its main thread: ${us(perDelivery(p, p.summary.busyMs))} µs)`
  return [
    `**Profiling pass** (${why}): ${subject.label} and ${peer.label} under the fan-out load alone, under V8's CPU profiler, one after the other.`,
    '',
    `Server CPU per delivery in the profiled window, from /proc: ${split(a)}; ${split(b)}. ` +
      'System time is the kernel\'s share: one write system call per socket and per flush, which a CPU profile does not see.',
    '',
    'Per owner, "attributed" µs per delivery (each sample charged to the innermost package or project frame; see the HTTP scenarios\' notes):',
    '',
    `| owner | ${subject.label} | ${peer.label} |`,
    '| --- | ---: | ---: |',
    ...a.summary.owners.slice(0, OWNERS_SHOWN)
      .map((c) => `| ${cell(c.name)} | ${us(perDelivery(a, c.attributedMs))} | ${us(perDelivery(b, peerOwner.get(c.name) ?? 0))} |`),
    '',
    `${subject.label}'s functions by own (self) time, µs per delivery:`,
    '',
    '| function owner:line | self µs | self % |',
    '| --- | ---: | ---: |',
    ...a.summary.functions.slice(0, FUNCTIONS_SHOWN).map((c) => `| ${cell(c.name)} | ${us(perDelivery(a, c.selfMs))} | ${c.selfPct.toFixed(1)} |`),
    '',
    `Profiles (open in Chrome DevTools → Performance): \`${a.file}\`, \`${b.file}\`.`
  ]
}
