// PostgreSQL for the resources' stores (DATABASE_URL): one bounded pool per instance, a connect timeout
// (waiting for a free connection included) and a statement timeout on every connection, so a sick
// database costs a request at most those before it answers 503. Owns what leaves this module about the
// database: failures as a 503 AppError (the driver's text goes to the log, never to the client), one
// throttled warning per outage, the readiness check, and messages in which the URL's password never appears.

import pg from 'pg'
import type { FastifyBaseLogger } from 'fastify'
import { AppError, ErrorCode } from './errors.ts'
import type { CheckResult } from './health.ts'
import { throttledWarning } from './redis-client.ts'

export interface PostgresOptions {
  /** DATABASE_URL: a secret. */
  url: string
  poolMax: number
  statementTimeoutMs: number
  connectTimeoutMs: number
}

// One warning per interval while the database is failing, with the count of what was not logged.
const WARNING_INTERVAL_MS = 30_000
// An idle connection is closed after 10 s: the pool shrinks back after a burst.
const IDLE_TIMEOUT_MS = 10_000
// A client stops waiting this long after the server's own statement timeout should have fired: the
// server's cancel is the normal path (the connection stays usable); this one covers a server that
// stopped answering altogether.
const CLIENT_TIMEOUT_MARGIN_MS = 500
const RETRY_AFTER_S = 1

// SQLSTATE classes that mean "the database cannot serve now", not "this statement is wrong": connection
// exceptions, authorization (a password rotated under us), a missing database, transaction rollback
// (serialization, deadlock), insufficient resources (too many connections), operator intervention
// (shutdown, statement timeout), system errors.
const UNAVAILABLE_CLASSES = new Set(['08', '28', '3D', '40', '53', '57', '58'])
const SQLSTATE = /^[0-9A-Z]{5}$/

/** True when `err` says the database is unreachable or unable to answer, rather than that a query is wrong. */
export function isUnavailable (err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code === 'string' && SQLSTATE.test(code)) return UNAVAILABLE_CLASSES.has(code.slice(0, 2))
  // No SQLSTATE: the network or the driver failed (refused, reset, timed out, connection ended) —
  // unless it is a programming error in the caller.
  return !(err instanceof TypeError || err instanceof RangeError)
}

/** Where the URL points (host, port, database, user) — everything but the password. */
function describe (url: string): string {
  const u = new URL(url)
  const user = u.username === '' ? '' : `${decodeURIComponent(u.username)}@`
  return `${user}${u.host}${u.pathname}`
}

/** The forms the URL's password may take in a message (as written, decoded, as a query parameter). */
function secretsOf (url: string): string[] {
  const u = new URL(url)
  const forms = [u.password, safeDecode(u.password), u.searchParams.get('password') ?? '']
  return [...new Set(forms.filter((s) => s.length > 0))]
}

function safeDecode (text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

export class PostgresDatabase {
  readonly #options: PostgresOptions
  readonly #pool: pg.Pool
  readonly #secrets: string[]
  readonly #log: FastifyBaseLogger
  readonly #warn: (reason: string, message: string) => void
  readonly #consequences: string[] = []
  #down = false

  constructor (options: PostgresOptions, log: FastifyBaseLogger) {
    this.#options = options
    this.#secrets = secretsOf(options.url)
    this.#log = log
    this.#warn = throttledWarning((fields, message) => log.warn(fields, message), WARNING_INTERVAL_MS)
    this.#pool = this.#newPool({
      max: options.poolMax,
      statement_timeout: options.statementTimeoutMs,
      query_timeout: options.statementTimeoutMs + CLIENT_TIMEOUT_MARGIN_MS,
      idleTimeoutMillis: IDLE_TIMEOUT_MS
    })
  }

  /** Declares what a user of the database does while it is down, said in every outage warning. */
  use (consequence: string): void {
    this.#consequences.push(consequence)
  }

  /** Runs one statement; a database that cannot answer becomes a 503 SERVICE_UNAVAILABLE AppError. */
  async query<R extends pg.QueryResultRow> (query: pg.QueryConfig): Promise<pg.QueryResult<R>> {
    try {
      const result = await this.#pool.query<R>(query)
      this.#reachable()
      return result
    } catch (err) {
      if (!isUnavailable(err)) throw err
      this.#unreachable(err)
      throw new AppError(ErrorCode.SERVICE_UNAVAILABLE, 'the database is unavailable; try again shortly',
        { headers: { 'retry-after': String(RETRY_AFTER_S) } })
    }
  }

  /** At start: one round trip, so a wrong URL, password or database stops the start, naming DATABASE_URL. */
  async verify (): Promise<void> {
    try {
      await this.#pool.query('SELECT 1')
    } catch (err) {
      throw new Error(`DATABASE_URL: cannot use PostgreSQL at ${describe(this.#options.url)}: ${this.redact(reasonOf(err))}`)
    }
  }

  /** Readiness: the database answers a trivial statement. */
  async check (): Promise<CheckResult> {
    try {
      await this.#pool.query('SELECT 1')
      this.#reachable()
      return { status: 'ok' }
    } catch (err) {
      this.#unreachable(err)
      return { status: 'fail', detail: `PostgreSQL unreachable (${this.redact(reasonOf(err))})` }
    }
  }

  /**
   * A pool of one connection without a statement timeout, for migrations: a long schema change, or
   * the wait for another instance's, must not be cut short. The caller ends it.
   */
  migrationPool (): pg.Pool {
    return this.#newPool({ max: 1, application_name: 'keel-migrations' })
  }

  /** `text` without the URL's password, on one line: safe for a log line or an error line. */
  redact (text: string): string {
    let safe = text.replace(/\s+/g, ' ').trim()
    for (const secret of this.#secrets) safe = safe.replaceAll(secret, '[REDACTED]')
    return safe
  }

  async close (): Promise<void> {
    if (this.#pool.ending) return
    await this.#pool.end()
  }

  #newPool (options: pg.PoolConfig): pg.Pool {
    const pool = new pg.Pool({
      connectionString: this.#options.url,
      connectionTimeoutMillis: this.#options.connectTimeoutMs,
      keepAlive: true,
      application_name: 'keel',
      ...options
    })
    // An idle connection that the server ends (a restart, a failover) is reported here; without a
    // listener it would be an uncaught exception. The pool drops it and opens a new one when needed.
    pool.on('error', (err) => { this.#unreachable(err) })
    return pool
  }

  #unreachable (err: unknown): void {
    this.#down = true
    const message = ['PostgreSQL unreachable', ...this.#consequences].join('; ')
    this.#warn(this.redact(reasonOf(err)), message)
  }

  #reachable (): void {
    if (!this.#down) return
    this.#down = false
    this.#log.info('PostgreSQL reachable again')
  }
}

function reasonOf (err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  const code = (err as { code?: unknown }).code
  // "connect ECONNREFUSED 127.0.0.1:5432" says it; an empty message (AggregateError) gets its code.
  return err.message !== '' ? err.message : typeof code === 'string' ? code : err.name
}
