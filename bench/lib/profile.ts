// Reads a V8 CPU profile (`node --cpu-prof` format) into what a plugin owner needs: where the busy time
// went, by owner (an npm package, a project file, a Node internal) and by function. Per owner:
// - attributed: its own code plus the Node/native work it called directly (a hash, a header write),
//   i.e. each sample is charged to the innermost package or project frame on its stack. This is the
//   figure to read: Fastify hooks continue the request inside their callbacks, so "inclusive" time of a
//   hook also holds everything after it.
// - inclusive: time with the owner anywhere on the stack.
// Idle time and the profiler's own frames are left out: percentages are of the time the process was busy.

import { relative } from 'node:path'
import { fileURLToPath } from 'node:url'

interface CallFrame { functionName: string, url: string, lineNumber: number }
interface ProfileNode { id: number, callFrame: CallFrame, children?: number[] }
export interface CpuProfile { nodes: ProfileNode[], samples: number[], timeDeltas: number[] }

export interface Cost {
  name: string
  selfMs: number
  selfPct: number
  attributedMs: number
  attributedPct: number
  inclusiveMs: number
  inclusivePct: number
}
type Times = Record<'self' | 'attributed' | 'inclusive', number>
export interface ProfileSummary { busyMs: number, owners: Cost[], functions: Cost[] }

/** Who a frame belongs to: `@fastify/helmet`, `edge/caching.ts`, `node:_http_outgoing`, `(gc)`… */
export function ownerOf (frame: CallFrame, root: string): string {
  const { url, functionName } = frame
  if (url === '') {
    if (functionName === '(garbage collector)') return '(gc)'
    if (functionName === '(program)' || functionName === '(idle)' || functionName === '(root)') return functionName
    return '(native)'
  }
  if (url.startsWith('node:')) return url.startsWith('node:internal/') ? `node:${url.slice('node:internal/'.length).split('/')[0]}` : url
  const path = url.startsWith('file:') ? fileURLToPath(url) : url
  const modules = path.lastIndexOf('/node_modules/')
  if (modules !== -1) {
    const parts = path.slice(modules + '/node_modules/'.length).split('/')
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!
  }
  return relative(root, path)
}

/** Code someone can change: a package or a project file, not Node's internals, native code or V8's bookkeeping. */
const isCodeOwner = (owner: string): boolean => !owner.startsWith('node:') && !owner.startsWith('(') && !owner.startsWith('wasm:')

function costs (times: Map<string, Times>, busy: number, by: keyof Times): Cost[] {
  const pct = (us: number): number => 100 * us / (busy || 1)
  return [...times]
    .map(([name, t]) => ({
      name,
      selfMs: t.self / 1000,
      selfPct: pct(t.self),
      attributedMs: t.attributed / 1000,
      attributedPct: pct(t.attributed),
      inclusiveMs: t.inclusive / 1000,
      inclusivePct: pct(t.inclusive)
    }))
    .sort((a, b) => b[`${by}Ms`] - a[`${by}Ms`])
}

/** Busy time per owner (largest attributed first) and per function (`name owner:line`, largest self first). */
export function summarizeProfile (profile: CpuProfile, root: string): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const child of n.children ?? []) parent.set(child, n.id)
  const owners = new Map<string, Times>()
  const functions = new Map<string, Times>()
  const charge = (map: Map<string, Times>, key: string, field: keyof Times, delta: number): void => {
    const t = map.get(key) ?? { self: 0, attributed: 0, inclusive: 0 }
    t[field] += delta
    map.set(key, t)
  }
  let busy = 0
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0
    const leaf = byId.get(id)
    if (leaf === undefined || leaf.callFrame.functionName === '(idle)') return
    const stack: Array<{ owner: string, fn: string }> = []
    for (let node: ProfileNode | undefined = leaf; node !== undefined && node.callFrame.functionName !== '(root)'; node = byId.get(parent.get(node.id) ?? -1)) {
      const owner = ownerOf(node.callFrame, root)
      stack.push({ owner, fn: `${node.callFrame.functionName || '(anonymous)'} ${owner}:${node.callFrame.lineNumber + 1}` })
    }
    // The profiler serializing its own profile is not the server's work.
    if (stack.some((f) => f.owner === 'node:inspector')) return
    busy += delta
    charge(owners, stack[0]!.owner, 'self', delta)
    charge(functions, stack[0]!.fn, 'self', delta)
    charge(owners, stack.find((f) => isCodeOwner(f.owner))?.owner ?? stack[0]!.owner, 'attributed', delta)
    // Recursion and nested calls within one owner count once per sample.
    for (const owner of new Set(stack.map((f) => f.owner))) charge(owners, owner, 'inclusive', delta)
    for (const fn of new Set(stack.map((f) => f.fn))) charge(functions, fn, 'inclusive', delta)
  })
  return { busyMs: busy / 1000, owners: costs(owners, busy, 'attributed'), functions: costs(functions, busy, 'self') }
}
