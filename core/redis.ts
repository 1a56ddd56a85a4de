// The app's one Redis (REDIS_URL), decorated as `fastify.redis` for every user of it (rate limiter,
// room hub, and any later one): the shared command connection, a subscriber connection opened on
// demand, and the outage state they all rely on — one throttled warning saying what each user does
// meanwhile, one "reachable again" line, one readiness check. It connects once every user has
// declared itself, or warns and lets ioredis keep trying (the app starts, not ready), and closes with
// the app. Without REDIS_URL `fastify.redis` is undefined and users keep their state in process.

import fp from 'fastify-plugin'
import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import type { CheckResult } from './health.ts'
import { createRedisClient, throttledWarning } from './redis-client.ts'

/** What a user of Redis reports through: failures are logged with what the user does meanwhile. */
export interface RedisUser {
  /** An operation failed (`operation` names it): logged at most once per interval for this user. */
  failed: (err: unknown, operation: string) => void
}

export interface SharedRedis {
  /** The command connection every user shares (no offline queue: a command fails at once while Redis is down). */
  readonly client: Redis
  /** The connection for subscriptions, opened on the first call; its owner re-subscribes on its `ready`. */
  subscriber: () => Redis
  /** Declares a user: `consequence` (what it does while Redis is down) is said in every outage warning. */
  use: (name: string, consequence: string) => RedisUser
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Undefined without REDIS_URL. */
    redis: SharedRedis | undefined
  }
}

export interface RedisPluginOptions {
  /** Unset: no Redis, and `fastify.redis` is undefined. */
  url?: string
}

// One warning per interval while Redis is failing, with the count of what was not logged.
const WARNING_INTERVAL_MS = 30_000

const reasonOf = (err: unknown): string => (err instanceof Error ? err.message : String(err))

class SharedRedisConnections implements SharedRedis {
  readonly client: Redis
  readonly #url: string
  readonly #log: FastifyBaseLogger
  readonly #warn: (reason: string, message: string) => void
  readonly #users: string[] = []
  #subscriber: Redis | undefined
  #connecting = false
  #closed = false
  /** Set from a failure until every connection is ready again. */
  #down = false
  #everReady = false

  constructor (url: string, log: FastifyBaseLogger) {
    this.#url = url
    this.#log = log
    this.#warn = throttledWarning((fields, message) => log.warn(fields, message), WARNING_INTERVAL_MS)
    this.client = this.#open(false)
  }

  subscriber (): Redis {
    if (this.#subscriber === undefined) {
      this.#subscriber = this.#open(true)
      // #connect never rejects: a failure becomes the outage warning.
      if (this.#connecting) this.#connect(this.#subscriber).catch(() => {})
    }
    return this.#subscriber
  }

  use (name: string, consequence: string): RedisUser {
    this.#users.push(`${name}: ${consequence}`)
    const warn = throttledWarning((fields, message) => this.#log.warn(fields, message), WARNING_INTERVAL_MS)
    return { failed: (err, operation) => warn(reasonOf(err), `${name}: ${operation} failed; ${consequence}`) }
  }

  /** Connects every connection opened so far (and any opened later); resolves even when Redis is down. */
  async connect (): Promise<void> {
    this.#connecting = true
    await Promise.all(this.#connections().map(async (conn) => await this.#connect(conn)))
  }

  /** Ready when every connection is, and Redis answers PING within the command timeout. */
  async check (): Promise<CheckResult> {
    if (this.#subscriber !== undefined && this.#subscriber.status !== 'ready') {
      return { status: 'fail', detail: `Redis unreachable (subscription ${this.#subscriber.status})` }
    }
    try {
      await this.client.ping()
      return { status: 'ok' }
    } catch {
      return { status: 'fail', detail: `Redis unreachable (${this.client.status})` }
    }
  }

  close (): void {
    this.#closed = true
    for (const conn of this.#connections()) conn.disconnect()
  }

  #connections (): Redis[] {
    return this.#subscriber === undefined ? [this.client] : [this.client, this.#subscriber]
  }

  #open (subscriber: boolean): Redis {
    const conn = createRedisClient(this.#url, { subscriber })
    conn.on('error', (err: Error) => { this.#unreachable(err) })
    // A lost connection that ioredis re-opens before any error is still an outage to report the end of.
    conn.on('close', () => { this.#down = true })
    conn.on('ready', () => { this.#onReady() })
    return conn
  }

  async #connect (conn: Redis): Promise<void> {
    try {
      await conn.connect()
    } catch (err) {
      this.#unreachable(err)
    }
  }

  #unreachable (err: unknown): void {
    this.#down = true
    if (this.#closed) return
    const what = this.#everReady ? 'Redis unreachable' : 'Redis unreachable at start'
    this.#warn(reasonOf(err), this.#users.length === 0 ? what : `${what}; ${this.#users.join('; ')}`)
  }

  #onReady (): void {
    if (this.#connections().some((conn) => conn.status !== 'ready')) return
    if (this.#down && !this.#closed) this.#log.info('Redis reachable again')
    this.#down = false
    this.#everReady = true
  }
}

export default fp<RedisPluginOptions>(async function redis (fastify, options) {
  if (options.url === undefined) {
    fastify.decorate('redis', undefined)
    return
  }
  const shared = new SharedRedisConnections(options.url, fastify.log)
  fastify.decorate('redis', shared)
  fastify.health.addCheck('redis', async () => await shared.check())
  // Users declare themselves while the app registers; connecting after that lets the first warning
  // (Redis down at start) say what each of them does meanwhile.
  fastify.addHook('onReady', async () => { await shared.connect() })
  fastify.addHook('onClose', async () => { shared.close() })
}, { name: 'keel-redis', dependencies: ['keel-health'] })
