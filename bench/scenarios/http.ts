// The HTTP scenarios (1–4): Keel against bare Fastify, raw node:http / node:http2 and an Express 5 stack
// with the equivalent middleware, each serving the same bodies (bench/lib/workload.ts). Keel is
// measured on routes where every edge policy it has applies; the probe line in each table's notes
// shows which policies' headers the measured responses actually carried.

import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import jwt from 'jsonwebtoken'
import { httpContender, type HttpContenderSpec } from '../lib/http-contender.ts'
import { findH2load, type HttpLoad } from '../lib/load.ts'
import { postgresContender, postgresMissing } from '../lib/postgres-contender.ts'
import { profileAgainst } from '../lib/profiling.ts'
import { BENCH_DIR } from '../lib/server-process.ts'
import { CPU_PER_OP, RATE, type MetricSpec, type Scenario } from '../lib/scenario.ts'
import { SYNC_COMPRESS_MAX_BYTES } from '../../edge/compress.ts'
import { BENCH_JWT_SECRET, BENCH_ORIGIN, LARGE_PATH, ME_PATH, SMALL_PATH } from '../lib/workload.ts'

/** What a browser sends: an Origin (CORS works on every request) and the encodings it accepts. */
const BROWSER = { origin: BENCH_ORIGIN, 'accept-encoding': 'gzip, deflate, br, zstd' }
// Enough concurrent connections to keep one server core saturated through the loopback round trips,
// few enough that the single-core load generator does not spend itself on connection bookkeeping.
const H1_CONNECTIONS = 50
// h2load: 10 TLS connections × 10 streams in flight (a few browsers' worth of multiplexed requests).
const H2_LOAD = { connections: 10, streams: 10 }

const H1_METRICS: MetricSpec[] = [
  { key: RATE, label: 'req/s', digits: 0 },
  { key: 'p50Ms', label: 'p50 ms', digits: 0 },
  { key: 'p99Ms', label: 'p99 ms', digits: 0 },
  { key: CPU_PER_OP, label: 'server CPU µs/req', digits: 1 }
]
const H2_METRICS: MetricSpec[] = [
  { key: RATE, label: 'req/s', digits: 0 },
  { key: 'meanMs', label: 'mean ms', digits: 1 },
  { key: CPU_PER_OP, label: 'server CPU µs/req', digits: 1 }
]

// The example resource behind the "Keel items" row: a checkout that removed it measures everything else.
const ITEMS_RESOURCE = resolve(BENCH_DIR, '..', 'resources', 'items')
const itemsAbsent = (): string | undefined =>
  existsSync(ITEMS_RESOURCE) ? undefined : 'the example resource (resources/items/) is not in this checkout'

const h1 = (path: string, headers: Record<string, string> = BROWSER): HttpLoad => ({ path, headers, connections: H1_CONNECTIONS })
const h2 = (path: string): HttpLoad => ({ path, headers: BROWSER, ...H2_LOAD })

const ITEMS_PAGE = '/api/v1/items?limit=1'
const keelEdge: HttpContenderSpec = { id: 'keel', label: 'Keel (full edge stack)', script: 'keel.ts', load: h1(SMALL_PATH) }
const bareFastify: HttpContenderSpec = { id: 'fastify', label: 'bare Fastify', script: 'fastify.ts', load: h1(SMALL_PATH) }
const nodeHttpFloor: HttpContenderSpec = { id: 'node-http', label: 'raw node:http, Keel\'s response (floor)', script: 'node-http-floor.ts', mirrors: keelEdge, load: h1(SMALL_PATH) }

/** The profiling pass when `subject` misses its goal against `baseline` (or `--profile` asked for it). */
function profileWhenShort (subject: HttpContenderSpec, baseline: HttpContenderSpec): Scenario['followUp'] {
  return async (result, settings) => {
    const goal = result.goals.find((g) => g.goal.contender === subject.id && g.goal.against === baseline.id)
    const short = goal !== undefined && !goal.met
    if (!short && !settings.profile) return []
    const why = short ? `goal missed by ${Math.round(goal.shortBy * 100)} %` : 'asked for with --profile'
    return profileAgainst(subject, baseline, settings, Math.max(settings.seconds * 2, 4), why)
  }
}

