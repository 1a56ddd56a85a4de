// What one reliability run of `npm run soak` is: a bounded punishment of a real server process on
// loopback that ends in pass/fail and a few figures. bench/soak.ts runs every file of bench/soak/runs/
// in `number` order; the tap suite runs the same code with `quick: true` (small counts) under bench/test/soak/.

export interface SoakContext {
  /** Small counts and short windows: the tap subset that keeps regressions out of CI. */
  quick: boolean
  /** A scratch directory for this run (certificates, logs). */
  workDir: string
  /** Progress lines (printed by the runner, ignored by tests). */
  log: (line: string) => void
}

export interface SoakOutcome {
  /** Nothing failed (true for a skipped run too). */
  pass: boolean
  /** Why the run did not run here: what it punishes is absent from this app (a removed example). Not a failure. */
  skipped?: string
  /** What was measured, in the order printed: `[label, value]`. */
  figures: Array<[label: string, value: string]>
  /** Why it failed (empty when it passed). */
  failures: string[]
}

export interface SoakRun {
  /** Its number among the reliability runs (1–6): the order `npm run soak` runs them in. */
  number: number
  /** CLI name: `npm run soak -- <name>`. */
  name: string
  title: string
  run: (ctx: SoakContext) => Promise<SoakOutcome>
}
