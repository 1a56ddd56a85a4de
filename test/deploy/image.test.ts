// The production image, without Docker: the Dockerfile's own COPY/RUN/CMD lines replayed into a
// clean directory (test/helpers/dockerfile.ts), then the image's start command run there with Node 24
// and production variables. The Dockerfile and this test cannot drift: the test has no steps of its own.

import t from 'tap'
import { existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { createSelfSignedCertificate } from '../../core/dev-cert.ts'
import { loadConfig } from '../../core/config.ts'
import { ROOT, TEST_JWT_SECRET, tempDir, spawnProcess, waitListening } from '../helpers/app.ts'
import { h1request } from '../helpers/http.ts'
import { parseDockerfile, parseDockerignore, execForm, keyValues, replayDockerfile, RunStepFailed, type Stage } from '../helpers/dockerfile.ts'

const dockerfile = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string, devDependencies: Record<string, string> }
const runtime = dockerfile.stages.at(-1)!
const all = (stage: Stage, keyword: string): string[] => stage.instructions.filter((i) => i.keyword === keyword).map((i) => i.args)

t.test('every stage starts from the official Node image at the version the test suite runs on', async (t) => {
  t.ok(dockerfile.stages.length >= 2, 'multi-stage: dependencies are installed apart from the runtime')
  for (const stage of dockerfile.stages) {
    t.match(stage.from, /^node:24\.\d+\.\d+-[a-z]+-slim$/, `${stage.name}: node:<exact 24.x.y>-<debian>-slim`)
    t.equal(stage.from.split(':')[1]!.split('-')[0], pkg.devDependencies.node, `${stage.name}: the pinned runtime in package.json`)
  }
  t.equal(process.versions.node, pkg.devDependencies.node, 'and this suite runs on that Node')
})

t.test('the runtime stage runs as a numeric non-root user, stops on SIGTERM, exposes the API and metrics ports, carries the version', async (t) => {
  const user = all(runtime, 'USER').at(-1) ?? ''
  t.match(user, /^\d+(:\d+)?$/, 'numeric, so Kubernetes can check runAsNonRoot')
  t.not(user.split(':')[0], '0', 'not root')
  t.same(all(runtime, 'STOPSIGNAL'), ['SIGTERM'])
  const env = keyValues(all(runtime, 'ENV').join(' '))
  const metricsPort = env.METRICS_PORT ?? String(loadConfig({}, tempDir()).metrics.port)
  t.same(all(runtime, 'EXPOSE').flatMap((ports) => ports.split(/\s+/)), [env.PORT, metricsPort], 'the two ports Keel listens on: the API\'s and the metrics listener\'s')
  t.equal(env.NODE_ENV, 'production')
  t.match(env.HOST, /^(0\.0\.0\.0|::)$/, 'listens on every interface inside the container')
  t.equal(keyValues(all(runtime, 'LABEL').join(' '))['org.opencontainers.image.version'], pkg.version, 'labelled with package.json\'s version')
  t.same(all(runtime, 'VOLUME'), ['["/app/data"]'], 'the data directory is the one writable place')
})

t.test('the image starts `node server.ts` itself (with the telemetry start-up): exec form, no shell or npm between the signal and Keel', async (t) => {
  t.same(all(runtime, 'ENTRYPOINT'), [], 'the base image\'s entrypoint passes a `node` command straight through')
  const cmd = all(runtime, 'CMD')
  t.equal(cmd.length, 1)
  t.same(execForm(cmd[0]!), ['node', '--import', './telemetry/register.ts', 'server.ts'])
})

t.test('.dockerignore keeps dependencies, keys, secrets, local data, tests, the bench and .git out of the build', async (t) => {
  const ignored = parseDockerignore(readFileSync(join(ROOT, '.dockerignore'), 'utf8'))
  for (const path of ['node_modules/fastify/package.json', 'bench/node_modules/x/index.js', 'certs/dev-key.pem', 'certs/jwt-dev-secret',
    'tls/server.key', 'deploy/tls/tls.key', 'data/keel.db', '.env', '.env.production', 'deploy/k8s/.env', 'test/core/config.test.ts',
    'bench/run.ts', '.git/HEAD', 'coverage/index.html']) {
    t.ok(ignored(path), `${path} stays out`)
  }
  for (const path of ['server.ts', 'app.ts', 'package.json', 'package-lock.json', 'core/config.ts', 'realtime/protocol/events/room-join.ts']) {
    t.notOk(ignored(path), `${path} goes in`)
  }
})

