// What the generators read from the project they extend: the prefix of its plugin names, the names
// already taken (decorators, app.ts bindings, paths, rooms, tables, events), and the anchored edits of
// app.ts. Every edit fails with one line when its anchor is gone, before anything is written.

import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { GeneratorError } from './plan.ts'

// Instance members Fastify already has: decorating one of them fails at start-up.
const FASTIFY_MEMBERS = [
  'addresses', 'addContentTypeParser', 'addHook', 'addSchema', 'after', 'all', 'close', 'decorate', 'decorateReply',
  'decorateRequest', 'delete', 'errorHandler', 'get', 'getSchemas', 'hasDecorator', 'hasPlugin', 'head', 'initialConfig',
  'inject', 'listen', 'log', 'options', 'patch', 'pluginName', 'post', 'prefix', 'printPlugins', 'printRoutes', 'put',
  'ready', 'register', 'route', 'routes', 'server', 'version', 'versions', 'withTypeProvider'
]
const SOURCE_DIRS = ['core', 'edge', 'auth', 'realtime', 'outbound', 'resources']

/** The project's source files (not tests), relative to `root`. */
export function sourceFiles (root: string): string[] {
  const files: string[] = ['app.ts', 'server.ts'].filter((f) => existsSync(join(root, f)))
  const walk = (dir: string): void => {
    if (!existsSync(dir)) return
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) walk(path)
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) files.push(relative(root, path))
    }
  }
  for (const dir of SOURCE_DIRS) walk(join(root, dir))
  return files
}

export function read (root: string, path: string): string {
  return readFileSync(join(root, path), 'utf8')
}

/** The prefix of the app's plugin names (`keel` in `keel-database`), whatever the service was renamed to. */
export function pluginPrefix (root: string): string {
  const match = /name: '([a-z0-9-]+)-database'/.exec(read(root, 'core/database.ts'))
  if (match === null) throw new GeneratorError('refusing: core/database.ts no longer names its plugin \'<prefix>-database\'; nothing was changed')
  return match[1]!
}

/** Names on the Fastify instance: Fastify's own and every `fastify.decorate('x', …)` of the project. */
export function decoratorsTaken (root: string): Set<string> {
  const taken = new Set(FASTIFY_MEMBERS)
  for (const file of sourceFiles(root)) {
    for (const m of read(root, file).matchAll(/decorate(?:<[^>]*>)?\('(\w+)'/g)) taken.add(m[1]!)
  }
  return taken
}

/** The bindings app.ts imports: a new import must not shadow one. */
export function appBindings (root: string): Set<string> {
  const names = new Set<string>(['app', 'typed', 'config', 'options', 'h', 'tlsFiles', 'streamOrigins', 'buildApp'])
  for (const m of read(root, 'app.ts').matchAll(/^import (?:type )?([^'"]+?) from /gm)) {
    for (const name of m[1]!.replace(/[{}]/g, ',').split(',')) {
      const binding = name.trim().replace(/^type /, '').split(/\s+as\s+/).pop()!.trim()
      if (binding !== '') names.add(binding)
    }
  }
  return names
}

/** A file's code without its comments (which may mention names only as examples). */
const codeOf = (text: string): string => text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '')

/** The first source file whose code (comments aside) contains `text` (a path, a room, an event name). */
export function sourceMentions (root: string, text: string): string | undefined {
  return sourceFiles(root).find((file) => codeOf(read(root, file)).includes(text))
}

/** Tables the resources' migrations create, and their migration history tables. */
export function tablesTaken (root: string): Set<string> {
  const tables = new Set<string>()
  for (const file of sourceFiles(root).filter((f) => f.includes('/migrations/'))) {
    for (const m of read(root, file).matchAll(/CREATE TABLE (?:IF NOT EXISTS )?(\w+)/gi)) tables.add(m[1]!.toLowerCase())
  }
  for (const file of sourceFiles(root)) {
    for (const m of read(root, file).matchAll(/applyMigrations\([^,]+,[^,]+,\s*'(\w+)'/g)) {
      tables.add(`${m[1]!}_migration`)
      tables.add(`${m[1]!}_migration_lock`)
    }
  }
  return tables
}

/** Inserts `line` after the last line matching `after`, or before the first matching `before`; throws when neither matches. */
export function insertLine (text: string, line: string, anchors: { after?: RegExp, before?: RegExp }, what: string): string {
  const lines = text.split('\n')
  const afterAt = anchors.after === undefined ? -1 : lines.findLastIndex((l) => anchors.after!.test(l))
  const beforeAt = anchors.before === undefined ? -1 : lines.findIndex((l) => anchors.before!.test(l))
  const at = afterAt >= 0 ? afterAt + 1 : beforeAt
  if (at < 0) throw new GeneratorError(`refusing: cannot find where ${what} goes (its anchor is gone); nothing was changed`)
  lines.splice(at, 0, line)
  return lines.join('\n')
}

/**
 * app.ts with a resource's import (after the other resources' imports, else before the route-config
 * import) and its registration (after the last line of the "Resources" block).
 */
export function registerResource (binding: string, folder: string): (text: string) => string {
  return (text) => {
    const imported = insertLine(text, `import ${binding} from './resources/${folder}/index.ts'`,
      { after: /^import \w+ from '\.\/resources\/[^']+\/index\.ts'$/, before: /^import '\.\/core\/route-config\.ts'$/ }, 'the resource\'s import in app.ts')
    const lines = imported.split('\n')
    const comment = lines.findIndex((l) => /^\s*\/\/ Resources\b/.test(l))
    if (comment < 0) throw new GeneratorError('refusing: app.ts has no "// Resources" comment to register the resource under; nothing was changed')
    let last = comment
    while (/^\s+await typed\.register\(/.test(lines[last + 1] ?? '')) last++
    lines.splice(last + 1, 0, `  await typed.register(${binding})`)
    return lines.join('\n')
  }
}
