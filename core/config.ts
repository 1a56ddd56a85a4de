// The one place that reads the environment. Configuration is a list of sections; each declares its
// variables (TypeBox schemas carrying the default and the form we tell the user) and, beside them, the
// mapping into its part of the typed `Config` that `buildApp(config)` receives. A bad value becomes a
// `ConfigError` whose message is one line: variable, problem, expected form — and never the value of a
// secret or a URL's credentials.

import { existsSync, accessSync, readFileSync, constants as fsConstants } from 'node:fs'
import { isIP } from 'node:net'
import { parseEnv } from 'node:util'
import { Type, type Static, type TObject, type TProperties, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'

interface VariableMeta { expected: string, secret?: boolean, url?: boolean }

/** One variable: its schema carries the default and, in `expected`, the form we tell the user. */
function env<T extends TSchema> (schema: T, expected: string, meta: { secret?: boolean, url?: boolean } = {}): T {
  return { ...schema, expected, ...meta }
}
const int = (min: number, max: number, def: number, expected: string) =>
  env(Type.Integer({ minimum: min, maximum: max, default: def }), expected)
const oneOf = <const V extends string[]>(values: [...V], def: V[number]) =>
  env(Type.Union(values.map((v) => Type.Literal(v)), { default: def }), `one of ${values.join(', ')}`)
const optionalString = (expected: string) => Type.Optional(env(Type.String({ minLength: 1 }), expected))
const optionalUrl = (expected: string) =>
  Type.Optional(env(Type.String({ pattern: '^https?://[^\\s]+$' }), expected, { url: true }))

export class ConfigError extends Error {
  readonly code = 'KEEL_CONFIG_INVALID'
  readonly variable: string
  constructor (variable: string, problem: string, expected: string) {
    super(`invalid configuration: ${variable} ${problem}; expected ${expected}`)
    this.name = 'ConfigError'
    this.variable = variable
  }
}

/** A section: its variables, their mapping into the `Config`, and checks across its variables. */
interface Section<P extends TProperties, T> {
  vars: P
  map: (e: Static<TObject<P>>, context: { cwd: string }) => T
  check?: (e: Static<TObject<P>>, all: Record<string, unknown>) => void
}
function section<P extends TProperties, T> (vars: P, map: Section<P, T>['map'], check?: Section<P, T>['check']): Section<P, T> {
  return { vars, map, check }
}

// ---------------------------------------------------------------------------------------------------
// The process: environment, where it listens, logs, shutdown, which proxies it believes.

/** `TRUST_PROXY`: off, a hop count, or addresses/CIDRs (and proxy-addr's names) whose X-Forwarded-* is believed. */
export type TrustProxy = false | number | string[]
const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal'])

function parseTrustProxy (value: string): TrustProxy {
  if (value === 'off') return false
  if (/^\d{1,2}$/.test(value)) return Number(value)
  const entries = value.split(',').map((s) => s.trim()).filter((s) => s !== '')
  for (const entry of entries) {
    if (PROXY_NAMES.has(entry)) continue
    const [address, prefix, extra] = entry.split('/')
    const family = isIP(address ?? '')
    const bits = family === 4 ? 32 : 128
    const prefixOk = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= bits)
    if (family === 0 || !prefixOk || extra !== undefined) {
      throw new ConfigError('TRUST_PROXY', `has an entry that is not an address or CIDR (${JSON.stringify(entry.slice(0, 64))})`, expectedOf('TRUST_PROXY'))
    }
  }
  return entries
}

const server = section({
  NODE_ENV: oneOf(['development', 'production', 'test'], 'development'),
  HOST: env(Type.String({ minLength: 1, pattern: '^[0-9A-Za-z.:\\-\\[\\]]+$', default: '127.0.0.1' }), 'a hostname or IP address'),
  PORT: int(0, 65535, 3000, 'an integer 0–65535 (0 = any free port)'),
  LOG_LEVEL: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'),
  SHUTDOWN_TIMEOUT_MS: int(100, 600_000, 10_000, 'milliseconds, 100–600000'),
  // Time between "not ready" and closing the listener, for load balancers to notice (k8s preStop).
  SHUTDOWN_DRAIN_MS: int(0, 60_000, 0, 'milliseconds, 0–60000'),
  // Off: X-Forwarded-For is client-controlled, so it is believed only from proxies named here.
  TRUST_PROXY: env(Type.String({ minLength: 1, default: 'off' }),
    'off, a hop count 0–99, or comma-separated proxy addresses/CIDRs (or loopback, linklocal, uniquelocal)')
}, (e, { cwd }) => ({
  env: e.NODE_ENV,
  host: e.HOST,
  port: e.PORT,
  logLevel: e.LOG_LEVEL,
  shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
  shutdownDrainMs: e.SHUTDOWN_DRAIN_MS,
  trustProxy: parseTrustProxy(e.TRUST_PROXY),
  /** Directory for generated development material (certificate, JWT secret). */
  certsDir: `${cwd}/certs`
}))

