// `npm run bench -- [names…] [--profile] [--no-write] [--list]`, with window lengths from the
// environment (BENCH_SECONDS, BENCH_ROUNDS, BENCH_WARMUP_SECONDS) so a quick development run is
// `BENCH_SECONDS=1 BENCH_ROUNDS=1 npm run bench -- edge`. Every bad input is one clear message.

export interface BenchOptions {
  /** Scenario names to run, in the registry's order; all when none were named. */
  scenarios: string[]
  seconds: number
  rounds: number
  warmupSeconds: number
  /** Profile Keel even when its goals are met. */
  profile: boolean
  /** Update BENCHMARKS.md (off with --no-write). */
  write: boolean
  /** Print the scenarios and exit. */
  list: boolean
}

// 3 rounds × 5 s per contender keeps the whole run under 10 minutes on 2 cores (see README).
export const DEFAULTS = { seconds: 5, rounds: 3, warmupSeconds: 2 }

export class BenchUsageError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'BenchUsageError'
  }
}

function whole (env: Record<string, string | undefined>, name: string, min: number, max: number, fallback: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new BenchUsageError(`${name}=${JSON.stringify(raw)} is not valid; expected a whole number ${min}–${max}`)
  }
  return value
}

/**
 * Reads the CLI arguments and environment. `groups` maps a name to the scenarios it stands for
 * (a scenario's own name, or a family such as `compress` → its gzip and br parts).
 */
export function parseOptions (argv: readonly string[], env: Record<string, string | undefined>, groups: ReadonlyMap<string, string[]>): BenchOptions {
  const options: BenchOptions = {
    scenarios: [],
    seconds: whole(env, 'BENCH_SECONDS', 1, 60, DEFAULTS.seconds),
    rounds: whole(env, 'BENCH_ROUNDS', 1, 10, DEFAULTS.rounds),
    warmupSeconds: whole(env, 'BENCH_WARMUP_SECONDS', 0, 30, DEFAULTS.warmupSeconds),
    profile: false,
    write: true,
    list: false
  }
  const named = new Set<string>()
  for (const arg of argv) {
    if (arg === '--profile') options.profile = true
    else if (arg === '--no-write') options.write = false
    else if (arg === '--list') options.list = true
    else if (arg.startsWith('-')) throw new BenchUsageError(`unknown option ${arg}; expected --profile, --no-write or --list`)
    else {
      const members = groups.get(arg)
      if (members === undefined) throw new BenchUsageError(`unknown scenario "${arg}"; expected one of: ${[...groups.keys()].join(', ')}`)
      for (const m of members) named.add(m)
    }
  }
  const all = [...new Set([...groups.values()].flat())]
  options.scenarios = named.size === 0 ? all : all.filter((name) => named.has(name))
  return options
}
