// The benchmark harness's own logic (bench/lib): measuring order, medians, ratios, goals, the tables and
// BENCHMARKS.md sections it writes, its options, and its reading of CPU profiles. No server, no load and
// no timing here: benchmarks print figures, tests check behaviour.

import t from 'tap'
import { checkGoal, interleave, median, ratio } from '../lib/stats.ts'
import { RATE, CPU_PER_OP, runScenario, type Contender, type RunSettings, type Scenario, type ScenarioResult } from '../lib/scenario.ts'
import { formatGoal, formatNumber, formatRatio, formatSection, formatTable, mergeDocument, readSections, documentHead } from '../lib/report.ts'
import { BenchUsageError, DEFAULTS, parseOptions } from '../lib/options.ts'
import { ownerOf, summarizeProfile, type CpuProfile } from '../lib/profile.ts'
import type { Machine } from '../lib/machine.ts'

const settings: RunSettings = { seconds: 1, rounds: 3, warmupSeconds: 1, profile: false, workDir: '/tmp' }
const machine: Machine = {
  cpuModel: 'Test CPU',
  cores: 2,
  memoryGiB: 24,
  os: 'Linux test',
  node: 'v24.0.0',
  loadAverage: 0.1,
  pinning: { server: 0, load: 1 },
  pinningNote: 'servers pinned to CPU 0',
  versions: { fastify: '5.0.0', express: '5.0.0' },
  h2load: 'h2load test'
}

/** A contender whose windows return the given rates in turn; `calls` records the measuring order. */
function fakeContender (id: string, rates: number[], calls: string[], cpuPerWindow = 0.5): Contender {
  let window = 0
  let cpu = 0
  return {
    id,
    label: `${id} server`,
    start: async () => ({
      notes: [`${id} answered 200`],
      cpuSeconds: () => cpu,
      measure: async (seconds) => {
        calls.push(id)
        const rate = rates[Math.min(window++, rates.length - 1)]!
        cpu += cpuPerWindow
        return { operations: rate * seconds, seconds, metrics: { p99Ms: 2 }, problems: rate === 0 ? ['100 answers with status 429'] : [] }
      },
      stop: async () => { calls.push(`stop ${id}`) }
    })
  }
}

function fakeScenario (contenders: Contender[], extra: Partial<Scenario> = {}): Scenario {
  return {
    name: 'fake',
    number: '0',
    title: 'A fake scenario',
    describe: ['what is measured'],
    contenders,
    baselines: ['base'],
    metrics: [{ key: RATE, label: 'req/s', digits: 0 }, { key: 'p99Ms', label: 'p99 ms', digits: 0 }, { key: CPU_PER_OP, label: 'CPU µs/req', digits: 1 }],
    goals: [{ contender: 'subject', against: 'base', atLeast: 0.75, text: 'subject ≥ 0.75× base' }],
    references: ['a reference figure'],
    ...extra
  }
}

t.test('contenders are measured interleaved, each round starting with the next one', async (t) => {
  t.same(interleave(['a', 'b'], 3).map((s) => s.id), ['a', 'b', 'b', 'a', 'a', 'b'])
  t.same(interleave(['a', 'b', 'c'], 3).map((s) => s.id).join(''), 'abcbcacab')
  t.same(interleave(['a', 'b', 'c'], 2).map((s) => s.round), [0, 0, 0, 1, 1, 1])
  t.same(interleave(['a'], 0), [], 'no rounds, no windows')
})

t.test('the median is the middle value, the mean of the middle two for an even count', async (t) => {
  t.equal(median([3, 1, 2]), 2)
  t.equal(median([4, 1, 3, 2]), 2.5)
  t.equal(median([7]), 7)
  t.equal(median([5, Number.NaN, 1, 3]), 3, 'unmeasured windows are left out')
  t.ok(Number.isNaN(median([])), 'no values: NaN, not 0')
})

t.test('ratios are a ÷ b, and NaN when either side was not measured', async (t) => {
  t.equal(ratio(3, 4), 0.75)
  t.ok(Number.isNaN(ratio(1, 0)))
  t.ok(Number.isNaN(ratio(Number.NaN, 2)))
})

