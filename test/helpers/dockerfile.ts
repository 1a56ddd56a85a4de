// Reads the Dockerfile and .dockerignore and replays the image's build without Docker: each stage is a
// directory, COPY copies from the build context (filtered as .dockerignore filters it) or from an
// earlier stage, RUN runs in /bin/sh there, and the last stage's ENV and CMD say how to start it.
// An instruction this replay does not understand is an error, so the Dockerfile cannot grow a step
// the test silently skips.

import { cpSync, mkdirSync, readFileSync, statSync } from 'node:fs'
import { basename, dirname, join, posix } from 'node:path'
import { spawn, execFileSync } from 'node:child_process'
import { once } from 'node:events'

export interface Instruction { keyword: string, args: string, line: number }

export interface Stage {
  name: string
  /** The base image reference, build arguments substituted. */
  from: string
  instructions: Instruction[]
}

export interface Dockerfile {
  /** Build arguments declared before the first FROM, with their defaults. */
  args: Record<string, string>
  stages: Stage[]
}

/** Splits a Dockerfile into instructions (continuation lines joined, comments dropped) grouped by stage. */
export function parseDockerfile (text: string): Dockerfile {
  const args: Record<string, string> = {}
  const stages: Stage[] = []
  let pending = ''
  let startLine = 0
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!
    if (pending === '' && /^\s*(#|$)/.test(raw)) continue
    if (pending !== '' && /^\s*#/.test(raw)) continue
    if (pending === '') startLine = i + 1
    if (raw.endsWith('\\')) { pending += raw.slice(0, -1) + ' '; continue }
    const full = (pending + raw).trim()
    pending = ''
    const [, keyword = '', rest = ''] = /^(\S+)\s*(.*)$/.exec(full) ?? []
    const instruction = { keyword: keyword.toUpperCase(), args: rest.trim(), line: startLine }
    if (instruction.keyword === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(substitute(instruction.args, args))
      if (m === null) throw new Error(`Dockerfile:${startLine}: cannot read FROM ${instruction.args}`)
      stages.push({ name: m[2] ?? String(stages.length), from: m[1]!, instructions: [] })
    } else if (stages.length === 0) {
      if (instruction.keyword !== 'ARG') throw new Error(`Dockerfile:${startLine}: ${instruction.keyword} before FROM`)
      Object.assign(args, keyValues(instruction.args))
    } else {
      stages.at(-1)!.instructions.push(instruction)
    }
  }
  return { args, stages }
}

function substitute (text: string, vars: Record<string, string>): string {
  return text.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, a: string | undefined, b: string | undefined) => vars[a ?? b ?? ''] ?? whole)
}

/** `KEY=value KEY2="two words"` (ENV, LABEL, ARG) as an object. */
export function keyValues (text: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const m of text.matchAll(/([\w.-]+)(?:=("(?:[^"\\]|\\.)*"|\S*))?/g)) {
    const value = m[2] ?? ''
    out[m[1]!] = value.startsWith('"') ? JSON.parse(value) as string : value
  }
  return out
}

/** An exec-form (JSON array) CMD or ENTRYPOINT; undefined for the shell form. */
export function execForm (args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined
  const parsed = JSON.parse(args) as unknown
  return Array.isArray(parsed) && parsed.every((a) => typeof a === 'string') ? parsed : undefined
}

// ---------------------------------------------------------------------------------------------------
// .dockerignore, with the builder's rules: `**` spans folders, `*` and `?` stay inside one, a pattern
// that matches a folder excludes all below it, `!` re-includes, and the last matching line wins.

export type IgnoreMatcher = (path: string) => boolean

export function parseDockerignore (text: string): IgnoreMatcher {
  const rules = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#')).map((line) => {
    const negate = line.startsWith('!')
    const pattern = posix.normalize((negate ? line.slice(1) : line).trim()).replace(/^\/+/, '').replace(/\/+$/, '')
    return { negate, regex: globToRegex(pattern) }
  })
  return (path) => {
    const parts = path.split('/')
    const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'))
    let ignored = false
    for (const rule of rules) {
      if (prefixes.some((p) => rule.regex.test(p))) ignored = !rule.negate
    }
    return ignored
  }
}

function globToRegex (pattern: string): RegExp {
  let source = ''
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!
    if (c === '*' && pattern[i + 1] === '*') {
      const slash = pattern[i + 2] === '/'
      source += slash ? '(?:.*/)?' : '.*'
      i += slash ? 2 : 1
    } else if (c === '*') source += '[^/]*'
    else if (c === '?') source += '[^/]'
    else source += c.replace(/[.+^${}()|[\]\\]/g, '\\$&')
  }
  return new RegExp(`^${source}$`)
}

// ---------------------------------------------------------------------------------------------------
// The replay.

export interface ReplayOptions {
  /** The build context (the repository root). */
  context: string
  /** Where the stages' file systems are laid out, one folder per stage. */
  out: string
  /** Environment for RUN steps on top of the stage's ENV (PATH, HOME, npm cache settings). */
  runEnv: Record<string, string | undefined>
  /** Bound on each RUN step. */
  runTimeoutMs: number
}

export interface RunFailure { line: number, command: string, code: number | null, output: string }

export interface Replayed {
  /** The last stage's root folder and its WORKDIR inside it. */
  root: string
  workdir: string
  env: Record<string, string>
  /** ENTRYPOINT + CMD of the last stage (exec form). */
  command: string[]
  user?: string
}

