// client/ is meant to be shipped on its own and bundled for browsers: these tests hold it to that —
// every import stays inside the folder, it compiles with the browser's library and no Node types, and
// an app extends its event maps by declaration merging without touching the client.

import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import t from 'tap'
import ts from 'typescript'

const ROOT = resolve(import.meta.dirname, '../..')
const CLIENT = join(ROOT, 'client')

/** The client's TypeScript sources (not its build output in dist/ nor its installed packages). */
function clientFiles (): string[] {
  return readdirSync(CLIENT, { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.ts') && !name.endsWith('.d.ts') && !/^(dist|node_modules)\//.test(name))
    .map((name) => join(CLIENT, name))
}

/** The module specifiers a file imports or re-exports (static and dynamic), as TypeScript reads them. */
function specifiers (file: string): string[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true)
  return info.importedFiles.map((ref) => ref.fileName)
}

t.test('the client imports nothing from outside client/: no server module, no package, no node: builtin', async (t) => {
  const files = clientFiles()
  t.ok(files.length > 0, 'client/ has TypeScript files')
  const outside: string[] = []
  for (const file of files) {
    for (const specifier of specifiers(file)) {
      const inside = specifier.startsWith('.') && !relative(CLIENT, resolve(dirname(file), specifier)).startsWith('..')
      if (!inside) outside.push(`${relative(ROOT, file)} imports "${specifier}"`)
    }
  }
  t.same(outside, [])
})

// An app's own events, the way an app declares them: by declaration merging, next to its client code.
const APP_FILE = join(ROOT, 'virtual-app', 'app-events.ts')
const APP_SOURCE = `
import { KeelClient, type RoomPush } from '../client/keel-client.ts'

declare module '../client/keel-client.ts' {
  interface KeelPushes { 'items:changed': RoomPush<{ id: string, op: 'created' | 'deleted' }> }
  interface KeelRequests { 'items:watch': { data: { id: string }, ack: { watching: boolean } } }
}

const client = new KeelClient({ url: 'wss://keel.example/ws', token: 'token' })
client.on('items:changed', ({ room, seq, id, op }) => { console.log(room.length + seq + id.length, op === 'created') })
client.request('items:watch', { id: 'a' }).then(({ watching }) => watching === true, () => false)
// @ts-expect-error the merged push keeps its declared type
client.on('items:changed', ({ op }) => op === 'renamed')
// @ts-expect-error an event nobody declared is not accepted
client.on('items:renamed', () => {})
`

let diagnostics: { client: string[], app: string[] } | undefined

/** Type errors of the client and of the app file above, checked as for a browser bundle (no Node types); computed once. */
function compileForBrowser (): { client: string[], app: string[] } {
  if (diagnostics !== undefined) return diagnostics
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
    types: [],
    strict: true,
    noUncheckedIndexedAccess: true,
    erasableSyntaxOnly: true,
    verbatimModuleSyntax: true,
    allowImportingTsExtensions: true,
    skipLibCheck: true,
    noEmit: true
  }
  const host = ts.createCompilerHost(options)
  const { getSourceFile, fileExists, readFile } = host
  host.fileExists = (name) => name === APP_FILE || fileExists(name)
  host.readFile = (name) => name === APP_FILE ? APP_SOURCE : readFile(name)
  host.getSourceFile = (name, version, ...rest) =>
    name === APP_FILE ? ts.createSourceFile(name, APP_SOURCE, version) : getSourceFile(name, version, ...rest)
  const program = ts.createProgram([...clientFiles(), APP_FILE], options, host)
  const client: string[] = []
  const app: string[] = []
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n')
    if (d.file?.fileName === APP_FILE) app.push(text)
    else client.push(`${d.file === undefined ? '' : relative(ROOT, d.file.fileName) + ': '}${text}`)
  }
  diagnostics = { client, app }
  return diagnostics
}

t.test('the client compiles for a browser: the standard and DOM libraries only, no Node types', async (t) => {
  t.same(compileForBrowser().client, [])
})

t.test('an app types its own pushes and requests by declaration merging: on() and request() accept exactly them', async (t) => {
  t.same(compileForBrowser().app, [])
})