t.test('a goal says whether it was met and by how much it falls short', async (t) => {
  const atLeast = { contender: 'k', against: 'f', atLeast: 0.75, text: 'k ≥ 0.75× f' }
  t.match(checkGoal(atLeast, 0.8), { met: true, shortBy: 0 })
  t.match(checkGoal(atLeast, 0.6), { met: false })
  t.equal(Math.round(checkGoal(atLeast, 0.6).shortBy * 100), 20)
  const atMost = { contender: 'k', metric: CPU_PER_OP, atMost: 4, text: '≤ 4 µs' }
  t.match(checkGoal(atMost, 5), { met: false, shortBy: 0.25 })
  t.match(checkGoal(atMost, 3), { met: true })
  t.match(checkGoal(atLeast, Number.NaN), { met: false })
  t.equal(formatGoal(checkGoal(atLeast, 0.6)), '- ✗ k ≥ 0.75× f: 0.60× (20 % short)')
  t.equal(formatGoal(checkGoal(atLeast, 0.9)), '- ✓ k ≥ 0.75× f: 0.90×')
  t.equal(formatGoal(checkGoal(atMost, 3)), '- ✓ ≤ 4 µs: 3.0')
  t.equal(formatGoal(checkGoal(atLeast, Number.NaN)), '- ✗ k ≥ 0.75× f: not measured')
})

t.test('a scenario run warms up, measures interleaved rounds, takes medians and ratios, and stops every server', async (t) => {
  const calls: string[] = []
  const scenario = fakeScenario([fakeContender('subject', [100, 80, 60, 70], calls), fakeContender('base', [100, 100, 90, 110], calls, 0.25)])
  const result = await runScenario(scenario, settings, () => {})
  t.same(calls, ['subject', 'base', 'subject', 'base', 'base', 'subject', 'subject', 'base', 'stop subject', 'stop base'],
    'one warm-up each, then the rounds interleaved, then both stopped')
  const [subject, base] = result.rows
  t.equal(subject!.medians[RATE], 70, 'median of 80, 60, 70 (the warm-up is not counted)')
  t.equal(base!.medians[RATE], 100, 'median of 100, 90, 110')
  t.equal(subject!.ratios.base, 0.7)
  t.equal(base!.ratios.base, 1)
  t.equal(subject!.medians[CPU_PER_OP], 0.5e6 / 70, 'server CPU per operation from the CPU used during each window')
  t.same(subject!.notes, ['subject answered 200'])
  t.match(result.goals[0], { met: false, value: 0.7 })
  t.equal(result.goals[0]!.byCpu!.toFixed(2), '0.35', 'the cross-check from CPU per request: (0.25e6 / 100) ÷ (0.5e6 / 70)')
  t.equal(formatGoal(result.goals[0]!), '- ✗ subject ≥ 0.75× base: 0.70× (7 % short); by server CPU per request: 0.35×')
  t.equal(result.failed, undefined)
})

t.test('a scenario whose server fails to start reports the failure and stops the servers already started', async (t) => {
  const calls: string[] = []
  const broken: Contender = { id: 'base', label: 'broken', start: async () => { throw new Error('base did not listen within 30 s') } }
  const result = await runScenario(fakeScenario([fakeContender('subject', [1], calls), broken]), settings, () => {})
  t.equal(result.failed, 'base did not listen within 30 s')
  t.same(calls, ['stop subject'])
  t.match(formatSection(result, machine), /\*\*Failed:\*\* base did not listen within 30 s/)
})

t.test('a skipped scenario starts nothing and says why', async (t) => {
  const calls: string[] = []
  const result = await runScenario(fakeScenario([fakeContender('subject', [1], calls)], { skip: () => 'h2load not found' }), settings, () => {})
  t.same(calls, [])
  t.equal(result.skipped, 'h2load not found')
  t.match(formatSection(result, machine), /\*\*Skipped:\*\* h2load not found/)
})

t.test('a skipped contender is neither started nor measured; the others are, and the section says why it is missing', async (t) => {
  const calls: string[] = []
  const absent: Contender = { ...fakeContender('extra', [1], calls), skip: () => 'its route is not in this checkout' }
  const result = await runScenario(fakeScenario([fakeContender('subject', [70], calls), absent, fakeContender('base', [100], calls)]), settings, () => {})
  t.notOk(calls.includes('extra') || calls.includes('stop extra'), 'never started, so never measured nor stopped')
  t.same(result.rows.map((r) => r.id), ['subject', 'base'], 'no row for it')
  t.equal(result.rows[0]!.ratios.base, 0.7, 'the others are measured and compared as usual')
  t.equal(result.failed, undefined)
  t.match(formatSection(result, machine), /extra server: not measured: its route is not in this checkout/)
})