const edge: Scenario = {
  name: 'edge',
  number: '1',
  title: 'Small JSON GET through the full edge stack — HTTP/1.1 cleartext (TLS=off)',
  describe: [
    `\`GET ${SMALL_PATH}\`: a one-item page (~230 B JSON) with a response schema. Keel declares it like its public list ` +
    '(`auth: false`, `cache: { noCache: true, etag: \'computed\' }`, the global rate limit), built through `buildApp(loadConfig(…))` ' +
    'as production (NODE_ENV=production, LOG_LEVEL=warn: no per-request access log, like the peers; rate limit ' +
    '1,000,000/s so it counts every request and never answers 429).',
    `Requests carry \`Origin: ${BENCH_ORIGIN}\` (allowed by every CORS policy) and \`Accept-Encoding: ${BROWSER['accept-encoding']}\` (the body is under the 1 KiB threshold: negotiated, not compressed).`,
    '"Keel items" is the real route `GET /api/v1/items?limit=1` (same policies plus validation and a SQLite read): what a product route costs on top.',
    '"Keel items (PostgreSQL page)" is the same route with DATABASE_URL set: a local PostgreSQL (durability off, its CPU not in Keel\'s column), ' +
    'one pooled query per request; left out when PostgreSQL\'s server binaries are absent.',
    'Raw node:http (floor): a plain `node:http` server writing the response Keel writes — the headers of Keel\'s probe in the same ' +
    'order and the same body, with a fresh `x-request-id`, the ETag hashed from the serialized body, the length and the rate-limit ' +
    'count computed per request, and nothing else (the harness refuses to measure it unless its response is Keel\'s): the limit Keel ' +
    'could reach on this machine.',
    'Express 5 stack: helmet, cors, express-rate-limit, compression, built-in weak ETag, Cache-Control. Bare Fastify: the route alone.',
    `autocannon, ${H1_CONNECTIONS} connections, no pipelining.`
  ],
  contenders: [
    httpContender(keelEdge),
    httpContender({ id: 'keel-items', label: 'Keel items (SQLite page)', script: 'keel.ts', load: h1(ITEMS_PAGE), skip: itemsAbsent }),
    // Without the example resource there is no page to serve: the SQLite row says so, this one is left out.
    ...(postgresMissing() === undefined && itemsAbsent() === undefined
      ? [postgresContender({ id: 'keel-items-pg', label: 'Keel items (PostgreSQL page)', script: 'keel.ts', load: h1(ITEMS_PAGE) })]
      : []),
    httpContender(nodeHttpFloor),
    httpContender(bareFastify),
    httpContender({ id: 'express', label: 'Express 5 stack', script: 'express.ts', load: h1(SMALL_PATH) })
  ],
  baselines: ['node-http', 'fastify', 'express'],
  metrics: H1_METRICS,
  goals: [
    { contender: 'keel', against: 'fastify', atLeast: 0.75, text: 'full edge stack ≥ 0.75× bare Fastify (≈ 2× the naive composition)' },
    { contender: 'keel', against: 'express', atLeast: 2.5, text: 'full edge stack ≥ 2.5× the Express stack' }
  ],
  references: [
    'official plugins registered naively with defaults (helmet, cors, rate-limit, etag, compress): 0.39× bare Fastify, helmet the largest single cost (+46 % when removed; rate-limit +21 %, compress +17 %, etag +10 %, cors +7 %)',
    'Express 5 with the equivalent middleware: 0.31× bare Fastify',
    'bare Fastify ≈ 1.0× a raw node:http server writing its own (shorter) response'
  ],
  followUp: profileWhenShort(keelEdge, bareFastify)
}

const keelHttp2: HttpContenderSpec = { id: 'keel', label: 'Keel (full edge stack)', script: 'keel.ts', tls: true, load: h2(SMALL_PATH) }
const bareFastifyHttp2: HttpContenderSpec = { id: 'fastify', label: 'bare Fastify http2', script: 'fastify.ts', tls: true, load: h2(SMALL_PATH) }

