// The harness side of a benchmarked server: a separate Node process (pinned to the server CPU with
// `taskset` when pinning is on) that listens on 127.0.0.1 with a free port. Reads the process's own
// CPU accounting from /proc; spawned, stopped and reaped as every bench child is (bench-child.ts).

import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { LISTENING_LINE, type ServerOptions } from './serve.ts'
import { spawnBenchChild } from './bench-child.ts'
import { ensureDevCertificate } from '../../core/dev-cert.ts'

export const BENCH_DIR = resolve(import.meta.dirname, '..')
const START_TIMEOUT_MS = 30_000

export interface ServerProcess {
  pid: number
  port: number
  /** CPU seconds (user + system) the process has used, from /proc; NaN where /proc is absent. */
  cpuSeconds: () => number
  /** The tail of what it printed. */
  output: () => string
  stop: () => Promise<void>
}

export interface StartOptions {
  /** File under bench/servers/, e.g. `keel.ts`. */
  script: string
  options?: ServerOptions
  /** CPU to pin the process to (needs taskset). */
  cpu?: number
}

let clockTicks: number | undefined
function ticksPerSecond (): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
    } catch {
      clockTicks = 100
    }
  }
  return clockTicks
}

/** utime + stime of a process, in seconds (fields 14 and 15 of /proc/PID/stat, after the command name). */
export function processCpuSeconds (pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond()
  } catch {
    return Number.NaN
  }
}

/** Whether `taskset` can be run here. */
export function hasTaskset (): boolean {
  try {
    execFileSync('taskset', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

const certificates = new Map<string, Promise<{ certFile: string, keyFile: string }>>()
/** One self-signed certificate per run, shared by every TLS server of it. */
export function benchCertificate (workDir: string): Promise<{ certFile: string, keyFile: string }> {
  let pair = certificates.get(workDir)
  if (pair === undefined) {
    pair = ensureDevCertificate(`${workDir}/certs`)
    certificates.set(workDir, pair)
  }
  return pair
}

/** Starts `bench/servers/<script>` and resolves once it announced its port. */
export async function startServer (opts: StartOptions): Promise<ServerProcess> {
  const server = spawnBenchChild([resolve(BENCH_DIR, 'servers', opts.script), JSON.stringify(opts.options ?? {})], { cpu: opts.cpu })
  const { child, output } = server

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => fail(`${opts.script} did not listen within ${START_TIMEOUT_MS / 1000} s`), START_TIMEOUT_MS)
    const onExit = (code: number | null): void => fail(`${opts.script} exited (code ${code}) before listening`)
    const settle = (): void => {
      clearTimeout(timer)
      child.stdout!.off('data', check)
      child.off('exit', onExit)
    }
    function fail (message: string): void {
      settle()
      child.kill('SIGKILL')
      reject(new Error(`${message}; its output:\n${output().trim()}`))
    }
    function check (): void {
      const m = new RegExp(`^${LISTENING_LINE} (\\d+)$`, 'm').exec(output())
      if (m === null) return
      settle()
      resolve(Number(m[1]))
    }
    child.stdout!.on('data', check)
    child.once('exit', onExit)
  })

  const pid = child.pid!
  return { pid, port, cpuSeconds: () => processCpuSeconds(pid), output, stop: server.stop }
}
