// A child process of the benchmark (a server, a load generator): pinned to one CPU with `taskset` when
// asked, the tail of its output kept to explain a failure, stopped with SIGTERM (SIGKILL if it
// lingers), and killed when the harness exits, however it exits.

import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process'
import { once } from 'node:events'

const STOP_TIMEOUT_MS = 5000
// Enough of a process's output to explain why it failed, without holding everything it ever printed.
const OUTPUT_KEPT = 16 * 1024

export interface BenchChild {
  child: ChildProcess
  /** The tail of what it printed on stdout and stderr. */
  output: () => string
  /** Whether it has exited. */
  exited: () => boolean
  stop: () => Promise<void>
}

export interface BenchChildOptions {
  /** CPU to pin it to (needs taskset). */
  cpu?: number
  /** An IPC channel as a fourth stdio entry, with this serialization. */
  ipc?: 'json' | 'advanced'
}

const live = new Set<ChildProcess>()
process.once('exit', () => { for (const child of live) child.kill('SIGKILL') })

/** Runs `node <args…>` with this process's Node, its environment reduced to PATH. */
export function spawnBenchChild (args: readonly string[], options: BenchChildOptions = {}): BenchChild {
  const [command, argv] = options.cpu === undefined
    ? [process.execPath, args]
    : ['taskset', ['-c', String(options.cpu), process.execPath, ...args]]
  const stdio: StdioOptions = options.ipc === undefined ? ['ignore', 'pipe', 'pipe'] : ['ignore', 'pipe', 'pipe', 'ipc']
  const child = spawn(command, argv, { stdio, serialization: options.ipc, env: { PATH: process.env.PATH } })
  live.add(child)
  let output = ''
  const keep = (chunk: Buffer): void => { output = (output + chunk.toString()).slice(-OUTPUT_KEPT) }
  child.stdout!.on('data', keep)
  child.stderr!.on('data', keep)
  const exit = once(child, 'exit')
  exit.then(() => live.delete(child), () => {})
  const exited = (): boolean => child.exitCode !== null || child.signalCode !== null
  return {
    child,
    output: () => output,
    exited,
    stop: async () => {
      if (exited()) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
      await exit
      clearTimeout(timer)
    }
  }
}