const http2: Scenario = {
  name: 'http2',
  number: '2',
  title: 'Small JSON GET over HTTPS + HTTP/2 (TLS 1.3)',
  describe: [
    `\`GET ${SMALL_PATH}\` as in scenario 1, over TLS 1.3 + HTTP/2 (ALPN h2; every server also allows HTTP/1.1), self-signed P-256 certificate.`,
    'Keel is built with TLS=on exactly as `npm start` serves it. Bare Fastify: `http2: true` with the same TLS options. ' +
    'Raw node:http2: `createSecureServer` with the compatibility API `(req, res)`, which Fastify builds on.',
    `h2load, ${H2_LOAD.connections} connections × ${H2_LOAD.streams} concurrent streams, one thread; connections are set up at the start of each window.`
  ],
  skip: () => findH2load() === null ? 'h2load not found (Debian package nghttp2-client: `apt-get install nghttp2-client`)' : undefined,
  contenders: [
    httpContender(keelHttp2),
    httpContender(bareFastifyHttp2),
    httpContender({ id: 'node-http2', label: 'raw node:http2', script: 'node-http2.ts', tls: true, load: h2(SMALL_PATH) })
  ],
  baselines: ['fastify', 'node-http2'],
  metrics: H2_METRICS,
  goals: [{ contender: 'keel', against: 'fastify', atLeast: 0.7, text: 'full edge stack over HTTP/2 + TLS 1.3 ≥ 0.7× bare Fastify http2' }],
  followUp: profileWhenShort(keelHttp2, bareFastifyHttp2),
  references: [
    'bare Fastify http2: 0.87× raw node:http2; ≈ 0.97× the compatibility API, which is ~0.67× the raw stream API',
    'naive plugin stack over HTTP/2: 0.40–0.43× bare Fastify http2'
  ]
}

function compression (encoding: 'gzip' | 'br', part: string): Scenario {
  const load = h1(LARGE_PATH, { origin: BENCH_ORIGIN, 'accept-encoding': encoding })
  return {
    name: `compress-${encoding}`,
    number: `3${part}`,
    title: `10 KiB JSON response compressed with ${encoding} — HTTP/1.1 cleartext`,
    describe: [
      `\`GET ${LARGE_PATH}\`: a ${'~10 KiB'} JSON page, requested with \`Accept-Encoding: ${encoding}\` only.`,
      'Which compression path is measured is read off the response (notes below): @fastify/compress compresses bodies up to its ' +
      '`syncThreshold` in one synchronous call and sends them with a Content-Length; larger ones go through a zlib stream ' +
      `(no Content-Length). Keel sets the threshold explicitly to ${SYNC_COMPRESS_MAX_BYTES / 1024} KiB (edge/compress.ts), so ` +
      'a 10 KiB body takes the synchronous path pinned or not (the plugin\'s own default depends on the CPUs the process ' +
      'sees: 64 KiB on one, 8 KiB on two). Express\'s `compression` always streams. Both use their default levels (the probe ' +
      'shows the compressed sizes).',
      `autocannon, ${H1_CONNECTIONS} connections.`
    ],
    contenders: [
      httpContender({ id: 'keel', label: 'Keel (full edge stack)', script: 'keel.ts', load }),
      httpContender({ id: 'express', label: 'Express 5 stack', script: 'express.ts', load })
    ],
    baselines: ['express'],
    metrics: H1_METRICS,
    goals: [],
    references: ['Fastify stack ≈ 1.5× the Express stack on 10 KB compressed responses on the synchronous path; the stream path measured 0.5× the synchronous one']
  }
}

/** A token both Keel and the Express peer accept (HS256, shared secret), valid for the whole run. */
const benchToken = jwt.sign({ sub: 'bench-user', scope: 'items:read' }, BENCH_JWT_SECRET, { algorithm: 'HS256', expiresIn: '1h' })

const jwtScenario: Scenario = {
  name: 'jwt',
  number: '4',
  title: 'Authenticated GET (HS256 JWT verified on every request) — HTTP/1.1 cleartext',
  describe: [
    `\`GET ${ME_PATH}\` with \`Authorization: Bearer <HS256 token>\`, answering \`{ sub, scopes }\`. Keel: a route without \`config.auth\` ` +
    '(a valid token required), verified by auth/plugin.ts (@fastify/jwt / fast-jwt), rate-limited by subject. ' +
    'Express: the same middleware stack plus `jsonwebtoken.verify` with `algorithms: [\'HS256\']`.',
    `No verification cache on either side. autocannon, ${H1_CONNECTIONS} connections.`
  ],
  contenders: [
    httpContender({ id: 'keel', label: 'Keel (full edge stack)', script: 'keel.ts', load: h1(ME_PATH, { ...BROWSER, authorization: `Bearer ${benchToken}` }) }),
    httpContender({ id: 'express', label: 'Express 5 stack + jsonwebtoken', script: 'express.ts', load: h1(ME_PATH, { ...BROWSER, authorization: `Bearer ${benchToken}` }) })
  ],
  baselines: ['express'],
  metrics: H1_METRICS,
  goals: [],
  references: [
    'Fastify stack with a JWT route ≈ 1.49× the Express stack',
    'HS256 verification: fast-jwt ~74 µs CPU per request, jsonwebtoken ~167 µs'
  ]
}

export const httpScenarios: Scenario[] = [edge, http2, compression('gzip', 'a'), compression('br', 'b'), jwtScenario]