t.test('a follow-up adds its lines to the notes, and its failure is reported, not thrown', async (t) => {
  const calls: string[] = []
  const ok = await runScenario(fakeScenario([fakeContender('subject', [1], calls), fakeContender('base', [1], calls)],
    { followUp: async () => ['profile: helmet 12 µs'] }), { ...settings, warmupSeconds: 0 }, () => {})
  t.same(ok.notes, ['profile: helmet 12 µs'])
  const failing = await runScenario(fakeScenario([fakeContender('subject', [1], calls), fakeContender('base', [1], calls)],
    { followUp: async () => { throw new Error('no profile written') } }), { ...settings, warmupSeconds: 0 }, () => {})
  t.same(failing.notes, ['follow-up failed: no profile written'])
})

async function sampleResult (): Promise<ScenarioResult> {
  const calls: string[] = []
  return runScenario(fakeScenario([fakeContender('subject', [12345, 12345, 12345, 12345], calls), fakeContender('base', [0], calls)]), settings, () => {})
}

t.test('the ratio table has one row per contender with its medians and a ratio column per baseline', async (t) => {
  const table = formatTable(await sampleResult()).split('\n')
  t.equal(table[0], '| contender | req/s | p99 ms | CPU µs/req | vs base server |')
  t.equal(table[1], '| --- | ---: | ---: | ---: | ---: |')
  t.equal(table[2], '| subject server | 12,345 | 2 | 40.5 | — |', 'thousands separators; no ratio against a baseline that served nothing')
  t.equal(table[3], '| base server ⚠ | 0 | 2 | — | — |', 'a row with problems is flagged')
  t.equal(formatNumber(Number.POSITIVE_INFINITY), '—')
  t.equal(formatNumber(1234.567, 1), '1,234.6')
  t.equal(formatRatio(0.756), '0.76×')
  t.equal(formatRatio(undefined), '—')
})

