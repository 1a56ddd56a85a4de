// What a scenario is, and the one loop that runs every scenario the same way: start each contender,
// warm each up, measure them interleaved (A B A B …) for bounded windows, take medians, compute ratios
// against the peers measured in the same run, check the goals. HTTP, WebSocket and outbound scenarios
// differ only in their contenders' `start` and `measure`.

import { checkGoal, interleave, median, ratio, type Goal, type GoalOutcome } from './stats.ts'

/** One measuring window's outcome. */
export interface Sample {
  /** Completed operations (requests, delivered messages…) in the window. */
  operations: number
  /** The window's actual length. */
  seconds: number
  /** Further figures of the window (latency percentiles…), by metric key. */
  metrics: Record<string, number>
  /** What went wrong in the window (errors, non-2xx answers); a row with problems is flagged. */
  problems: string[]
}

/** A contender that is up and can be measured. */
export interface Running {
  measure: (seconds: number) => Promise<Sample>
  /** CPU seconds the server process has used so far; CPU per operation is derived from it. */
  cpuSeconds?: () => number
  /** Facts observed once before measuring (e.g. which policies' headers the response carried). */
  notes: string[]
  stop: () => Promise<void>
}

export interface RunSettings {
  /** Length of one measuring window. */
  seconds: number
  rounds: number
  /** Load applied to each contender once before the rounds (JIT, caches, connection pools). */
  warmupSeconds: number
  /** Run the profiling pass even when every goal is met. */
  profile: boolean
  /** CPU for the servers and CPU for the load generator, when pinning is possible. */
  pinning?: { server: number, load: number }
  /** A scratch directory of this run (certificates, profiles). */
  workDir: string
}

export interface Contender {
  id: string
  label: string
  /** A reason not to measure this contender (what it serves is absent), or undefined to run it. */
  skip?: () => string | undefined
  start: (settings: RunSettings) => Promise<Running>
}

export interface MetricSpec {
  key: string
  label: string
  /** Digits after the decimal point in tables. */
  digits: number
}

/** Rate (operations per second) and CPU per operation are computed for every sample. */
export const RATE = 'rate'
export const CPU_PER_OP = 'cpuPerOpUs'

export interface Scenario {
  /** CLI name: `npm run bench -- <name>`. */
  name: string
  /** Its number, the order scenarios run and appear in (3 has two parts: 3a, 3b). */
  number: string
  title: string
  /** What exactly is measured: route, headers, connections, code paths. */
  describe: string[]
  /** A reason to skip (a tool or file is missing), or undefined to run. */
  skip?: () => string | undefined
  contenders: Contender[]
  /** Ratio columns: the primary metric (`rate`) of each row ÷ that of these contenders. */
  baselines: string[]
  /** The columns shown, in order; `rate` first. */
  metrics: MetricSpec[]
  goals: Goal[]
  /** Reference figures measured earlier, printed beside the measured ratios. */
  references: string[]
  /** Runs after the measurement, e.g. a profiling pass when a goal is missed; returns lines for the notes. */
  followUp?: (result: ScenarioResult, settings: RunSettings) => Promise<string[]>
}

export interface Row {
  id: string
  label: string
  /** Median of each metric over the rounds. */
  medians: Record<string, number>
  /** Primary metric ÷ each baseline's, by baseline id. */
  ratios: Record<string, number>
  problems: string[]
  notes: string[]
}

export interface ScenarioResult {
  scenario: Scenario
  startedAt: Date
  settings: Pick<RunSettings, 'seconds' | 'rounds' | 'warmupSeconds'>
  /** Set when the scenario did not run (missing tool…). */
  skipped?: string
  /** Set when the scenario could not complete (a server did not start…). */
  failed?: string
  rows: Row[]
  goals: GoalOutcome[]
  notes: string[]
}

export type Log = (line: string) => void

function withDerived (sample: Sample, cpuSeconds: number | undefined): Record<string, number> {
  const figures: Record<string, number> = { ...sample.metrics, [RATE]: sample.operations / sample.seconds }
  if (cpuSeconds !== undefined && sample.operations > 0) figures[CPU_PER_OP] = cpuSeconds * 1e6 / sample.operations
  return figures
}

