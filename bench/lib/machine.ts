// The facts a benchmark figure means nothing without: CPU, cores, memory, Node, the versions of every
// framework and load generator measured, how server and load were pinned, and how busy the machine was.

import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os'
import { join, resolve } from 'node:path'
import { findH2load } from './load.ts'
import { BENCH_DIR, hasTaskset } from './server-process.ts'

const ROOT = resolve(BENCH_DIR, '..')

/** Packages whose versions go beside the figures (peers, Keel's edge plugins, load generators). */
const PACKAGES = [
  'fastify', 'helmet', '@fastify/cors', '@fastify/compress', '@fastify/rate-limit',
  '@fastify/jwt', 'fast-jwt', '@fastify/websocket', 'ws', 'undici', 'express', 'cors', 'compression', 'express-rate-limit',
  'jsonwebtoken', 'socket.io', 'autocannon'
]

export interface Machine {
  cpuModel: string
  cores: number
  memoryGiB: number
  os: string
  node: string
  /** 1-minute load average when the run started: above ~0.5 on an idle box, other work competed. */
  loadAverage: number
  pinning?: { server: number, load: number }
  pinningNote: string
  versions: Record<string, string>
  h2load: string
}

function packageVersion (name: string): string | undefined {
  // The bench workspace's own packages sit in bench/node_modules when npm did not hoist them to the
  // root; fast-jwt sits under @fastify/jwt in the same case.
  const places = [join(BENCH_DIR, 'node_modules', name), join(ROOT, 'node_modules', name), join(ROOT, 'node_modules/@fastify/jwt/node_modules', name)]
  for (const dir of places) {
    const file = join(dir, 'package.json')
    if (existsSync(file)) return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version
  }
  return undefined
}

function h2loadVersion (): string {
  const path = findH2load()
  if (path === null) return 'not installed'
  try {
    return execFileSync(path, ['--version'], { encoding: 'utf8' }).trim()
  } catch {
    return 'unknown version'
  }
}

/** Reads the machine; call before pinning this process (pinning changes the parallelism it sees). */
export function readMachine (): Machine {
  const cores = availableParallelism()
  const canPin = cores >= 2 && hasTaskset()
  const versions: Record<string, string> = {}
  for (const name of PACKAGES) {
    const version = packageVersion(name)
    if (version !== undefined) versions[name] = version
  }
  return {
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown CPU',
    cores,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: `Linux ${release()}`,
    node: process.version,
    loadAverage: loadavg()[0]!,
    pinning: canPin ? { server: 0, load: 1 } : undefined,
    pinningNote: canPin
      ? 'servers pinned to CPU 0, load generator (this process, h2load) to CPU 1 with taskset'
      : `not pinned (${cores < 2 ? 'fewer than 2 CPUs' : 'taskset not found'}): server and load share the CPUs`,
    versions,
    h2load: h2loadVersion()
  }
}

/** Pins this process — every thread — to `cpu`; the in-process load generator (autocannon) runs here. */
export function pinHarness (cpu: number): void {
  execFileSync('taskset', ['-a', '-cp', String(cpu), String(process.pid)], { stdio: 'ignore' })
}
