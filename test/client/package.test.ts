// The client as a published package: `npm pack` of client/ (its prepack builds dist/ with tsc) gives a
// tarball of ESM JavaScript and .d.ts files only; installed into an empty project, Node 24 imports it
// by name with no bundler and connects with its built-in WebSocket, and TypeScript code type-checks
// against its declarations, declaration merging included. client/ itself is packed from a copy, so
// the test never writes into the checkout.

import { execFile } from 'node:child_process'
import { cpSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import ts from 'typescript'
import { listen, ROOT, tempDir } from '../helpers/app.ts'
import { CLIENT_DIR } from '../helpers/keel-client.ts'
import { testToken } from '../helpers/tokens.ts'

const run = promisify(execFile)
const NPM_TIMEOUT_MS = 120_000
// tsc for the package's prepack: npm looks for it in node_modules/.bin above the package, and a copy has none.
const PATH = `${join(ROOT, 'node_modules', '.bin')}:${process.env.PATH ?? ''}`

/** Packs a copy of client/ (sources, package.json, build configuration, README) and installs the tarball into a new project. */
async function packAndInstall (): Promise<{ tarballFiles: string[], project: string }> {
  const source = tempDir('keel-client-src-')
  for (const name of readdirSync(CLIENT_DIR)) {
    if (name === 'dist' || name === 'node_modules') continue
    cpSync(join(CLIENT_DIR, name), join(source, name), { recursive: true })
  }
  const out = tempDir('keel-client-pack-')
  const env = { ...process.env, PATH }
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', out], { cwd: source, env, timeout: NPM_TIMEOUT_MS })
  const [packed] = JSON.parse(stdout) as Array<{ filename: string, files: Array<{ path: string }> }>
  const project = tempDir('keel-client-app-')
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }))
  await run('npm', ['install', '--offline', '--no-audit', '--no-fund', join(out, packed!.filename)], { cwd: project, env, timeout: NPM_TIMEOUT_MS })
  return { tarballFiles: packed!.files.map((f) => f.path).sort(), project }
}

let installed: Promise<{ tarballFiles: string[], project: string }> | undefined
const install = async () => await (installed ??= packAndInstall())

t.test('npm pack gives ESM JavaScript, declarations, package.json and README: no TypeScript sources, nothing else', async (t) => {
  const { tarballFiles } = await install()
  t.ok(tarballFiles.includes('dist/keel-client.js'), 'the entry point')
  t.ok(tarballFiles.includes('dist/keel-client.d.ts'), 'its declarations')
  t.ok(tarballFiles.includes('package.json') && tarballFiles.includes('README.md'))
  t.same(tarballFiles.filter((f) => !/^dist\/[\w-]+\.(js|d\.ts)$/.test(f) && f !== 'package.json' && f !== 'README.md'), [], 'nothing else')
})

// The app's script, run by Node 24 in the project the package was installed into.
const NODE_APP = `
import { KeelClient, KeelClientError } from 'keel-client'
const [url, token] = process.argv.slice(2)
const client = new KeelClient({ url, token })
const ready = await client.connect()
const transport = client.transport
const joined = await client.join('lobby')
const ack = await client.publish('lobby', 'from node')
client.close()
const refused = new KeelClient({ url, token: 'not-a-token' })
const error = await refused.connect().then(() => undefined, (err) => ({ code: err.code, typed: err instanceof KeelClientError }))
console.log(JSON.stringify({ sub: ready.user.sub, transport, joined, ack, error }))
`

t.test('Node 24 imports { KeelClient } from \'keel-client\' with no bundler and talks to Keel over its built-in WebSocket', async (t) => {
  const server = await listen(t)
  const { project } = await install()
  writeFileSync(join(project, 'app.js'), NODE_APP)
  // Node's WebSocket and fetch take the dev certificate from NODE_EXTRA_CA_CERTS, as an app would.
  const env = { PATH: process.env.PATH, NODE_EXTRA_CA_CERTS: join(server.config.certsDir, 'dev-cert.pem') }
  const wsUrl = server.url.replace(/^https/, 'wss').replace('127.0.0.1', 'localhost') + '/ws'
  const { stdout } = await run(process.execPath, ['app.js', wsUrl, testToken({ sub: 'node-app' })], { cwd: project, env, timeout: 30_000 })
  const result = JSON.parse(stdout) as Record<string, unknown>
  t.equal(result.sub, 'node-app', 'connected')
  t.equal(result.transport, 'websocket')
  t.match(result.joined, { room: 'lobby', joined: true })
  t.match(result.ack, { room: 'lobby', seq: 1 }, 'published with an ack')
  t.same(result.error, { code: 'UNAUTHORIZED', typed: true }, 'a refused token is a KeelClientError')
})

// An app's TypeScript against the installed package: its own events merged into the maps.
const TS_APP = `
import { KeelClient, KeelClientError, type RoomPush } from 'keel-client'

declare module 'keel-client' {
  interface KeelPushes { 'items:changed': RoomPush<{ id: string, op: 'created' | 'deleted' }> }
}

const client = new KeelClient({ url: 'wss://keel.example/ws', token: () => 'token', transport: 'auto' })
client.on('items:changed', ({ room, seq, id, op }) => { console.log(room, seq, id, op === 'created') })
client.on('close', ({ error }) => { if (error instanceof KeelClientError) console.log(error.code) })
client.publish('lobby', { text: 'hi' }).then(({ seq }) => seq + 1, () => 0)
// @ts-expect-error the merged push keeps its declared type
client.on('items:changed', ({ op }) => op === 'renamed')
`

t.test('TypeScript code type-checks against the package\'s declarations, and merges its own events into them', async (t) => {
  const { project } = await install()
  const file = join(project, 'app.ts')
  writeFileSync(file, TS_APP)
  const program = ts.createProgram([file], {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
    types: [],
    strict: true,
    // The package's own declarations are checked too.
    skipLibCheck: false,
    noEmit: true
  })
  t.same(ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')), [])
})