/** Rows from every window's figures: medians per metric, ratios of the medians against the baselines. */
export function summarize (scenario: Scenario, figures: Map<string, Array<Record<string, number>>>,
  problems: Map<string, string[]>, notes: Map<string, string[]>): { rows: Row[], goals: GoalOutcome[] } {
  const rows: Row[] = scenario.contenders.map((c) => {
    const windows = figures.get(c.id) ?? []
    const keys = new Set(windows.flatMap((w) => Object.keys(w)))
    const medians: Record<string, number> = {}
    for (const key of keys) medians[key] = median(windows.map((w) => w[key] ?? Number.NaN))
    return { id: c.id, label: c.label, medians, ratios: {}, problems: problems.get(c.id) ?? [], notes: notes.get(c.id) ?? [] }
  })
  const byId = new Map(rows.map((r) => [r.id, r]))
  for (const row of rows) {
    for (const base of scenario.baselines) row.ratios[base] = ratio(row.medians[RATE] ?? Number.NaN, byId.get(base)?.medians[RATE] ?? Number.NaN)
  }
  const goals = scenario.goals.map((goal) => {
    const row = byId.get(goal.contender)
    if (goal.against === undefined) return checkGoal(goal, row?.medians[goal.metric ?? RATE] ?? Number.NaN)
    const peer = byId.get(goal.against)
    const outcome = checkGoal(goal, ratio(row?.medians[RATE] ?? Number.NaN, peer?.medians[RATE] ?? Number.NaN))
    const byCpu = ratio(peer?.medians[CPU_PER_OP] ?? Number.NaN, row?.medians[CPU_PER_OP] ?? Number.NaN)
    return Number.isFinite(byCpu) ? { ...outcome, byCpu } : outcome
  })
  return { rows, goals }
}

/** Runs one scenario end to end; servers are stopped whatever happens. */
export async function runScenario (scenario: Scenario, settings: RunSettings, log: Log): Promise<ScenarioResult> {
  const result: ScenarioResult = {
    scenario,
    startedAt: new Date(),
    settings: { seconds: settings.seconds, rounds: settings.rounds, warmupSeconds: settings.warmupSeconds },
    rows: [],
    goals: [],
    notes: []
  }
  const skip = scenario.skip?.()
  if (skip !== undefined) {
    result.skipped = skip
    return result
  }
  // A skipped contender gets no row: the others are measured and compared without it, and a note says why.
  const contenders: Contender[] = []
  for (const c of scenario.contenders) {
    const reason = c.skip?.()
    if (reason === undefined) contenders.push(c)
    else result.notes.push(`${c.label}: not measured: ${reason}`)
  }

  const running = new Map<string, Running>()
  const figures = new Map<string, Array<Record<string, number>>>()
  const problems = new Map<string, string[]>()
  const addProblems = (id: string, list: string[]): void => {
    const known = problems.get(id) ?? []
    for (const p of list) if (!known.includes(p)) known.push(p)
    problems.set(id, known)
  }
  try {
    for (const c of contenders) {
      log(`  starting ${c.label}`)
      running.set(c.id, await c.start(settings))
    }
    if (settings.warmupSeconds > 0) {
      for (const c of contenders) {
        log(`  warm-up ${c.label} (${settings.warmupSeconds} s)`)
        addProblems(c.id, (await running.get(c.id)!.measure(settings.warmupSeconds)).problems)
      }
    }
    for (const slot of interleave(contenders.map((c) => c.id), settings.rounds)) {
      const r = running.get(slot.id)!
      const cpuBefore = r.cpuSeconds?.()
      const sample = await r.measure(settings.seconds)
      const cpuAfter = r.cpuSeconds?.()
      const cpu = cpuBefore !== undefined && cpuAfter !== undefined ? cpuAfter - cpuBefore : undefined
      const window = withDerived(sample, cpu)
      figures.set(slot.id, [...(figures.get(slot.id) ?? []), window])
      addProblems(slot.id, sample.problems)
      log(`  round ${slot.round + 1}/${settings.rounds} ${slot.id}: ${Math.round(window[RATE]!).toLocaleString('en-US')}/s`)
    }
  } catch (err) {
    result.failed = (err as Error).message
  } finally {
    for (const r of running.values()) await r.stop()
  }
  const notes = new Map([...running].map(([id, r]) => [id, r.notes]))
  Object.assign(result, summarize({ ...scenario, contenders }, figures, problems, notes))
  if (result.failed === undefined && scenario.followUp !== undefined) {
    try {
      result.notes.push(...await scenario.followUp(result, settings))
    } catch (err) {
      result.notes.push(`follow-up failed: ${(err as Error).message}`)
    }
  }
  return result
}