// ---------------------------------------------------------------------------------------------------
// TLS: the pair (or the generated development pair outside production), mutual TLS, rotation.

const tls = section({
  TLS: oneOf(['on', 'off'], 'on'),
  TLS_CERT_FILE: optionalString('a path to a readable PEM certificate'),
  TLS_KEY_FILE: optionalString('a path to a readable PEM private key'),
  TLS_CA_FILE: optionalString('a path to a readable PEM CA bundle'),
  TLS_CLIENT_AUTH: oneOf(['off', 'require'], 'off'),
  // Reload the pair when its files change; SIGHUP reloads either way.
  TLS_WATCH_FILES: oneOf(['on', 'off'], 'on')
}, (e) => ({
  tls: {
    enabled: e.TLS === 'on',
    /** Explicit PEM files; when absent the dev pair in `certs/` is used (generated on first start). */
    certFile: e.TLS_CERT_FILE,
    keyFile: e.TLS_KEY_FILE,
    caFile: e.TLS_CA_FILE,
    clientAuth: e.TLS_CLIENT_AUTH === 'require',
    watchFiles: e.TLS_WATCH_FILES === 'on'
  }
}), (e, all) => {
  if ((e.TLS_CERT_FILE === undefined) !== (e.TLS_KEY_FILE === undefined)) {
    const missing = e.TLS_CERT_FILE === undefined ? 'TLS_CERT_FILE' : 'TLS_KEY_FILE'
    throw new ConfigError(missing, 'is missing while its pair is set', 'TLS_CERT_FILE and TLS_KEY_FILE set together')
  }
  if (all.NODE_ENV === 'production' && e.TLS === 'on' && e.TLS_CERT_FILE === undefined) {
    throw new ConfigError('TLS_CERT_FILE', 'is missing in production (no generated development certificate there)',
      'TLS_CERT_FILE and TLS_KEY_FILE, or TLS=off behind a TLS-terminating proxy')
  }
  readable('TLS_CERT_FILE', e.TLS_CERT_FILE)
  readable('TLS_KEY_FILE', e.TLS_KEY_FILE)
  readable('TLS_CA_FILE', e.TLS_CA_FILE)
  if (e.TLS_CLIENT_AUTH === 'require' && e.TLS_CA_FILE === undefined) {
    throw new ConfigError('TLS_CA_FILE', 'is missing while TLS_CLIENT_AUTH=require', 'the CA that signs client certificates')
  }
})

// ---------------------------------------------------------------------------------------------------
// HTTP server hardening. Each default is chosen for an API behind (or without) a load balancer.

const http = section({
  // 1 MiB: JSON APIs rarely need more; larger uploads belong on a dedicated route.
  BODY_LIMIT_BYTES: int(1024, 100 * 1024 * 1024, 1024 * 1024, 'bytes, 1024–104857600'),
  // 10 s to send the headers cuts slowloris clients early without hurting slow mobile links.
  HEADERS_TIMEOUT_MS: int(1000, 120_000, 10_000, 'milliseconds, 1000–120000'),
  // 30 s for a whole request (headers + body): an API call that takes longer is a bug or an attack.
  REQUEST_TIMEOUT_MS: int(1000, 600_000, 30_000, 'milliseconds, 1000–600000'),
  // 72 s: longer than the 60 s idle timeout of common load balancers, so they close first.
  KEEP_ALIVE_TIMEOUT_MS: int(1000, 600_000, 72_000, 'milliseconds, 1000–600000'),
  // Idle socket timeout: a connection silent for 2 min is dropped.
  CONNECTION_TIMEOUT_MS: int(1000, 3_600_000, 120_000, 'milliseconds, 1000–3600000'),
  // HTTP/2 sessions idle for 72 s are closed (same reasoning as keep-alive).
  HTTP2_SESSION_TIMEOUT_MS: int(1000, 600_000, 72_000, 'milliseconds, 1000–600000'),
  // 100 concurrent streams per session is the RFC 9113 recommended minimum and bounds per-client work.
  HTTP2_MAX_CONCURRENT_STREAMS: int(1, 1000, 100, 'an integer 1–1000'),
  // 5 s from connect to a finished TLS handshake: TLS 1.3 needs one round trip, so even a 1 s-RTT link
  // makes it, while a connection that never sends its ClientHello stops holding a descriptor.
  TLS_HANDSHAKE_TIMEOUT_MS: int(1000, 120_000, 5000, 'milliseconds, 1000–120000'),
  // Open connections the listener keeps; past it new ones are closed at accept. 10,000 idle connections
  // fit a small instance's memory; keep it below the open-files limit (ulimit -n) so the process keeps
  // descriptors for its own work. 0 = no cap.
  MAX_CONNECTIONS: int(0, 1_000_000, 10_000, 'an integer 0–1000000 (0 = no cap)'),
  // Per client address (an IPv6 client per /64): a browser holds a handful, a NAT of dozens of users fits,
  // and one address cannot take more than 1/40 of MAX_CONNECTIONS. Behind a proxy every client arrives
  // from the proxy's addresses: raise it above the proxy's connection count, or 0 = no cap.
  MAX_CONNECTIONS_PER_IP: int(0, 1_000_000, 256, 'an integer 0–1000000 (0 = no cap)')
}, (e) => ({
  http: {
    bodyLimit: e.BODY_LIMIT_BYTES,
    headersTimeout: e.HEADERS_TIMEOUT_MS,
    requestTimeout: e.REQUEST_TIMEOUT_MS,
    keepAliveTimeout: e.KEEP_ALIVE_TIMEOUT_MS,
    connectionTimeout: e.CONNECTION_TIMEOUT_MS,
    http2SessionTimeout: e.HTTP2_SESSION_TIMEOUT_MS,
    http2MaxConcurrentStreams: e.HTTP2_MAX_CONCURRENT_STREAMS,
    tlsHandshakeTimeout: e.TLS_HANDSHAKE_TIMEOUT_MS,
    /** 0 = no cap. */
    maxConnections: e.MAX_CONNECTIONS,
    /** Per client address (IPv6: per /64); 0 = no cap. */
    maxConnectionsPerIp: e.MAX_CONNECTIONS_PER_IP
  }
}))

