// The harness side of the WebSocket load generator (bench/lib/ws-load-process.ts): starts it as its own
// process, pinned to the load CPU when pinning is on, sends it one command at a time over IPC and
// waits, within a deadline, for its answer. Killed when the harness exits, however it exits.

import { resolve } from 'node:path'
import { spawnBenchChild } from './bench-child.ts'
import type { WsTransport } from './ws-dialers.ts'

/** Keel's JSON envelope protocol over `ws` (Keel, the raw ws peer), or Socket.IO. */
export type Protocol = 'envelope' | 'socketio'

/**
 * Where and how the load reaches the server: the URL, and for the envelope protocol the transport
 * (bench/lib/ws-dialers.ts; ws:// when absent) with the certificate to trust over TLS.
 */
export interface WsEndpoint { protocol: Protocol, url: string, transport?: WsTransport, caFile?: string }

export type LoadCommand =
  | { type: 'setup', subscribers: number, echoers: number } & WsEndpoint
  | { type: 'echo', seconds: number }
  | { type: 'fanout', seconds: number, inFlight: number }
  | { type: 'open-idle', target: number } & WsEndpoint
  | { type: 'close-idle' }

/** One window's figures as the load generator saw them. */
export interface WindowFigures {
  operations: number
  seconds: number
  p50Ms: number
  p99Ms: number
  problems: string[]
}

export type LoadReply = { type: 'done' } | { type: 'figures', figures: WindowFigures } | { type: 'error', message: string }

export interface WsLoad {
  /** Runs one command; rejects with the generator's error, or when it has not answered within `timeoutMs`. */
  run: (command: LoadCommand, timeoutMs: number) => Promise<LoadReply>
  /** Runs a command that answers with figures. */
  figures: (command: LoadCommand, timeoutMs: number) => Promise<WindowFigures>
  stop: () => Promise<void>
}

const SCRIPT = resolve(import.meta.dirname, 'ws-load-process.ts')

export function startWsLoad (cpu?: number): WsLoad {
  // `advanced` serialization: figures may be NaN (nothing measured), which JSON would turn into null.
  const { child, output, exited, stop } = spawnBenchChild([SCRIPT], { cpu, ipc: 'advanced' })

  async function run (cmd: LoadCommand, timeoutMs: number): Promise<LoadReply> {
    if (exited()) throw new Error(`the WebSocket load generator has exited; its output:\n${output().trim()}`)
    return await new Promise<LoadReply>((resolve, reject) => {
      const settle = (): void => {
        clearTimeout(timer)
        child.off('message', onReply)
        child.off('exit', onExit)
      }
      const timer = setTimeout(() => {
        settle()
        reject(new Error(`the WebSocket load generator did not finish "${cmd.type}" within ${timeoutMs / 1000} s`))
      }, timeoutMs)
      function onReply (reply: LoadReply): void {
        settle()
        if (reply.type === 'error') reject(new Error(`WebSocket load "${cmd.type}": ${reply.message}`))
        else resolve(reply)
      }
      function onExit (code: number | null): void {
        settle()
        reject(new Error(`the WebSocket load generator exited (code ${code}) during "${cmd.type}"; its output:\n${output().trim()}`))
      }
      child.on('message', onReply)
      child.once('exit', onExit)
      child.send(cmd)
    })
  }

  return {
    run,
    figures: async (cmd, timeoutMs) => {
      const reply = await run(cmd, timeoutMs)
      if (reply.type !== 'figures') throw new Error(`the WebSocket load generator answered "${reply.type}" to "${cmd.type}"`)
      return reply.figures
    },
    stop
  }
}
