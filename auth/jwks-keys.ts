// Signing keys from a JWKS endpoint, by `kid`, through get-jwks: cached per key, fetched with a
// timeout, and — the part get-jwks leaves to us — a kid never seen before may trigger a refetch
// at most once per interval, so a flood of invented kids cannot hammer the identity provider.

import { createPublicKey, type KeyObject } from 'node:crypto'
import buildGetJwks, { type JWK } from 'get-jwks'
import { Agent } from 'undici'
import { TokenError } from 'fast-jwt'
import { ConfigError } from '../core/config.ts'
import { algorithmForKey, type PublicKeyAlgorithm } from './access-token.ts'

export interface JwksOptions {
  /** The JWKS document, e.g. https://idp.example.com/.well-known/jwks.json */
  url: string
  /** Minimum time between refetches caused by unknown kids (after one that found nothing). */
  refetchIntervalMs?: number
  /** How long a fetched key is trusted before it is fetched again (stale copies serve while the provider is down). */
  cacheTtlMs?: number
  /** Connect, headers and body timeout of one fetch. */
  timeoutMs?: number
  /** Clock, for tests of the interval. */
  now?: () => number
}

export interface JwksKeys {
  /** The PEM that verifies a token with this header; rejects with a fast-jwt `TokenError`. */
  keyFor: (header: { kid?: unknown, alg?: unknown }) => Promise<string>
  close: () => Promise<void>
}

// jose's remote JWKS uses the same 30 s cooldown: long enough to absorb a flood, short enough
// that a genuine rotation seen during one is picked up half a minute later.
const DEFAULT_REFETCH_INTERVAL_MS = 30_000
// Keys are re-read every 10 minutes so a key the provider withdrew stops working soon after.
const DEFAULT_CACHE_TTL_MS = 600_000
const DEFAULT_TIMEOUT_MS = 5_000
// Kids remembered as real (get-jwks keeps at most 100 keys by default as well).
const MAX_KNOWN_KIDS = 100

interface PinnedKey { pem: string, alg: PublicKeyAlgorithm }

const rejectKey = (message: string) => new TokenError(TokenError.codes.keyFetchingError, message)

const EXPECTED_URL = 'an http(s) URL of a JWKS document, without credentials'

/** Splits the URL for get-jwks, which fetches `domain + jwksPath`. Errors name the variable, never the value. */
function splitUrl (url: string): { domain: string, jwksPath: string } {
  const u = URL.parse(url)
  if (u === null) throw new ConfigError('JWKS_URL', 'is not a valid URL', EXPECTED_URL)
  // fetch refuses a URL with credentials, and get-jwks has no other way to send them.
  if (u.username !== '' || u.password !== '') throw new ConfigError('JWKS_URL', 'carries credentials (user:password@), which cannot be sent', EXPECTED_URL)
  const jwksPath = `${u.pathname}${u.search}`.replace(/^\/+/, '')
  if (jwksPath === '') throw new ConfigError('JWKS_URL', 'names only a host', EXPECTED_URL)
  return { domain: `${u.origin}/`, jwksPath }
}

/** The JWK as a PEM plus the one algorithm it may verify; undefined for keys Keel does not accept. */
function pin (jwk: JWK): PinnedKey | undefined {
  if (jwk.use !== undefined && jwk.use !== 'sig') return undefined
  let key: KeyObject
  try {
    key = createPublicKey({ key: jwk as unknown as import('node:crypto').JsonWebKey, format: 'jwk' })
  } catch {
    return undefined
  }
  const alg = algorithmForKey(key)
  if (alg === undefined || (jwk.alg !== undefined && jwk.alg !== alg)) return undefined
  return { pem: key.export({ type: 'spki', format: 'pem' }).toString(), alg }
}

export function createJwksKeys (options: JwksOptions): JwksKeys {
  const now = options.now ?? Date.now
  const refetchIntervalMs = options.refetchIntervalMs ?? DEFAULT_REFETCH_INTERVAL_MS
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const { domain, jwksPath } = splitUrl(options.url)
  // Global fetch ignores get-jwks's `timeout`; an Agent with timeouts bounds every fetch.
  const dispatcher = new Agent({ connect: { timeout: timeoutMs }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs })
  const getJwks = buildGetJwks({
    ttl: options.cacheTtlMs ?? DEFAULT_CACHE_TTL_MS,
    jwksPath,
    // The domain is ours, never the token's `iss`: whitelist it so nothing else is ever fetched.
    issuersWhitelist: [domain],
    fetchOptions: { dispatcher } as NonNullable<Parameters<typeof buildGetJwks>[0]>['fetchOptions']
  })

  const known = new Set<string>()
  const inflight = new Map<string, Promise<JWK>>()
  const pinned = new WeakMap<JWK, PinnedKey | undefined>()
  let unknownKidsAllowedAt = 0

  function remember (kid: string): void {
    if (known.has(kid)) return
    if (known.size >= MAX_KNOWN_KIDS) known.delete(known.values().next().value!)
    known.add(kid)
  }

  /** A kid seen for the first time: one refetch, unless one already found nothing within the interval. */
  async function fetchUnknown (kid: string): Promise<JWK> {
    const pending = inflight.get(kid)
    if (pending !== undefined) return await pending
    if (now() < unknownKidsAllowedAt) throw rejectKey('unknown kid (refetch interval not over)')
    unknownKidsAllowedAt = now() + refetchIntervalMs
    // alg undefined: match by kid alone, so a forged `alg` cannot make a real kid look missing.
    const fetching = getJwks.getJwk({ domain, kid, alg: undefined as unknown as string })
    inflight.set(kid, fetching)
    try {
      const jwk = await fetching
      // A real key appeared (a rotation): the next new kid may fetch again at once.
      unknownKidsAllowedAt = 0
      remember(kid)
      return jwk
    } finally {
      inflight.delete(kid)
    }
  }

  async function jwkFor (kid: string): Promise<JWK> {
    if (!known.has(kid)) return await fetchUnknown(kid)
    try {
      // Cached, or refetched after its TTL (get-jwks serves the stale copy when that fails).
      return await getJwks.getJwk({ domain, kid, alg: undefined as unknown as string })
    } catch (err) {
      // Withdrawn by the provider: from now on the kid is unknown and goes through the interval.
      if ((err as { code?: string }).code === 'JWK_NOT_FOUND') known.delete(kid)
      throw err
    }
  }

  return {
    async keyFor (header) {
      const { kid, alg } = header
      if (typeof kid !== 'string' || kid === '') throw rejectKey('the token names no kid')
      const jwk = await jwkFor(kid)
      if (!pinned.has(jwk)) pinned.set(jwk, pin(jwk))
      const key = pinned.get(jwk)
      if (key === undefined) throw rejectKey('the JWKS key for this kid is of an unsupported type')
      if (alg !== key.alg) throw new TokenError(TokenError.codes.invalidAlgorithm, 'The token algorithm is invalid.')
      return key.pem
    },
    async close () {
      await dispatcher.close()
    }
  }
}
