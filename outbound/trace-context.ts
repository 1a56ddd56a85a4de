// W3C Trace Context for outbound calls: continue the inbound request's trace (same trace id and
// flags, a fresh parent id per outbound attempt), or start a trace when the inbound request carried
// no valid `traceparent`. Keel records no spans itself, so a trace it starts is not marked sampled.
// An inbound `tracestate` is client input: it travels on only when well-formed and within the
// W3C limits (32 members, 512 characters), so a caller cannot make Keel relay kilobytes upstream.

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

// key = simple-key / tenant@system; value = up to 256 printable ASCII characters except `,` and `=`,
// not ending in a space. Anchored per member, so the work is linear in the member's length.
const TRACESTATE_MEMBER = /^(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/
const TRACESTATE_MAX_MEMBERS = 32
const TRACESTATE_MAX_CHARS = 512
// When the list must shrink, members longer than this go first (then members from the right).
const TRACESTATE_LARGE_MEMBER = 128

/**
 * The inbound `tracestate` to forward: its members, normalised, trimmed to 512 characters the way
 * the W3C recommends; undefined when absent, empty or invalid (malformed or repeated keys, more
 * than 32 members), since an invalid list must not be propagated.
 */
export function boundTracestate (header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined
  const text = typeof header === 'string' ? header : header.join(',')
  const members: string[] = []
  const keys = new Set<string>()
  for (const raw of text.split(',')) {
    const member = raw.trim()
    if (member === '') continue
    if (members.length === TRACESTATE_MAX_MEMBERS || !TRACESTATE_MEMBER.test(member)) return undefined
    const key = member.slice(0, member.indexOf('='))
    if (keys.has(key)) return undefined
    keys.add(key)
    members.push(member)
  }
  let length = members.reduce((sum, m) => sum + m.length, 0) + Math.max(0, members.length - 1)
  while (length > TRACESTATE_MAX_CHARS) {
    const large = members.findLastIndex((m) => m.length > TRACESTATE_LARGE_MEMBER)
    const [removed] = members.splice(large === -1 ? members.length - 1 : large, 1)
    length -= removed!.length + 1
  }
  return members.length === 0 ? undefined : members.join(',')
}
