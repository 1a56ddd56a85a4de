// The registry `npm run bench` runs, in the order of the scenarios' numbers. A new scenario is a `Scenario` object
// (bench/lib/scenario.ts) added here.
// Scenario 7 measures the resilient outbound client: bench/outbound.ts, when present, either exports
// `scenario` (run like the others) or is a script whose printed output is included as is.

import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { once } from 'node:events'
import { cpus } from 'node:os'
import { resolve } from 'node:path'
import { BENCH_DIR } from '../lib/server-process.ts'
import type { RunSettings, Scenario } from '../lib/scenario.ts'
import { httpScenarios } from './http.ts'
import { wsScenarios } from './ws.ts'

const OUTBOUND_FILE = resolve(BENCH_DIR, 'outbound.ts')
// A script scenario gets this long before it is stopped (its windows are bounded by --seconds × --rounds).
const SCRIPT_TIMEOUT_MS = 240_000

const outboundBase = {
  name: 'outbound',
  number: '7',
  title: 'Outbound: resilient client vs raw undici Pool vs fetch against one local upstream',
  contenders: [],
  baselines: [],
  metrics: [],
  goals: [],
  references: ['goals: resilient client ≥ 0.9× raw undici Pool requests/s; breaker-open rejection p99 < 1 ms']
} satisfies Omit<Scenario, 'describe'>

/** Runs bench/outbound.ts as a script with the run's window settings; its output becomes the section's notes. */
async function runOutboundScript (settings: RunSettings): Promise<string[]> {
  const script = [process.execPath, OUTBOUND_FILE, '--seconds', String(settings.seconds), '--rounds', String(settings.rounds)]
  // The harness is pinned to the load CPU; the script places its client and upstream itself, on every CPU.
  const [command, args] = settings.pinning === undefined
    ? [script[0]!, script.slice(1)]
    : ['taskset', ['-c', `0-${cpus().length - 1}`, ...script]]
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (c: Buffer) => { output += c.toString() })
  child.stderr.on('data', (c: Buffer) => { output += c.toString() })
  const timer = setTimeout(() => child.kill('SIGKILL'), SCRIPT_TIMEOUT_MS)
  const [code] = await once(child, 'exit') as [number | null]
  clearTimeout(timer)
  const verdict = code === 0 ? 'Output of `node bench/outbound.ts`:' : `**\`node bench/outbound.ts\` exited with ${code}**; its output:`
  return [verdict, '', '```text', output.trimEnd(), '```']
}

async function outboundScenario (): Promise<Scenario> {
  if (!existsSync(OUTBOUND_FILE)) {
    return { ...outboundBase, describe: [], skip: () => 'bench/outbound.ts is missing' }
  }
  if (/export\s+const\s+scenario\b/.test(readFileSync(OUTBOUND_FILE, 'utf8'))) {
    return (await import(OUTBOUND_FILE) as { scenario: Scenario }).scenario
  }
  return {
    ...outboundBase,
    describe: ['Measured by bench/outbound.ts, run as a script with `--seconds` and `--rounds` from this run (its own warm-up and placement: not pinned).'],
    followUp: async (_result, settings) => runOutboundScript(settings)
  }
}

export async function loadScenarios (): Promise<Scenario[]> {
  return [...httpScenarios, ...wsScenarios, await outboundScenario()]
}

/** CLI names: each scenario's own, plus each family (`compress` → compress-gzip, compress-br). */
export function scenarioGroups (scenarios: readonly Scenario[]): Map<string, string[]> {
  const groups = new Map<string, string[]>()
  for (const s of scenarios) {
    groups.set(s.name, [s.name])
    const family = s.name.split('-')[0]!
    if (family !== s.name) groups.set(family, [...(groups.get(family) ?? []), s.name])
  }
  return groups
}
