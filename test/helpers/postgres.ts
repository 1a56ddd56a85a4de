// A real PostgreSQL for tests: `startPostgres(t)` runs initdb and `postgres` on a temporary directory and
// a free loopback port, and removes both when the test ends. Under root the server runs as the
// `postgres` user (initdb refuses root). Passwords are checked on TCP (scram-sha-256), as a deployment
// would; the helper administers over its Unix socket (trust). Tests declare
// `{ skip: postgresSkipReason() }` so a machine without the binaries skips them with a printed reason.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync, chownSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import pg from 'pg'
import { freePort } from './ports.ts'
import { stopChild } from './child-process.ts'

interface Teardown { teardown: (fn: () => unknown) => void }

/** The role every test database belongs to, and its password (checked on TCP). */
export const TEST_DB_USER = 'keel'
export const TEST_DB_PASSWORD = 'keel-test-password'

export interface TestPostgres {
  port: number
  /** A fresh empty database owned by TEST_DB_USER; resolves with its postgres:// URL. */
  createDatabase: () => Promise<string>
  /** The URL of `database` as `user` with `password` (to test refused logins). */
  urlOf: (database: string, user?: string, password?: string) => string
  /** Runs SQL as the superuser, over the socket, in `database`. */
  admin: (sql: string, database?: string) => Promise<pg.QueryResult>
  /** Fast shutdown: sessions are ended, new connections refused. The data stays. */
  stop: () => Promise<void>
  /** Starts it again on the same port, with the same data. */
  restart: () => Promise<void>
}

const READY_TIMEOUT_MS = 30_000
const STOP_TIMEOUT_MS = 15_000

interface Binaries { dir: string, user?: { uid: number, gid: number } }

let found: Binaries | string | undefined

/** Debian's layout (/usr/lib/postgresql/<version>/bin, newest first), else initdb on PATH. */
function binDir (): string | undefined {
  const root = '/usr/lib/postgresql'
  if (existsSync(root)) {
    const versions = readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a))
    for (const version of versions) {
      const dir = join(root, version, 'bin')
      if (existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'postgres'))) return dir
    }
  }
  const which = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' })
  const initdb = which.stdout.trim()
  return which.status === 0 && initdb !== '' ? join(initdb, '..') : undefined
}

function binaries (): Binaries | string {
  if (found !== undefined) return found
  const dir = binDir()
  if (dir === undefined) {
    found = 'needs PostgreSQL server binaries (initdb, postgres): install postgresql'
  } else if (process.getuid?.() === 0) {
    const id = (flag: string) => spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' })
    const uid = id('-u')
    const gid = id('-g')
    found = uid.status === 0 && gid.status === 0
      ? { dir, user: { uid: Number(uid.stdout), gid: Number(gid.stdout) } }
      : 'runs as root, so needs a postgres user for initdb (install postgresql)'
  } else {
    found = { dir }
  }
  return found
}

/** Why PostgreSQL tests cannot run here, or false when they can. */
export function postgresSkipReason (): string | false {
  const b = binaries()
  return typeof b === 'string' ? b : false
}

async function run (bins: Binaries, command: string, args: string[]): Promise<void> {
  const child = spawn(join(bins.dir, command), args, { ...bins.user, stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH, LANG: 'C' } })
  let err = ''
  child.stderr!.on('data', (c: Buffer) => { err += c.toString() })
  const [code] = await once(child, 'exit') as [number | null]
  if (code !== 0) throw new Error(`${command} failed (${code}): ${err.trim()}`)
}

/** Resolves once the server says it accepts connections; rejects on exit or after the deadline. */
async function ready (proc: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS
  while (!log().includes('ready to accept connections')) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`postgres exited: ${log()}`)
    const left = deadline - Date.now()
    if (left <= 0) throw new Error(`postgres not ready within ${READY_TIMEOUT_MS} ms: ${log()}`)
    let timer: NodeJS.Timeout | undefined
    await Promise.race([once(proc.stderr!, 'data'), once(proc, 'exit'), new Promise((resolve) => { timer = setTimeout(resolve, left) })])
    clearTimeout(timer)
  }
}

/** A PostgreSQL server for this test, stopped and deleted when it ends. Guard with postgresSkipReason(). */
export async function startPostgres (t: Teardown): Promise<TestPostgres> {
  const bins = binaries()
  if (typeof bins === 'string') throw new Error(`startPostgres: ${bins}; guard the test with postgresSkipReason()`)
  const dir = mkdtempSync(join(tmpdir(), 'keel-pg-'))
  if (bins.user !== undefined) chownSync(dir, bins.user.uid, bins.user.gid)
  const data = join(dir, 'data')
  const port = await freePort()
  let proc: ChildProcess | undefined

  const stop = async () => {
    const running = proc
    proc = undefined
    // SIGINT: PostgreSQL's fast shutdown.
    await stopChild(running, 'SIGINT', STOP_TIMEOUT_MS)
  }
  const start = async () => {
    const child = spawn(join(bins.dir, 'postgres'), [
      '-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1',
      // A throwaway server: durability off, for speed.
      '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'
    ], { ...bins.user, stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH, LANG: 'C' } })
    let log = ''
    child.stderr!.on('data', (c: Buffer) => { log += c.toString() })
    proc = child
    await ready(child, () => log)
  }
  const admin = async (sql: string, database = 'postgres') => {
    const client = new pg.Client({ host: dir, port, user: 'postgres', database })
    await client.connect()
    try {
      return await client.query(sql)
    } finally {
      await client.end()
    }
  }
  const urlOf = (database: string, user = TEST_DB_USER, password = TEST_DB_PASSWORD) =>
    `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`

  t.teardown(async () => {
    await stop()
    rmSync(dir, { recursive: true, force: true })
  })
  await run(bins, 'initdb', ['-D', data, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', '-N', '-E', 'UTF8', '--locale=C'])
  await start()
  await admin(`CREATE ROLE "${TEST_DB_USER}" LOGIN PASSWORD '${TEST_DB_PASSWORD}'`)

  let databases = 0
  return {
    port,
    urlOf,
    admin,
    stop,
    restart: async () => { await stop(); await start() },
    createDatabase: async () => {
      const name = `keel_test_${++databases}`
      // CREATE DATABASE cannot share a statement string with anything else.
      await admin(`CREATE DATABASE ${name} OWNER "${TEST_DB_USER}"`)
      return urlOf(name)
    }
  }
}
