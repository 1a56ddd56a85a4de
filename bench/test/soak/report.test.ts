// How `npm run soak` stores its figures (bench/soak/lib/soak-report.ts): its sections of BENCHMARKS.md sit
// after the benchmarks', replace only their own earlier versions, and leave the benchmark head alone.

import t from 'tap'
import type { Machine } from '../../lib/machine.ts'
import { formatIntroSection, formatRunLines, formatRunSection, mergeSoakDocument, runVerdict, sectionName, type RunRecord } from '../../soak/lib/soak-report.ts'

// Only what the soak prints of a machine; the pinning note must not survive (the soak does not pin).
const machine = { cpuModel: 'Test CPU', cores: 2, memoryGiB: 24, os: 'Linux test', node: 'v24.0.0', loadAverage: 0.1, pinningNote: 'servers pinned to CPU 0', versions: { fastify: '5.0.0' }, h2load: 'h2load test' } satisfies Machine

const record = (name: string, number: number, pass: boolean): RunRecord => ({
  run: { name, number, title: `run ${name}` },
  outcome: { pass, figures: [['latency', 'p99 1 ms | p50 0.5 ms']], failures: pass ? [] : ['it broke'] },
  startedAt: new Date('2026-01-02T03:04:05Z'),
  seconds: 12.34
})

t.test('a run section says pass or fail, when, on which machine, its figures and its failures', async (t) => {
  const section = formatRunSection(record('slowloris', 2, false), machine)
  t.match(section, /^<!-- bench:soak-slowloris -->\n### 2\. run slowloris\n/)
  t.match(section, /\*\*FAIL\*\* · `npm run soak -- slowloris` · 2026-01-02T03:04:05\.000Z · 12\.3 s/)
  t.match(section, /Machine: Test CPU, .*not pinned: server and clients share the CPUs/, 'the soak does not claim the benchmark pinning')
  t.match(section, /\| latency \| p99 1 ms \\\| p50 0\.5 ms \|/, 'a | inside a figure does not break the table')
  t.match(section, /Failures:\n- it broke\n\n<!-- \/bench:soak-slowloris -->$/)
  t.same(formatRunLines(record('shutdown', 1, true)), ['PASS 1. shutdown (12.3 s)', '  latency: p99 1 ms | p50 0.5 ms'])
})

t.test('a run that did not run here (what it punishes is absent) says SKIP and why, and is no failure', async (t) => {
  const skipped: RunRecord = { ...record('upstream-chaos', 5, true), outcome: { pass: true, skipped: 'its route answers 404', figures: [], failures: [] } }
  t.equal(runVerdict(skipped.outcome), 'SKIP')
  t.equal(runVerdict(record('shutdown', 1, true).outcome), 'PASS')
  t.equal(runVerdict(record('shutdown', 1, false).outcome), 'FAIL')
  t.same(formatRunLines(skipped), ['SKIP 5. upstream-chaos (12.3 s)', '  skipped: its route answers 404'])
  const section = formatRunSection(skipped, machine)
  t.match(section, /\*\*SKIP\*\* · `npm run soak -- upstream-chaos`/)
  t.match(section, /Skipped: its route answers 404/)
})

t.test('BENCHMARKS.md keeps its head and the benchmark sections; soak sections follow them in run order', async (t) => {
  const section = (name: string, body: string): string => `<!-- bench:${name} -->\n${body}\n<!-- /bench:${name} -->`
  const previous = `# bench head\n\nhow to read\n\n${section('edge', 'edge figures')}\n\n${section(sectionName('h2-abuse'), 'old h2')}\n\n${section('ws', 'ws figures')}\n`
  const fresh = new Map([
    ['soak', formatIntroSection(machine, new Date('2026-01-02T03:04:05Z'))],
    [sectionName('shutdown'), section(sectionName('shutdown'), 'new shutdown')]
  ])
  const doc = mergeSoakDocument(previous, fresh, ['shutdown', 'slowloris', 'h2-abuse'], machine, new Date())
  t.ok(doc.startsWith('# bench head\n\nhow to read\n\n<!-- bench:edge -->'), 'the head is kept')
  const order = [...doc.matchAll(/<!-- bench:([\w.-]+) -->/g)].map((m) => m[1])
  t.same(order, ['edge', 'ws', 'soak', 'soak-shutdown', 'soak-h2-abuse'])
  t.match(doc, /old h2/, 'a run not run this time keeps its last figures')
  t.match(doc, /## Reliability runs \(npm run soak\)/)
  t.match(doc, /Latest soak: 2026-01-02T03:04:05\.000Z .*Versions: fastify 5\.0\.0/)
  t.match(mergeSoakDocument('', fresh, ['shutdown'], machine, new Date()), /^# Benchmarks\n/, 'a first run on no file writes the benchmark head')
})