// ---------------------------------------------------------------------------------------------------
// Edge policies: CORS, load shedding, rate limiting.

const cors = section({
  CORS_ORIGINS: env(Type.String({ default: '', pattern: '^(|https?://[^\\s,/]+(,\\s*https?://[^\\s,/]+)*)$' }),
    'comma-separated origins like https://app.example.com (scheme://host[:port], no path)')
}, (e) => ({ cors: { origins: e.CORS_ORIGINS.split(',').map((o) => o.trim()).filter((o) => o !== '') } }))

const loadShedding = section({
  // Load shedding (edge/load-shedding.ts): past a limit, requests get 503 + Retry-After. 0 = check off.
  // A 1 s mean event-loop delay is far above GC pauses and TLS handshakes: requests are queueing.
  SHED_MAX_EVENT_LOOP_DELAY_MS: int(0, 60_000, 1000, 'milliseconds, 0–60000 (0 = off)'),
  // Memory limits depend on the container the service runs in: off until the deployment sets them.
  SHED_MAX_HEAP_USED_BYTES: int(0, Number.MAX_SAFE_INTEGER, 0, 'bytes (0 = off)'),
  SHED_MAX_RSS_BYTES: int(0, Number.MAX_SAFE_INTEGER, 0, 'bytes (0 = off)')
}, (e) => ({
  /** Load-shedding limits; 0 turns a check off. */
  loadShedding: { maxEventLoopDelayMs: e.SHED_MAX_EVENT_LOOP_DELAY_MS, maxHeapUsedBytes: e.SHED_MAX_HEAP_USED_BYTES, maxRssBytes: e.SHED_MAX_RSS_BYTES }
}))

const rateLimit = section({
  RATE_LIMIT_MAX: int(1, 1_000_000, 300, 'a positive integer'),
  RATE_LIMIT_WINDOW_MS: int(1000, 86_400_000, 60_000, 'milliseconds, 1000–86400000'),
  RATE_LIMIT_FAIL: oneOf(['open', 'closed'], 'open')
}, (e) => ({
  rateLimit: { max: e.RATE_LIMIT_MAX, windowMs: e.RATE_LIMIT_WINDOW_MS, failOpen: e.RATE_LIMIT_FAIL === 'open' }
}))

// ---------------------------------------------------------------------------------------------------
// Authentication: exactly one way to verify tokens (a generated development secret outside production).

const auth = section({
  JWT_SECRET: Type.Optional(env(Type.String({ minLength: 32 }), 'a secret of at least 32 characters', { secret: true })),
  JWT_PUBLIC_KEY_FILE: optionalString('a path to a readable PEM public key (RSA, EC or Ed25519)'),
  JWKS_URL: optionalUrl('an http(s) URL of a JWKS document'),
  JWT_ISSUER: optionalString('the expected iss claim'),
  JWT_AUDIENCE: optionalString('the expected aud claim'),
  JWT_CLOCK_TOLERANCE_S: int(0, 300, 5, 'seconds of clock skew tolerated, 0–300'),
  // Invalid tokens one client IP may present per minute before its token attempts get 429: far below
  // the general budget, since a stream of bad tokens is guessing or a broken client, never normal use.
  AUTH_FAILURE_LIMIT: int(1, 100_000, 20, 'invalid tokens per client IP per minute, 1–100000')
}, (e) => ({
  auth: {
    secret: e.JWT_SECRET,
    publicKeyFile: e.JWT_PUBLIC_KEY_FILE,
    jwksUrl: e.JWKS_URL,
    issuer: e.JWT_ISSUER,
    audience: e.JWT_AUDIENCE,
    clockToleranceSec: e.JWT_CLOCK_TOLERANCE_S,
    /** Invalid tokens per client IP per minute before 429. */
    failureLimit: e.AUTH_FAILURE_LIMIT
  }
}), (e, all) => {
  readable('JWT_PUBLIC_KEY_FILE', e.JWT_PUBLIC_KEY_FILE)
  const authModes = [e.JWT_SECRET, e.JWT_PUBLIC_KEY_FILE, e.JWKS_URL].filter((v) => v !== undefined)
  if (authModes.length > 1) {
    throw new ConfigError('JWT_SECRET', 'is set together with another verification mode', 'exactly one of JWT_SECRET, JWT_PUBLIC_KEY_FILE, JWKS_URL')
  }
  if (all.NODE_ENV === 'production' && authModes.length === 0) {
    throw new ConfigError('JWT_SECRET', 'is missing in production (no generated development secret there)', 'one of JWT_SECRET, JWT_PUBLIC_KEY_FILE, JWKS_URL')
  }
})