/** Every file below `dir` with its size and modification time, to see whether a run wrote anything. */
function snapshot (dir: string, skip: string): Map<string, string> {
  const files = new Map<string, string>()
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name)
    if (path === skip || path.startsWith(`${skip}/`) || !entry.isFile()) continue
    const s = statSync(path)
    files.set(relative(dir, path), `${s.size}:${s.mtimeMs}`)
  }
  return files
}

/** How this machine reaches the registry (a mirror, a cache, a proxy), passed on to the replayed npm ci. */
function npmSettings (): Record<string, string | undefined> {
  const names = ['npm_config_registry', 'npm_config_cache', 'npm_config_userconfig', 'HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy']
  return Object.fromEntries(names.filter((n) => process.env[n] !== undefined).map((n) => [n, process.env[n]]))
}

const NETWORK_ERROR = /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH/

t.test('the Dockerfile replayed into a clean directory: production dependencies only, starts in production, ready, SIGTERM exits 0', async (t) => {
  const out = tempDir('keel-image-')
  t.teardown(() => rmSync(out, { recursive: true, force: true }))
  let image
  try {
    image = await replayDockerfile(dockerfile, {
      context: ROOT,
      out,
      // The image's npm ci, with this machine's npm cache first (CI's own npm ci has just filled it),
      // so the step is quick and needs the registry only for what the cache lacks.
      runEnv: { ...npmSettings(), PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`, HOME: process.env.HOME, npm_config_prefer_offline: 'true', npm_config_update_notifier: 'false' },
      // Inside the file's 120 s budget (.taprc), with room for the start that follows.
      runTimeoutMs: 80_000
    })
  } catch (err) {
    if (err instanceof RunStepFailed && NETWORK_ERROR.test(err.failure.output)) {
      // Skipped, with the reason printed: without the registry there is nothing to install from.
      const reason = `skipped: the npm registry is unreachable, so npm ci cannot run (${/\b(E[A-Z]+)\b/.exec(err.failure.output)?.[1] ?? 'network error'})`
      t.comment(reason)
      t.plan(0, reason)
      return
    }
    throw err
  }
  const app = join(image.root, image.workdir)

  // What is installed is production's tree: nothing the lockfile marks dev (tests, lint, bench, the pinned node).
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> }
  const installed = JSON.parse(readFileSync(join(app, 'node_modules/.package-lock.json'), 'utf8')) as { packages: Record<string, unknown> }
  const devInstalled = Object.keys(installed.packages).filter((p) => lock.packages[p]?.dev === true)
  t.same(devInstalled, [], 'no package the lockfile marks as a dev dependency')
  for (const name of ['tap', 'typescript', 'eslint', 'node', 'autocannon', 'socket.io', 'keel-bench', 'kubernetes-models']) {
    t.notOk(existsSync(join(app, 'node_modules', name)), `no node_modules/${name}`)
  }
  t.notOk(existsSync(join(app, 'test')) || existsSync(join(app, 'bench')), 'no test or bench folder')

  // TLS as production provides it: a pair mounted from outside (production never generates one).
  const secrets = tempDir('keel-image-tls-')
  const pair = await createSelfSignedCertificate()
  writeFileSync(join(secrets, 'tls.crt'), pair.cert)
  writeFileSync(join(secrets, 'tls.key'), pair.key, { mode: 0o600 })

  const before = snapshot(app, join(app, 'data'))
  const server = await waitListening(spawnProcess(t, image.command[0]!, image.command.slice(1), {
    cwd: app,
    env: {
      ...image.env,
      // The test binds loopback only; inside the container HOST stays the image's.
      HOST: '127.0.0.1',
      PORT: '0',
      METRICS_PORT: '0',
      PATH: `${dirname(process.execPath)}:/usr/bin:/bin`,
      TLS_CERT_FILE: join(secrets, 'tls.crt'),
      TLS_KEY_FILE: join(secrets, 'tls.key'),
      JWT_SECRET: TEST_JWT_SECRET
    }
  }), 30_000)
  const ready = await h1request(`${server.url}/health/ready`, { ca: pair.cert })
  t.equal(ready.status, 200, '/health/ready answers 200')

  server.proc.kill('SIGTERM')
  t.equal(await server.exited, 0, 'SIGTERM: exit 0')
  t.same([...snapshot(app, join(app, 'data'))].filter(([f, v]) => before.get(f) !== v), [], 'nothing written outside the data directory (a read-only root file system holds)')
  t.ok(existsSync(join(app, 'data', 'keel.db')), 'the example store lives in the data volume')
})
