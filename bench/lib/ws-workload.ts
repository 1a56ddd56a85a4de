// What the WebSocket scenarios (5 and 6) have in common on both sides of the wire: the room, the
// bench-only memory probe every WebSocket server answers, and the tokens the load generator presents.
// Servers (bench/servers/ws-*.ts, socketio.ts, keel.ts) and the load generator import it.

import { createHmac } from 'node:crypto'
import v8 from 'node:v8'
import vm from 'node:vm'
import jwt from 'jsonwebtoken'
import { BENCH_JWT_SECRET } from './workload.ts'

/** The room every subscriber joins and the publisher publishes to. Plain name: Keel's open-room policy. */
export const BENCH_ROOM = 'bench'
/** The WebSocket endpoint of Keel and of the raw `ws` peer (Socket.IO uses its own `/socket.io/`). */
export const WS_PATH = '/ws'
/**
 * Bench-only: the server's memory and open WebSocket connections. As is, it only counts (cheap enough
 * to poll); `?gc=full` forces a full GC first, `?gc=reduce` a memory-reducing one (V8's last resort:
 * it also compacts and shrinks the young generation).
 */
export const MEMORY_PATH = '/bench/memory'
export type GcMode = 'none' | 'full' | 'reduce'
export const memoryPath = (gc: GcMode): string => gc === 'none' ? MEMORY_PATH : `${MEMORY_PATH}?gc=${gc}`

/** `process.memoryUsage()` after a full GC, and the WebSocket connections the server holds open. */
export interface MemoryReport extends NodeJS.MemoryUsage {
  connections: number
}

interface GcOptions { type: 'major', execution: 'sync', flavor: 'regular' | 'last-resort' }
let collect: ((options: GcOptions) => void) | undefined

function exposeGc (): (options: GcOptions) => void {
  // Set at run time: the harness starts servers without node flags. Only bench servers call this.
  v8.setFlagsFromString('--expose-gc')
  return vm.runInNewContext('gc') as (options: GcOptions) => void
}

/** What a server answers on MEMORY_PATH (`url` is the request's, with the GC mode in its query). */
export function memoryReport (connections: number, url: string | undefined): MemoryReport {
  const gc = url === memoryPath('reduce') ? 'reduce' : url === memoryPath('full') ? 'full' : 'none'
  if (gc !== 'none') {
    collect ??= exposeGc()
    collect({ type: 'major', execution: 'sync', flavor: gc === 'reduce' ? 'last-resort' : 'regular' })
  }
  return { ...process.memoryUsage(), connections }
}

const TOKEN_LIFETIME_S = 2 * 3600
const base64url = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url')
const TOKEN_HEADER = base64url({ alg: 'HS256', typ: 'JWT' })

/**
 * A token every WebSocket contender accepts (HS256, the benchmark's shared secret), valid for the run.
 * Signed with one HMAC rather than jsonwebtoken (~10× its cost), since the load mints one per socket.
 */
export function benchWsToken (sub: string): string {
  const iat = Math.floor(Date.now() / 1000)
  const unsigned = `${TOKEN_HEADER}.${base64url({ sub, scope: 'items:read', iat, exp: iat + TOKEN_LIFETIME_S })}`
  return `${unsigned}.${createHmac('sha256', BENCH_JWT_SECRET).update(unsigned).digest('base64url')}`
}

/** Verifies a token the way the peers do (jsonwebtoken, HS256 only); undefined when it is not valid. */
export function verifyBenchToken (token: string | undefined): { sub: string } | undefined {
  if (token === undefined) return undefined
  try {
    const claims = jwt.verify(token, BENCH_JWT_SECRET, { algorithms: ['HS256'] })
    return typeof claims === 'object' && typeof claims.sub === 'string' ? { sub: claims.sub } : undefined
  } catch {
    return undefined
  }
}