// ---------------------------------------------------------------------------------------------------
// Shared state: Redis (rate-limit counters, rooms across instances).

const stores = section({
  REDIS_URL: Type.Optional(env(Type.String({ pattern: '^rediss?://[^\\s]+$' }), 'a redis:// or rediss:// URL', { url: true }))
}, (e) => ({ redisUrl: e.REDIS_URL }))

// ---------------------------------------------------------------------------------------------------
// The resources' database (core/database.ts): PostgreSQL with DATABASE_URL, else the embedded SQLite file.

const database = section({
  // A secret as a whole: its password may sit in the authority or in a query parameter.
  DATABASE_URL: Type.Optional(env(Type.String({ pattern: '^postgres(ql)?://[^\\s]+$' }), 'a postgres:// or postgresql:// URL', { url: true, secret: true })),
  DATABASE_FILE: env(Type.String({ minLength: 1, default: 'data/keel.db' }), 'a file path or :memory:'),
  // Connections per instance: PostgreSQL's max_connections (100 by default) is shared by every instance
  // and tool, so instances × DATABASE_POOL_MAX must stay below it. A request holds one for a statement.
  DATABASE_POOL_MAX: int(1, 1000, 10, 'connections, 1–1000'),
  // An item query takes milliseconds; 5 s means the database is sick, and the request gets 503 instead of waiting.
  DATABASE_STATEMENT_TIMEOUT_MS: int(100, 600_000, 5000, 'milliseconds, 100–600000'),
  // Time to get a connection, queueing for a free one in the pool included: past it, 503.
  DATABASE_CONNECT_TIMEOUT_MS: int(100, 60_000, 2000, 'milliseconds, 100–60000')
}, (e) => ({
  database: {
    /** PostgreSQL when set (a secret: never logged); else SQLite in `file`. */
    url: e.DATABASE_URL,
    file: e.DATABASE_FILE,
    poolMax: e.DATABASE_POOL_MAX,
    statementTimeoutMs: e.DATABASE_STATEMENT_TIMEOUT_MS,
    connectTimeoutMs: e.DATABASE_CONNECT_TIMEOUT_MS
  }
}))

// ---------------------------------------------------------------------------------------------------
// Realtime: WebSocket (/ws) and SSE (/sse) sessions on the room hub.

