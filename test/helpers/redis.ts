// A real Redis for tests: `startRedis(t)` runs `redis-server` on a free loopback port (no persistence)
// and kills it when the test ends, or uses REDIS_URL when the binary is missing. Tests that need Redis
// declare `{ skip: redisSkipReason() }` so a machine without either skips them with a printed reason.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { connect } from 'node:net'
import { once } from 'node:events'
import { freePort } from './ports.ts'
import { stopChild } from './child-process.ts'

interface Teardown { teardown: (fn: () => unknown) => void }

export interface TestRedis {
  url: string
  /** False for an external REDIS_URL, which tests cannot stop. */
  controllable: boolean
  /** Kills the server (as a crash would); clients see refused connections from then on. */
  stop: () => Promise<void>
  /** Starts it again on the same port, empty. */
  restart: () => Promise<void>
}

const READY_TIMEOUT_MS = 10_000

let binaryFound: boolean | undefined
function hasRedisServer (): boolean {
  binaryFound ??= spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0
  return binaryFound
}

/**
 * Why Redis tests cannot run here, or false when they can. `control`: the test stops and restarts
 * Redis, which needs the binary (an external REDIS_URL cannot be stopped).
 */
export function redisSkipReason (opts: { control?: boolean } = {}): string | false {
  if (hasRedisServer()) return false
  if (opts.control === true) return 'needs redis-server on PATH to stop and restart Redis (install redis-server)'
  if (process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '') return false
  return 'needs redis-server on PATH or REDIS_URL (install redis-server)'
}

/** Resolves once the server answers PING with PONG; rejects on exit or after the deadline. */
async function waitForPong (port: number, proc: ChildProcess, deadline: number): Promise<void> {
  let lastError = ''
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`redis-server exited (${proc.exitCode ?? proc.signalCode})`)
    try {
      const socket = connect(port, '127.0.0.1')
      socket.setTimeout(Math.max(1, deadline - Date.now()), () => socket.destroy(new Error('no answer to PING')))
      await once(socket, 'connect')
      socket.write('PING\r\n')
      const [data] = await once(socket, 'data') as [Buffer]
      socket.destroy()
      if (data.toString().startsWith('+PONG')) return
      lastError = data.toString().trim()
    } catch (err) {
      lastError = (err as Error).message
      // Not listening yet: wait for the server's next log line rather than spinning.
      await Promise.race([once(proc.stdout!, 'data'), once(proc, 'exit'), new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.min(200, deadline - Date.now()))))])
    }
  }
  throw new Error(`redis-server on port ${port} did not answer PING within ${READY_TIMEOUT_MS} ms: ${lastError}`)
}

/** A Redis for this test: a fresh `redis-server` when the binary exists, else REDIS_URL (shared, not controllable). */
export async function startRedis (t: Teardown): Promise<TestRedis> {
  if (!hasRedisServer()) {
    const url = process.env.REDIS_URL
    if (url === undefined || url === '') throw new Error('startRedis: no redis-server and no REDIS_URL; guard the test with redisSkipReason()')
    const external = async () => { throw new Error('cannot stop or restart an external REDIS_URL') }
    return { url, controllable: false, stop: external, restart: external }
  }

  const port = await freePort()
  let proc: ChildProcess | undefined
  const stop = async () => {
    const running = proc
    proc = undefined
    await stopChild(running, 'SIGKILL')
  }
  const start = async () => {
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout!.resume()
    child.stderr!.resume()
    proc = child
    await waitForPong(port, child, Date.now() + READY_TIMEOUT_MS)
  }
  t.teardown(stop)
  await start()
  return { url: `redis://127.0.0.1:${port}`, controllable: true, stop, restart: async () => { await stop(); await start() } }
}
