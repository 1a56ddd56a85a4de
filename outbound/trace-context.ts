// W3C Trace Context for outbound calls: continue the inbound request's trace (same trace id and
// flags, a fresh parent id per outbound attempt), or start a trace when the inbound request carried
// no valid `traceparent`. Keel records no spans itself, so a trace it starts is not marked sampled.

import { randomFillSync } from 'node:crypto'

export interface TraceParent { traceId: string, flags: string }

// version-traceid-parentid-flags, lowercase hex; version ff is invalid and all-zero ids are invalid.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/
const ZERO_TRACE = '0'.repeat(32)
const ZERO_SPAN = '0'.repeat(16)

/** The inbound header's trace, or undefined when it is absent or malformed (then a new trace starts). */
export function parseTraceparent (header: string | string[] | undefined): TraceParent | undefined {
  if (typeof header !== 'string') return undefined
  const m = TRACEPARENT.exec(header.trim())
  if (m === null) return undefined
  const [, version, traceId, parentId, flags, rest] = m as unknown as [string, string, string, string, string, string | undefined]
  // Version 00 has exactly four fields; later versions may append more, which we may ignore.
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined
  if (traceId === ZERO_TRACE || parentId === ZERO_SPAN) return undefined
  return { traceId, flags }
}

// Ids come from a pool of random bytes refilled 4 KiB at a time (as Node does for randomUUID): one
// syscall per ~300 outbound calls instead of one per id.
const entropy = Buffer.alloc(4096)
let used = entropy.length
function randomHex (bytes: number): string {
  if (used + bytes > entropy.length) {
    randomFillSync(entropy)
    used = 0
  }
  used += bytes
  return entropy.toString('hex', used - bytes, used)
}

/** A new trace (random id, not sampled), for calls made outside any traced request. */
export function newTrace (): TraceParent {
  return { traceId: randomHex(16), flags: '00' }
}

/** The `traceparent` of one outbound attempt: the trace continues, the attempt is a new span. */
export function childTraceparent (trace: TraceParent): string {
  return `00-${trace.traceId}-${randomHex(8)}-${trace.flags}`
}