const realtime = section({
  // 64 KiB frames: JSON events are small; a bigger frame is closed with 1009.
  WS_MAX_PAYLOAD_BYTES: int(1024, 16 * 1024 * 1024, 64 * 1024, 'bytes, 1024–16777216'),
  // 30 s pings keep idle connections alive through proxies and NATs that drop them after 60 s.
  WS_PING_INTERVAL_MS: int(100, 600_000, 30_000, 'milliseconds, 100–600000'),
  // A peer silent 10 s after a ping is dead (a phone that lost its network); must be below the interval.
  WS_PONG_TIMEOUT_MS: int(50, 600_000, 10_000, 'milliseconds, 50–600000, below WS_PING_INTERVAL_MS'),
  // 20 messages/s with bursts of 40 is far above a human (typing, clicks) and bounds a runaway client.
  WS_MESSAGE_RATE: int(1, 100_000, 20, 'messages per second, 1–100000'),
  WS_MESSAGE_BURST: int(1, 1_000_000, 40, 'messages, 1–1000000'),
  // After 20 refused messages without slowing down enough for the budget to refill, close with 4003.
  WS_RATE_CLOSE_AFTER: int(1, 100_000, 20, 'refused messages, 1–100000'),
  // 10 connections per user on one instance: a few tabs and devices, not a leaked reconnect loop.
  WS_MAX_CONNECTIONS_PER_USER: int(1, 100_000, 10, 'connections, 1–100000'),
  // 100 rooms per connection bounds what one client can make the server hold.
  WS_MAX_ROOMS_PER_CONNECTION: int(1, 100_000, 100, 'rooms, 1–100000'),
  // 1 MiB of unsent data per connection (Centrifugo's default client queue): thousands of small
  // messages of slack for a brief stall, while a client that stops reading costs at most that much.
  WS_MAX_BUFFERED_BYTES: int(16 * 1024, 1024 * 1024 * 1024, 1024 * 1024, 'bytes, 16384–1073741824'),
  // What a room without its own policy does with a consumer over that bound: close it (1008) or drop.
  WS_SLOW_CONSUMER: oneOf(['close', 'drop'], 'close'),
  // Time a peer gets to answer a close frame (shutdown, policy closes) before its socket is destroyed.
  WS_CLOSE_GRACE_MS: int(10, 60_000, 2000, 'milliseconds, 10–60000'),
  // SSE (GET /sse) comment heartbeat: 15 s stays under the 30–60 s idle timeouts of common proxies.
  SSE_HEARTBEAT_MS: int(100, 600_000, 15_000, 'milliseconds, 100–600000'),
  // Sequenced messages kept per room for `room:join {since}` and SSE Last-Event-ID replay: in memory
  // or a Redis Stream per room with REDIS_URL, within the bounds below. 100 covers a reconnect after
  // a short network loss in a busy room.
  ROOM_HISTORY_SIZE: int(0, 100_000, 100, 'messages, 0–100000 (0 = no history)'),
  // A message older than 10 minutes is not replayed: a client away longer refetches the room's state.
  ROOM_HISTORY_MAX_AGE_MS: int(1000, 7 * 24 * 3600 * 1000, 600_000, 'milliseconds, 1000–604800000'),
  // The history's total bounds, the same in memory and in Redis: at most 1000 rooms and 32 MiB of
  // message text in all (1000 busy rooms of 64 KiB messages must not cost gigabytes, nor one client
  // rotating through new rooms fill Redis). Past either, the least recently written rooms lose their
  // history first (a client resuming there learns `recovered: false` and refetches).
  ROOM_HISTORY_MAX_ROOMS: int(1, 1_000_000, 1000, 'rooms, 1–1000000'),
  ROOM_HISTORY_MAX_BYTES: int(1024, 16 * 1024 * 1024 * 1024, 32 * 1024 * 1024, 'bytes, 1024–17179869184'),
  // A message over 16 KiB is delivered but not kept for replay (a resume from before it is not
  // recovered): chat lines and state changes are far smaller, and a full room then holds at most
  // 1.6 MiB, so the total always keeps the history of 20 busy rooms or more.
  ROOM_HISTORY_MAX_MESSAGE_BYTES: int(64, 16 * 1024 * 1024, 16 * 1024, 'bytes, 64–16777216, at most ROOM_HISTORY_MAX_BYTES'),
  // A room:publish repeated with the same envelope id within 2 minutes (a retry after a lost ack) is
  // acknowledged again without publishing twice.
  WS_PUBLISH_DEDUP_MS: int(1000, 3600_000, 120_000, 'milliseconds, 1000–3600000'),
  // With REDIS_URL: a crashed instance's members leave every room's presence within 30 s.
  PRESENCE_TTL_MS: int(300, 3600_000, 30_000, 'milliseconds, 300–3600000')
}, (e) => ({
  ws: {
    maxPayloadBytes: e.WS_MAX_PAYLOAD_BYTES,
    pingIntervalMs: e.WS_PING_INTERVAL_MS,
    pongTimeoutMs: e.WS_PONG_TIMEOUT_MS,
    messageRate: e.WS_MESSAGE_RATE,
    messageBurst: e.WS_MESSAGE_BURST,
    rateCloseAfter: e.WS_RATE_CLOSE_AFTER,
    maxConnectionsPerUser: e.WS_MAX_CONNECTIONS_PER_USER,
    maxRoomsPerConnection: e.WS_MAX_ROOMS_PER_CONNECTION,
    maxBufferedBytes: e.WS_MAX_BUFFERED_BYTES,
    slowConsumer: e.WS_SLOW_CONSUMER,
    closeGraceMs: e.WS_CLOSE_GRACE_MS,
    historySize: e.ROOM_HISTORY_SIZE,
    historyMaxAgeMs: e.ROOM_HISTORY_MAX_AGE_MS,
    historyMaxRooms: e.ROOM_HISTORY_MAX_ROOMS,
    historyMaxBytes: e.ROOM_HISTORY_MAX_BYTES,
    historyMaxMessageBytes: e.ROOM_HISTORY_MAX_MESSAGE_BYTES,
    publishDedupMs: e.WS_PUBLISH_DEDUP_MS,
    presenceTtlMs: e.PRESENCE_TTL_MS
  },
  // SSE streams are bounded like WebSocket connections (the same variables), but configured on their own.
  sse: { heartbeatMs: e.SSE_HEARTBEAT_MS, maxBufferedBytes: e.WS_MAX_BUFFERED_BYTES, maxRooms: e.WS_MAX_ROOMS_PER_CONNECTION }
}), (e) => {
  if (e.WS_PONG_TIMEOUT_MS >= e.WS_PING_INTERVAL_MS) {
    throw new ConfigError('WS_PONG_TIMEOUT_MS', `(${e.WS_PONG_TIMEOUT_MS}) is not below WS_PING_INTERVAL_MS (${e.WS_PING_INTERVAL_MS})`, expectedOf('WS_PONG_TIMEOUT_MS'))
  }
  if (e.ROOM_HISTORY_MAX_MESSAGE_BYTES > e.ROOM_HISTORY_MAX_BYTES) {
    throw new ConfigError('ROOM_HISTORY_MAX_MESSAGE_BYTES', `(${e.ROOM_HISTORY_MAX_MESSAGE_BYTES}) is over ROOM_HISTORY_MAX_BYTES (${e.ROOM_HISTORY_MAX_BYTES})`, expectedOf('ROOM_HISTORY_MAX_MESSAGE_BYTES'))
  }
})

