// What every benchmarked server serves, defined once so the peers answer byte-for-byte the same
// bodies on the same paths: a small JSON page, a ~10 KiB JSON page, and a per-user answer behind a JWT.
// Servers (bench/servers/*) and scenarios (bench/scenarios/*) import it; nothing here does I/O.

/** A small JSON GET: one item page, about 200 bytes (below every compression threshold). */
export const SMALL_PATH = '/bench/small'
/** A JSON page of about 10 KiB, for the compression scenario. */
export const LARGE_PATH = '/bench/large'
/** Answers `{ sub, scopes }` for a valid bearer token; 401 otherwise. */
export const ME_PATH = '/bench/me'

/** The browser origin the load sends and every server allows (CORS does real work on each request). */
export const BENCH_ORIGIN = 'https://app.example.com'
/** HS256 secret shared by Keel and the Express + jsonwebtoken peer (≥ 32 characters, as Keel requires). */
export const BENCH_JWT_SECRET = 'bench-secret-bench-secret-bench-secret-0001'
/** A rate-limit budget no benchmark reaches: the limiter counts every request but never answers 429. */
export const BENCH_RATE_LIMIT = { max: 1_000_000, windowMs: 1000 }

/** Responses carry `no-cache`, as Keel's public list does: caches keep them but revalidate (ETag). */
export const PUBLIC_CACHE_CONTROL = 'no-cache'
export const PRIVATE_CACHE_CONTROL = 'private, no-cache'

const TEN_KIB = 10 * 1024
const STAMP = '2026-01-01T00:00:00.000Z'

interface BenchItem { id: string, name: string, tags: string[], version: number, createdAt: string, updatedAt: string }
interface BenchPage { items: BenchItem[], nextCursor: string | null }

/** Deterministic, varied items (real pages are not one string repeated, which would compress unrealistically). */
function benchItem (n: number): BenchItem {
  const hex = (n * 2654435761 >>> 0).toString(16).padStart(8, '0')
  return {
    id: `${hex}-${(n * 40503 & 0xffff).toString(16).padStart(4, '0')}-4b1d-9e0a-${hex}${n.toString(16).padStart(4, '0')}`,
    name: `Item ${n}: ${['anchor', 'bollard', 'capstan', 'davit', 'ensign', 'fairlead', 'gunwale'][n % 7]} ${n * 7919 % 1000}`,
    tags: ['bench', ['red', 'green', 'blue'][n % 3]!, `batch-${n % 5}`],
    version: 1 + (n % 4),
    createdAt: STAMP,
    updatedAt: STAMP
  }
}

export const smallBody: BenchPage = { items: [benchItem(1)], nextCursor: null }

/** Items are added until the serialized page reaches 10 KiB. */
export const largeBody: BenchPage = (() => {
  const page: BenchPage = { items: [], nextCursor: 'bench-next-page' }
  while (JSON.stringify(page).length < TEN_KIB) page.items.push(benchItem(page.items.length + 1))
  return page
})()

/** The JSON schema of both pages; Fastify-based servers declare it so both serialize the same way. */
export const pageSchema = {
  type: 'object',
  properties: {
    items: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          id: { type: 'string' },
          name: { type: 'string' },
          tags: { type: 'array', items: { type: 'string' } },
          version: { type: 'integer' },
          createdAt: { type: 'string' },
          updatedAt: { type: 'string' }
        }
      }
    },
    nextCursor: { type: ['string', 'null'] }
  }
} as const

export const meSchema = {
  type: 'object',
  properties: { sub: { type: 'string' }, scopes: { type: 'array', items: { type: 'string' } } }
} as const
