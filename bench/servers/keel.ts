// Keel as production builds it — `buildApp(loadConfig(...))` — plus the benchmark's routes, declared the
// way a route author declares theirs, so every edge policy in app.ts applies to them. Also seeds the
// example items resource, when app.ts registers it, so `GET /api/v1/items?limit=1` serves a real page
// from SQLite (from PostgreSQL when the harness passes a database URL; without the resource, scenario 1
// skips that row). The WebSocket scenarios use `/ws` as is (open room `bench`) and the bench-only memory
// probe below.

import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../app.ts'
import { loadConfig } from '../../core/config.ts'
import type { AuthUser } from '../../auth/access-token.ts'
import { announceListening, closeOnSignal, serverOptions } from '../lib/serve.ts'
import {
  BENCH_JWT_SECRET, BENCH_ORIGIN, BENCH_RATE_LIMIT, LARGE_PATH, ME_PATH, SMALL_PATH, largeBody, meSchema, pageSchema, smallBody
} from '../lib/workload.ts'
import { MEMORY_PATH, memoryReport } from '../lib/ws-workload.ts'

const SEEDED_ITEMS = 20

/** What seeding needs of the example resource's store (`fastify.items`); typed here so no file of resources/ is imported. */
interface SeedableItems { create: (input: { name: string, tags: string[] }) => unknown }

/** The benchmark's routes, with the same policies as Keel's public list (and a token-protected one). */
async function benchRoutes (fastify: FastifyInstance): Promise<void> {
  const publicPage = { auth: false as const, cache: { noCache: true, etag: 'computed' as const } }
  fastify.get(SMALL_PATH, { config: publicPage, schema: { response: { 200: pageSchema } } }, async () => smallBody)
  fastify.get(LARGE_PATH, { config: publicPage, schema: { response: { 200: pageSchema } } }, async () => largeBody)
  // No `config.auth`: a valid token is required, as on any route that does not say otherwise.
  fastify.get(ME_PATH, { config: { cache: { private: true, noCache: true } }, schema: { response: { 200: meSchema } } },
    async (request) => {
      const user = request.user as AuthUser
      return { sub: user.sub, scopes: user.scopes }
    })
  // Bench-only (never in production code): a full GC, then RSS and open sockets (scenario 6).
  fastify.get(MEMORY_PATH, { config: { auth: false, loadShedding: false } }, async (request) => memoryReport(fastify.webSockets.size, request.url))
}

const options = serverOptions()
// A private working directory: no `.env` from the checkout is read, nothing is written into certs/.
const cwd = mkdtempSync(join(tmpdir(), 'keel-bench-'))
const config = loadConfig({
  NODE_ENV: 'production',
  HOST: '127.0.0.1',
  PORT: '0',
  // The metrics listener opens as in production, on any free port: never a clash with a Keel running beside it.
  METRICS_PORT: '0',
  // Per-request access logs off: the peers log nothing either. Warnings and errors still go out.
  LOG_LEVEL: 'warn',
  TLS: options.tls === undefined ? 'off' : 'on',
  TLS_CERT_FILE: options.tls?.certFile,
  TLS_KEY_FILE: options.tls?.keyFile,
  TLS_WATCH_FILES: 'off',
  CORS_ORIGINS: BENCH_ORIGIN,
  JWT_SECRET: BENCH_JWT_SECRET,
  RATE_LIMIT_MAX: String(BENCH_RATE_LIMIT.max),
  RATE_LIMIT_WINDOW_MS: String(BENCH_RATE_LIMIT.windowMs),
  DATABASE_FILE: ':memory:',
  DATABASE_URL: options.databaseUrl,
  // WebSocket budgets no benchmark reaches, like the rate limit above: the token bucket still runs on
  // every message, and the per-user cap is counted, but the load's one publisher and its many sockets
  // per subject are never refused.
  // Load shedding stays on (its hook runs on every request) with a limit the benchmark never reaches:
  // the memory probe's forced GCs, on a machine shared with other work, would otherwise trip it.
  SHED_MAX_EVENT_LOOP_DELAY_MS: '60000',
  WS_MESSAGE_RATE: '100000',
  WS_MESSAGE_BURST: '1000000',
  WS_MAX_CONNECTIONS_PER_USER: '100000',
  // Every load socket comes from 127.0.0.1 and scenario 6 holds 10,000 of them: no connection caps.
  MAX_CONNECTIONS: '0',
  MAX_CONNECTIONS_PER_IP: '0'
}, cwd)

const app = await buildApp(config)
await app.register(benchRoutes)
if (app.hasDecorator('items')) {
  const items = app.getDecorator<SeedableItems>('items')
  for (let n = 1; n <= SEEDED_ITEMS; n++) await items.create({ name: `Seeded item ${n}`, tags: ['bench'] })
}
await app.listen({ host: '127.0.0.1', port: 0 })
await announceListening(app.server)
closeOnSignal(() => app.close())