// ---------------------------------------------------------------------------------------------------
// Outbound calls (outbound/resilient-client.ts), one policy for every upstream.

const upstreams = section({
  UPSTREAM_QUOTES_URL: optionalUrl('an http(s) base URL'),
  // 3 s per call, retries included: a user waiting on Keel should not wait on a sick upstream longer.
  UPSTREAM_TIMEOUT_MS: int(50, 600_000, 3000, 'milliseconds, 50–600000'),
  // 1 s to connect: a healthy peer in the same region connects in single-digit ms.
  UPSTREAM_CONNECT_TIMEOUT_MS: int(10, 60_000, 1000, 'milliseconds, 10–60000'),
  // Per attempt: 2 s for the response headers, 2 s of silence mid-body; room for one retry inside 3 s.
  UPSTREAM_HEADERS_TIMEOUT_MS: int(10, 600_000, 2000, 'milliseconds, 10–600000'),
  UPSTREAM_BODY_TIMEOUT_MS: int(10, 600_000, 2000, 'milliseconds, 10–600000'),
  // Two retries cover a blip; the retry budget keeps them from multiplying load during an outage.
  UPSTREAM_MAX_RETRIES: int(0, 10, 2, 'an integer 0–10'),
  // Finagle's defaults: retries ≤ 20 % of calls plus 5 per second over a 10 s window (≈1.2× load in an outage).
  UPSTREAM_RETRY_BUDGET_PERCENT: int(0, 100, 20, 'a percentage 0–100'),
  UPSTREAM_RETRY_MIN_PER_SECOND: int(0, 10_000, 5, 'retries per second, 0–10000'),
  // Open when over half of at least 10 attempts in the last 10 s failed; probe again after 10 s.
  UPSTREAM_BREAKER_ERROR_PERCENT: int(1, 100, 50, 'a percentage 1–100'),
  UPSTREAM_BREAKER_VOLUME: int(1, 1_000_000, 10, 'attempts, 1–1000000'),
  UPSTREAM_BREAKER_RESET_MS: int(100, 600_000, 10_000, 'milliseconds, 100–600000'),
  // 64 concurrent calls (and pooled connections) per upstream, 64 more may queue; the rest get 503 at once.
  UPSTREAM_MAX_CONCURRENCY: int(1, 10_000, 64, 'an integer 1–10000'),
  UPSTREAM_MAX_QUEUE: int(0, 100_000, 64, 'an integer 0–100000')
}, (e) => ({
  upstreams: {
    quotesUrl: e.UPSTREAM_QUOTES_URL,
    policy: {
      timeoutMs: e.UPSTREAM_TIMEOUT_MS,
      connectTimeoutMs: e.UPSTREAM_CONNECT_TIMEOUT_MS,
      headersTimeoutMs: e.UPSTREAM_HEADERS_TIMEOUT_MS,
      bodyTimeoutMs: e.UPSTREAM_BODY_TIMEOUT_MS,
      maxRetries: e.UPSTREAM_MAX_RETRIES,
      /** Retries allowed per call, 0–1. */
      retryBudgetRatio: e.UPSTREAM_RETRY_BUDGET_PERCENT / 100,
      retryMinPerSecond: e.UPSTREAM_RETRY_MIN_PER_SECOND,
      breakerErrorPercent: e.UPSTREAM_BREAKER_ERROR_PERCENT,
      breakerVolume: e.UPSTREAM_BREAKER_VOLUME,
      breakerResetMs: e.UPSTREAM_BREAKER_RESET_MS,
      maxConcurrency: e.UPSTREAM_MAX_CONCURRENCY,
      maxQueue: e.UPSTREAM_MAX_QUEUE
    }
  }
}))

// ---------------------------------------------------------------------------------------------------
// Metrics (core/metrics-listener.ts): the Prometheus registry on a plain-HTTP listener of its own,
// never on the API port, where anyone could read route names, error rates and internals.