t.test('a scenario section names the run, the machine, goals, references, probes and problems', async (t) => {
  const section = formatSection(await sampleResult(), machine)
  t.match(section, /^<!-- bench:fake -->\n### 0\. A fake scenario/)
  t.match(section, /`npm run bench -- fake` · .* · 3 interleaved rounds × 1 s per contender after 1 s of warm-up · medians/)
  t.match(section, /Machine: Test CPU, 2 CPUs, 24 GiB, Linux test, Node v24\.0\.0; servers pinned to CPU 0; load average 0\.10 at start\./)
  t.match(section, /- ✗ subject ≥ 0\.75× base: not measured/)
  t.match(section, /- a reference figure/)
  t.match(section, /- subject server: subject answered 200/)
  t.match(section, /Problems during the load[^\n]*\n- base server: 100 answers with status 429/)
  t.match(section, /<!-- \/bench:fake -->$/)
})

t.test('BENCHMARKS.md keeps the sections of scenarios not run this time and replaces the rest', async (t) => {
  const section = (name: string, body: string): string => `<!-- bench:${name} -->\n${body}\n<!-- /bench:${name} -->`
  const previous = `# old head\n\n${section('edge', 'old edge')}\n\n${section('soak-shutdown', 'soak figures')}\n\n${section('jwt', 'old jwt')}\n`
  t.same([...readSections(previous).keys()], ['edge', 'soak-shutdown', 'jwt'])
  const doc = mergeDocument('# new head', previous, new Map([['jwt', section('jwt', 'new jwt')], ['http2', section('http2', 'new h2')]]), ['edge', 'http2', 'jwt'])
  t.equal(doc, `# new head\n\n${section('edge', 'old edge')}\n\n${section('http2', 'new h2')}\n\n${section('jwt', 'new jwt')}\n\n${section('soak-shutdown', 'soak figures')}\n`,
    'registry order first, then sections of other runners in their old order')
  t.equal(mergeDocument('# head', '', new Map(), ['edge']), '# head\n\n\n', 'a first run on no file')
  const head = documentHead(machine, new Date('2026-01-02T03:04:05Z'))
  t.match(head, /## Latest run \(2026-01-02T03:04:05\.000Z\)/)
  t.match(head, /Versions: fastify 5\.0\.0, express 5\.0\.0/)
  t.match(head, /npm run bench -- edge --profile/)
})

const groups = new Map([['edge', ['edge']], ['compress-gzip', ['compress-gzip']], ['compress-br', ['compress-br']], ['compress', ['compress-gzip', 'compress-br']]])

t.test('bench options: scenario names and families, flags, and window lengths from the environment', async (t) => {
  t.same(parseOptions([], {}, groups), { scenarios: ['edge', 'compress-gzip', 'compress-br'], ...DEFAULTS, profile: false, write: true, list: false })
  t.same(parseOptions(['compress'], {}, groups).scenarios, ['compress-gzip', 'compress-br'])
  t.same(parseOptions(['compress-br', 'edge'], {}, groups).scenarios, ['edge', 'compress-br'], 'registry order, whatever the CLI order')
  t.match(parseOptions(['--profile', '--no-write', '--list'], {}, groups), { profile: true, write: false, list: true })
  t.match(parseOptions([], { BENCH_SECONDS: '1', BENCH_ROUNDS: '1', BENCH_WARMUP_SECONDS: '0' }, groups), { seconds: 1, rounds: 1, warmupSeconds: 0 })
  t.match(parseOptions([], { BENCH_SECONDS: '' }, groups), { seconds: DEFAULTS.seconds }, 'an empty variable is unset')
})

t.test('bad bench options are refused with one clear message each', async (t) => {
  t.throws(() => parseOptions(['edg'], {}, groups), new BenchUsageError('unknown scenario "edg"; expected one of: edge, compress-gzip, compress-br, compress'))
  t.throws(() => parseOptions(['--fast'], {}, groups), { name: 'BenchUsageError', message: 'unknown option --fast; expected --profile, --no-write or --list' })
  t.throws(() => parseOptions([], { BENCH_SECONDS: '0' }, groups), { message: 'BENCH_SECONDS="0" is not valid; expected a whole number 1–60' })
  t.throws(() => parseOptions([], { BENCH_ROUNDS: '2.5' }, groups), { message: 'BENCH_ROUNDS="2.5" is not valid; expected a whole number 1–10' })
  t.throws(() => parseOptions([], { BENCH_WARMUP_SECONDS: 'soon' }, groups), { message: /^BENCH_WARMUP_SECONDS="soon" is not valid/ })
})

t.test('profile frames are owned by their package, project file or Node module', async (t) => {
  const root = '/work/main'
  const frame = (url: string, functionName = 'f') => ({ url, functionName, lineNumber: 0 })
  t.equal(ownerOf(frame('file:///work/main/node_modules/@fastify/helmet/index.js'), root), '@fastify/helmet')
  t.equal(ownerOf(frame('file:///work/main/node_modules/@fastify/jwt/node_modules/fast-jwt/src/verifier.js'), root), 'fast-jwt', 'the innermost package')
  t.equal(ownerOf(frame('file:///work/main/node_modules/pino/pino.js'), root), 'pino')
  t.equal(ownerOf(frame('file:///work/main/edge/caching.ts'), root), 'edge/caching.ts')
  t.equal(ownerOf(frame('node:internal/streams/writable'), root), 'node:streams')
  t.equal(ownerOf(frame('node:_http_outgoing'), root), 'node:_http_outgoing')
  t.equal(ownerOf(frame('', '(garbage collector)'), root), '(gc)')
  t.equal(ownerOf(frame('', '(program)'), root), '(program)')
  t.equal(ownerOf(frame('', 'writev'), root), '(native)')
})

t.test('a profile summary charges native work to the package that called it and leaves idle and profiler time out', async (t) => {
  const node = (id: number, url: string, functionName: string, children: number[] = []) => ({ id, callFrame: { functionName, url, lineNumber: 9 }, children })
  const profile: CpuProfile = {
    nodes: [
      node(1, '', '(root)', [2, 6, 7]),
      node(2, 'file:///app/node_modules/fastify/lib/hooks.js', 'hookRunner', [3]),
      node(3, 'file:///app/edge/caching.ts', 'computedETag', [4]),
      node(4, 'node:crypto', 'hash', [5]),
      node(5, '', 'oneShotDigest'),
      node(6, '', '(idle)'),
      node(7, 'node:inspector', 'post')
    ],
    samples: [5, 5, 3, 2, 6, 7],
    timeDeltas: [1000, 1000, 1000, 1000, 5000, 3000]
  }
  const summary = summarizeProfile(profile, '/app')
  t.equal(summary.busyMs, 4, 'idle and the profiler serializing itself are not busy time')
  const owners = new Map(summary.owners.map((c) => [c.name, c]))
  t.match(owners.get('edge/caching.ts'), { attributedMs: 3, selfMs: 1, inclusiveMs: 3, attributedPct: 75 })
  t.match(owners.get('fastify'), { attributedMs: 1, selfMs: 1, inclusiveMs: 4 })
  t.match(owners.get('(native)'), { attributedMs: 0, selfMs: 2 })
  t.equal(summary.owners[0]!.name, 'edge/caching.ts', 'owners sorted by attributed time')
  t.equal(summary.functions[0]!.name, 'oneShotDigest (native):10', 'functions sorted by self time')
})
