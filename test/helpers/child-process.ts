// Stopping a server a test started as a child process (redis-server, postgres): ask with a signal,
// force with SIGKILL after a grace period, and resolve once it has exited.

import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'

/** Whether the child is still running (neither exited nor killed by a signal). */
export function isRunning (child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null
}

/** Sends `signal`, then SIGKILL if the child is still running after `graceMs`; resolves when it has exited. */
export async function stopChild (child: ChildProcess | undefined, signal: NodeJS.Signals, graceMs = 0): Promise<void> {
  if (child === undefined || !isRunning(child)) return
  const exited = once(child, 'exit')
  child.kill(signal)
  const timer = signal === 'SIGKILL' ? undefined : setTimeout(() => child.kill('SIGKILL'), graceMs)
  await exited
  clearTimeout(timer)
}
