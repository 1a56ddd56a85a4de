// The arithmetic of a benchmark run: the interleaved measuring order, medians, ratios and goal checks.
// Pure functions (bench/test/harness.test.ts covers them); no I/O, no clock.

/** One measuring window: which contender runs in which round. */
export interface Slot { round: number, id: string }

/**
 * The order windows run in: every contender once per round (A B C, then B C A, then C A B …).
 * Interleaving spreads slow drift of the machine (other load, thermal) over every contender, and
 * rotating the start evens out who runs first after a pause.
 */
export function interleave (ids: readonly string[], rounds: number): Slot[] {
  const slots: Slot[] = []
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < ids.length; i++) slots.push({ round, id: ids[(i + round) % ids.length]! })
  }
  return slots
}

/** The median (mean of the middle two for an even count); NaN for no values. */
export function median (values: readonly number[]): number {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  if (finite.length === 0) return Number.NaN
  const mid = finite.length >> 1
  return finite.length % 2 === 1 ? finite[mid]! : (finite[mid - 1]! + finite[mid]!) / 2
}

/** a ÷ b, or NaN when either is missing or b is 0. */
export function ratio (a: number, b: number): number {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : Number.NaN
}

/** A goal on a figure: a ratio against a peer (`against`) or the contender's own median. */
export interface Goal {
  /** Contender id the goal is about. */
  contender: string
  /** Peer id: the goal is on contender ÷ peer of the primary metric. */
  against?: string
  /** Metric key when the goal is on an absolute figure (e.g. CPU µs per delivery). */
  metric?: string
  atLeast?: number
  atMost?: number
  /** How the goal reads, e.g. "full edge stack ≥ 0.75× bare Fastify". */
  text: string
}

export interface GoalOutcome {
  goal: Goal
  value: number
  met: boolean
  /** How far short, as a fraction of the goal (0.2 = 20 % short); 0 when met, NaN when not measured. */
  shortBy: number
  /**
   * For a ratio goal: the same ratio from server CPU per operation (peer's ÷ contender's), a cross-check that
   * holds up better than throughput when other work competes for the machine.
   */
  byCpu?: number
}

/** Checks `value` against the goal's bound(s). */
export function checkGoal (goal: Goal, value: number): GoalOutcome {
  if (!Number.isFinite(value)) return { goal, value, met: false, shortBy: Number.NaN }
  if (goal.atLeast !== undefined && value < goal.atLeast) return { goal, value, met: false, shortBy: (goal.atLeast - value) / goal.atLeast }
  if (goal.atMost !== undefined && value > goal.atMost) return { goal, value, met: false, shortBy: (value - goal.atMost) / goal.atMost }
  return { goal, value, met: true, shortBy: 0 }
}