const metrics = section({
  // 9464: the port OpenTelemetry's Prometheus exporters use. 0 = any free port (the log says which).
  METRICS_PORT: env(Type.String({ pattern: '^(off|[0-9]{1,5})$', default: '9464' }), 'an integer 0–65535 (0 = any free port) or off'),
  // Loopback: only the machine itself scrapes. In a pod, 0.0.0.0 lets Prometheus reach the pod's address.
  METRICS_HOST: env(Type.String({ minLength: 1, pattern: '^[0-9A-Za-z.:\\-\\[\\]]+$', default: '127.0.0.1' }), 'a hostname or IP address')
}, (e) => ({
  metrics: {
    /** False with METRICS_PORT=off: the registry still counts, nothing serves it. */
    enabled: e.METRICS_PORT !== 'off',
    host: e.METRICS_HOST,
    port: e.METRICS_PORT === 'off' ? 0 : Number(e.METRICS_PORT)
  }
}), (e) => {
  if (e.METRICS_PORT !== 'off' && Number(e.METRICS_PORT) > 65535) {
    throw new ConfigError('METRICS_PORT', `has an invalid value ${shown('METRICS_PORT', e.METRICS_PORT)}`, expectedOf('METRICS_PORT'))
  }
})

// ---------------------------------------------------------------------------------------------------
// Tracing (telemetry/register.ts), by the standard OpenTelemetry variables. Off until an endpoint is set.

// The resource's default service name and version: the package's own.
const PACKAGE = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { name: string, version: string }
// `key=value` pairs separated by commas, values percent-encoded (the OTLP headers and resource attributes form).
const KEY_VALUE_LIST = '^\\s*[^\\s=,]+\\s*=[^,]*(,\\s*[^\\s=,]+\\s*=[^,]*)*$'
// Samplers the SDK in use implements (jaeger_remote and xray need packages Keel does not ship).
const SAMPLERS = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'] as const

/** `k1=v1,k2=v2` with percent-decoded values; a bad encoding names the variable, never the value. */
function parseKeyValues (variable: string, text: string | undefined): Record<string, string> {
  const pairs: Record<string, string> = {}
  if (text === undefined) return pairs
  for (const entry of text.split(',')) {
    const at = entry.indexOf('=')
    const key = entry.slice(0, at).trim()
    try {
      pairs[key] = decodeURIComponent(entry.slice(at + 1).trim())
    } catch {
      throw new ConfigError(variable, `has a value that is not percent-encoded for key "${key.slice(0, 64)}"`, expectedOf(variable))
    }
  }
  return pairs
}

/** The traces URL: the signal's own endpoint as given, or the general endpoint with `/v1/traces` appended. */
function tracesUrl (general: string | undefined, traces: string | undefined): string | undefined {
  if (traces !== undefined) return traces
  return general === undefined ? undefined : `${general.replace(/\/+$/, '')}/v1/traces`
}