/** The files a fresh clone would hold (tracked, plus new files git does not ignore), minus .dockerignore. */
export function contextFiles (context: string): string[] {
  const listed = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], { cwd: context, encoding: 'utf8' })
  const ignoreFile = join(context, '.dockerignore')
  const ignored = parseDockerignore(readFileSync(ignoreFile, 'utf8'))
  return listed.split('\0').filter((f) => f !== '' && !ignored(f) && statOk(join(context, f)))
}

function statOk (path: string): boolean {
  try { return statSync(path).isFile() } catch { return false }
}

export async function replayDockerfile (file: Dockerfile, options: ReplayOptions): Promise<Replayed> {
  const included = new Set(contextFiles(options.context))
  const roots = new Map<string, string>()
  let last: Replayed | undefined
  for (const [index, stage] of file.stages.entries()) {
    const root = join(options.out, `stage-${index}`)
    mkdirSync(root, { recursive: true })
    roots.set(stage.name, root)
    const state: Replayed = { root, workdir: '/', env: {}, command: [] }
    let entrypoint: string[] = []
    let cmd: string[] = []
    for (const ins of stage.instructions) {
      const args = ['RUN', 'CMD', 'ENTRYPOINT'].includes(ins.keyword) ? ins.args : substitute(ins.args, { ...file.args, ...state.env })
      switch (ins.keyword) {
        case 'WORKDIR':
          state.workdir = posix.resolve(state.workdir, args)
          mkdirSync(join(root, state.workdir), { recursive: true })
          break
        case 'ENV': Object.assign(state.env, keyValues(args)); break
        case 'COPY': copy(args, ins.line, state, { context: options.context, included, roots }); break
        case 'RUN': await run(args, ins.line, join(root, state.workdir), { ...options.runEnv, ...state.env }, options.runTimeoutMs); break
        case 'CMD':
        case 'ENTRYPOINT': {
          const form = execForm(args)
          if (form === undefined) throw new Error(`Dockerfile:${ins.line}: ${ins.keyword} in shell form is not replayed`)
          if (ins.keyword === 'CMD') cmd = form; else entrypoint = form
          break
        }
        case 'USER': state.user = args; break
        // Metadata for the image, nothing to lay out on disk.
        case 'LABEL': case 'EXPOSE': case 'STOPSIGNAL': case 'VOLUME': case 'ARG': break
        default: throw new Error(`Dockerfile:${ins.line}: ${ins.keyword} is not replayed by this test`)
      }
    }
    state.command = [...entrypoint, ...cmd]
    last = state
  }
  if (last === undefined) throw new Error('Dockerfile has no stage')
  return last
}

interface CopySources { context: string, included: Set<string>, roots: Map<string, string> }

// Ownership (--chown) is not replayed: only root could, and what the test checks is what gets copied.
function copy (args: string, line: number, state: Replayed, from: CopySources): void {
  const words = args.split(/\s+/)
  const flags = words.filter((w) => w.startsWith('--'))
  const paths = words.filter((w) => !w.startsWith('--'))
  const stageFlag = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length)
  for (const flag of flags) {
    if (!/^--(from|chown)=/.test(flag)) throw new Error(`Dockerfile:${line}: COPY ${flag} is not replayed`)
  }
  if (paths.length < 2 || paths.some((p) => /[*?[]/.test(p))) throw new Error(`Dockerfile:${line}: COPY needs plain sources and a destination`)
  const destination = posix.resolve(state.workdir, paths.at(-1)!)
  const intoFolder = paths.at(-1)!.endsWith('/') || paths.length > 2
  for (const source of paths.slice(0, -1)) {
    const target = join(state.root, intoFolder ? posix.join(destination, basename(source)) : destination)
    mkdirSync(dirname(target), { recursive: true })
    if (stageFlag !== undefined) {
      const stageRoot = from.roots.get(stageFlag)
      if (stageRoot === undefined) throw new Error(`Dockerfile:${line}: no stage named ${stageFlag}`)
      cpSync(join(stageRoot, source), target, { recursive: true, verbatimSymlinks: true })
      continue
    }
    const relative = posix.normalize(source).replace(/^\.\/?/, '').replace(/\/$/, '')
    const files = [...from.included].filter((f) => f === relative || f.startsWith(`${relative}/`))
    if (files.length === 0) throw new Error(`Dockerfile:${line}: COPY ${source}: nothing in the build context`)
    for (const f of files) {
      const to = f === relative ? target : join(target, f.slice(relative.length + 1))
      mkdirSync(dirname(to), { recursive: true })
      cpSync(join(from.context, f), to)
    }
  }
}

export class RunStepFailed extends Error {
  readonly failure: RunFailure
  constructor (failure: RunFailure) {
    super(`Dockerfile:${failure.line}: RUN ${failure.command} exited ${failure.code}\n${failure.output}`)
    this.failure = failure
  }
}

async function run (command: string, line: number, cwd: string, env: Record<string, string | undefined>, timeoutMs: number): Promise<void> {
  const proc = spawn('/bin/sh', ['-c', command], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  proc.stdout.on('data', (c: Buffer) => { output += c.toString() })
  proc.stderr.on('data', (c: Buffer) => { output += c.toString() })
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs)
  const [code] = await once(proc, 'exit') as [number | null]
  clearTimeout(timer)
  if (code !== 0) throw new RunStepFailed({ line, command, code, output: output.slice(-4000) })
}