const otel = section({
  OTEL_SDK_DISABLED: env(Type.Union([Type.Literal('true'), Type.Literal('false')], { default: 'false' }), 'true or false'),
  OTEL_EXPORTER_OTLP_ENDPOINT: optionalUrl('an http(s) URL of an OTLP/HTTP collector (/v1/traces is appended)'),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: optionalUrl('an http(s) URL receiving OTLP/HTTP traces, used as is'),
  // The OTLP/HTTP JSON encoding is the one exporter installed; http/protobuf and grpc need other packages.
  OTEL_EXPORTER_OTLP_PROTOCOL: oneOf(['http/json'], 'http/json'),
  // Collector credentials (an API key header): a secret, never echoed.
  OTEL_EXPORTER_OTLP_HEADERS: Type.Optional(env(Type.String({ pattern: KEY_VALUE_LIST }), 'comma-separated name=value pairs, values percent-encoded', { secret: true })),
  OTEL_SERVICE_NAME: env(Type.String({ minLength: 1, maxLength: 255, default: PACKAGE.name }), 'a service name, 1–255 characters'),
  OTEL_TRACES_SAMPLER: oneOf([...SAMPLERS], 'parentbased_always_on'),
  OTEL_TRACES_SAMPLER_ARG: env(Type.Number({ minimum: 0, maximum: 1, default: 1 }), 'a number 0–1, the fraction of traces sampled by the traceidratio samplers'),
  OTEL_RESOURCE_ATTRIBUTES: Type.Optional(env(Type.String({ pattern: KEY_VALUE_LIST }), 'comma-separated key=value pairs, values percent-encoded')),
  // Spans leave in batches at most 5 s old (the SDK's default): late enough to batch, soon enough to look.
  OTEL_BSP_SCHEDULE_DELAY: int(10, 600_000, 5000, 'milliseconds, 10–600000')
}, (e) => {
  const url = tracesUrl(e.OTEL_EXPORTER_OTLP_ENDPOINT, e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
  return {
    otel: {
      /** Tracing runs only with an endpoint and without OTEL_SDK_DISABLED=true; otherwise no SDK is loaded. */
      enabled: url !== undefined && e.OTEL_SDK_DISABLED === 'false',
      tracesUrl: url,
      protocol: e.OTEL_EXPORTER_OTLP_PROTOCOL,
      /** Sent with every export (a secret: never logged). */
      headers: parseKeyValues('OTEL_EXPORTER_OTLP_HEADERS', e.OTEL_EXPORTER_OTLP_HEADERS),
      serviceName: e.OTEL_SERVICE_NAME,
      serviceVersion: PACKAGE.version,
      sampler: e.OTEL_TRACES_SAMPLER,
      /** The traceidratio samplers' fraction. */
      samplerRatio: e.OTEL_TRACES_SAMPLER_ARG,
      resourceAttributes: parseKeyValues('OTEL_RESOURCE_ATTRIBUTES', e.OTEL_RESOURCE_ATTRIBUTES),
      exportDelayMs: e.OTEL_BSP_SCHEDULE_DELAY
    }
  }
})

// ---------------------------------------------------------------------------------------------------
// Assembly. A new section is declared above and added to this list; nothing else changes.

const SECTIONS = [server, tls, http, cors, loadShedding, rateLimit, auth, stores, database, realtime, upstreams, metrics, otel] as const

type UnionToIntersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void ? I : never
type Simplify<T> = { [K in keyof T]: T[K] } & {}
export type Config = Simplify<UnionToIntersection<ReturnType<typeof SECTIONS[number]['map']>>>
/** How every upstream client behaves (outbound/plugin.ts turns it into client options). */
export type UpstreamPolicy = Config['upstreams']['policy']
/** Where the resources' data lives (core/database.ts opens it). */
export type DatabaseConfig = Config['database']
/** How traces are exported (telemetry/tracing.ts starts the SDK with it). */
export type TelemetryConfig = Config['otel']

export const EnvSchema = Type.Object(Object.assign({}, ...SECTIONS.map((s) => s.vars)) as TProperties)

const metaOf = (variable: string): VariableMeta | undefined =>
  (EnvSchema.properties as unknown as Record<string, VariableMeta | undefined>)[variable]
const expectedOf = (variable: string): string => metaOf(variable)?.expected ?? 'a valid value'

/** What an error line may say of a value: nothing for a secret, no credentials inside a URL. */
function shown (variable: string, value: unknown): string {
  if (metaOf(variable)?.secret === true) return '(value not shown: it is a secret)'
  return JSON.stringify(String(value).replace(/\/\/[^/@\s]*@/g, '//[credentials hidden]@'))
}

type Source = Record<string, string | undefined>

function readable (variable: string, path: string | undefined): void {
  if (path === undefined) return
  try {
    accessSync(path, fsConstants.R_OK)
  } catch {
    throw new ConfigError(variable, `"${path}" is not a readable file`, expectedOf(variable))
  }
}

/** Reads `.env` from the working directory under `source`: the environment keeps precedence. */
function withDotEnv (source: Source, cwd: string): Source {
  const file = `${cwd}/.env`
  if (!existsSync(file)) return source
  return { ...parseEnv(readFileSync(file, 'utf8')), ...source }
}

/** The variables Keel knows, as given (empty means unset, except for CORS_ORIGINS where it means none). */
function knownVariables (all: Source): Record<string, unknown> {
  const raw: Record<string, unknown> = {}
  for (const key of Object.keys(EnvSchema.properties)) {
    const value = all[key]
    if (value !== undefined && value !== '') raw[key] = value
    else if (value === '' && key === 'CORS_ORIGINS') raw[key] = value
  }
  // TypeBox's Convert truncates "1.5" to 1 for integers; an operator who wrote 1.5 meant something else.
  for (const [key, value] of Object.entries(raw)) {
    const schema = (EnvSchema.properties as unknown as Record<string, { type?: string }>)[key]
    if (schema?.type === 'integer' && !/^-?\d+$/.test(String(value))) {
      throw new ConfigError(key, `has an invalid value ${shown(key, value)}`, expectedOf(key))
    }
  }
  return raw
}

/** Builds the typed configuration from an environment; throws `ConfigError` on the first bad value. */
export function loadConfig (source: Source = process.env, cwd: string = process.cwd()): Config {
  const raw = knownVariables(withDotEnv(source, cwd))
  const e = Value.Default(EnvSchema, Value.Convert(EnvSchema, raw)) as Record<string, unknown>
  const first = Value.Errors(EnvSchema, e).First()
  if (first !== undefined) {
    const variable = first.path.replace(/^\//, '').split('/')[0]!
    const given = raw[variable]
    throw new ConfigError(variable, given === undefined ? 'is missing' : `has an invalid value ${shown(variable, given)}`, expectedOf(variable))
  }
  for (const [variable, value] of Object.entries(raw)) {
    // The patterns only check the scheme; a URL that does not parse (a port of 99999) fails here, named.
    if (metaOf(variable)?.url === true && !URL.canParse(String(value))) {
      throw new ConfigError(variable, `is not a valid URL ${shown(variable, value)}`, expectedOf(variable))
    }
  }
  const config: Record<string, unknown> = {}
  for (const s of SECTIONS as unknown as ReadonlyArray<Section<TProperties, object>>) {
    s.check?.(e as Static<TObject<TProperties>>, e)
    Object.assign(config, s.map(e as Static<TObject<TProperties>>, { cwd }))
  }
  return config as Config
}
