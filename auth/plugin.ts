// Authentication and authorization. Owns the one token verifier (`fastify.verifyAccessToken`), the
// request authenticator shared by HTTP, WebSocket and SSE (`fastify.authenticate`), the hook that
// enforces each route's `config.auth`, and a strict per-IP throttle on invalid tokens.
// Built on @fastify/jwt (fast-jwt), registered here because it is this plugin's verifier only.
// Tokens and keys are never logged; every verification failure is a 401, never a 500.

import { createPublicKey, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import fp from 'fastify-plugin'
import fastifyJwt, { type FastifyJWTOptions } from '@fastify/jwt'
import { TokenError, type Algorithm, type DecodedJwt } from 'fast-jwt'
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest, RouteOptions } from 'fastify'
import type { Config } from '../core/config.ts'
import { ConfigError } from '../core/config.ts'
import { AppError, ErrorCode } from '../core/errors.ts'
import { routeHooks, type RouteAuth } from '../core/route-config.ts'
import {
  algorithmForKey, hasScopes, insufficientScope, invalidToken, missingToken, userFromClaims, type AuthUser
} from './access-token.ts'
import { createJwksKeys, type JwksOptions } from './jwks-keys.ts'
import { ensureDevJwtSecret } from './dev-secret.ts'

export type { AuthUser } from './access-token.ts'

declare module '@fastify/jwt' {
  interface FastifyJWT {
    // `null` until a hook or `fastify.authenticate` sets it (public and optional routes).
    user: AuthUser
  }
}

export interface AuthenticateOptions {
  /** Accept `?access_token=` (browsers cannot set headers on WebSocket/EventSource). Only /ws and /sse. */
  allowQueryToken?: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Verifies a token; resolves to its user or throws a 401 `AppError` with an RFC 6750 challenge. */
    verifyAccessToken: (token: string) => Promise<AuthUser>
    /** Finds the request's token, verifies it and sets `request.user`; throws 401 (missing/invalid) or 429. */
    authenticate: (request: FastifyRequest, opts?: AuthenticateOptions) => Promise<AuthUser>
  }
}

export interface AuthPluginOptions {
  auth: Config['auth']
  env: Config['env']
  /** Where the development secret lives when no verification mode is configured. */
  certsDir: string
  /** JWKS fetch tuning (interval, TTL, timeout); the URL comes from `auth.jwksUrl`. */
  jwks?: Omit<JwksOptions, 'url'>
}

/**
 * What a route without `config.auth` gets: a valid token, no particular scope. Secure by default —
 * a forgotten declaration fails closed; public routes say `auth: false`.
 */
export const DEFAULT_ROUTE_AUTH: RouteAuth = { scopes: [] }

// Far above any real JWT (a few hundred bytes to a few KiB), far below what would cost real work.
const MAX_TOKEN_LENGTH = 8192
// RFC 6750 §2.1: `Bearer` + one b64token.
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i
const FAILURE_WINDOW_MS = 60_000
// Bounds the throttle's memory whatever the number of client addresses.
const MAX_THROTTLED_CLIENTS = 10_000

interface Verification {
  secret: FastifyJWTOptions['secret']
  algorithms: Algorithm[]
  close?: () => Promise<void>
}

function loadPublicKey (file: string): { pem: string, alg: Algorithm } {
  let key: KeyObject
  try {
    key = createPublicKey(readFileSync(file))
  } catch {
    throw new ConfigError('JWT_PUBLIC_KEY_FILE', `"${file}" does not hold a PEM public key`, 'a PEM public key (RSA ≥ 2048 bits, EC P-256 or Ed25519)')
  }
  const alg = algorithmForKey(key)
  if (alg === undefined) {
    throw new ConfigError('JWT_PUBLIC_KEY_FILE', `"${file}" holds an unsupported key`, 'an RSA (≥ 2048 bits), EC P-256 or Ed25519 public key')
  }
  return { pem: key.export({ type: 'spki', format: 'pem' }).toString(), alg }
}

/** The mode chosen by config, with its algorithm list pinned: HS256 for a secret, one per public key. */
function verificationFor (options: AuthPluginOptions, log: FastifyBaseLogger): Verification {
  const { auth } = options
  if (auth.secret !== undefined) return { secret: auth.secret, algorithms: ['HS256'] }
  if (auth.publicKeyFile !== undefined) {
    const { pem, alg } = loadPublicKey(auth.publicKeyFile)
    return { secret: { public: pem }, algorithms: [alg] }
  }
  if (auth.jwksUrl !== undefined) {
    const keys = createJwksKeys({ ...options.jwks, url: auth.jwksUrl })
    const keyFor = async (decoded: DecodedJwt) => await keys.keyFor(decoded.header)
    return { secret: { public: keyFor }, algorithms: ['RS256', 'ES256', 'EdDSA'], close: keys.close }
  }
  // core/config.ts already refuses this in production; the check stays next to the generator.
  if (options.env === 'production') throw new ConfigError('JWT_SECRET', 'is missing in production', 'one of JWT_SECRET, JWT_PUBLIC_KEY_FILE, JWKS_URL')
  const dev = ensureDevJwtSecret(options.certsDir)
  log.info({ file: dev.file }, dev.generated
    ? 'generated a development JWT secret (npm run token signs with it; set JWT_SECRET, JWT_PUBLIC_KEY_FILE or JWKS_URL in production)'
    : 'verifying tokens with the development JWT secret')
  return { secret: dev.secret, algorithms: ['HS256'] }
}

const codes = TokenError.codes
const TOKEN_ERROR_TEXT: Record<string, string> = {
  [codes.expired]: 'the access token has expired',
  [codes.inactive]: 'the access token is not valid yet (nbf)',
  [codes.invalidSignature]: 'the access token signature does not verify',
  [codes.invalidAlgorithm]: 'the access token algorithm is not accepted',
  [codes.invalidKey]: 'the access token algorithm does not match the key',
  [codes.missingSignature]: 'the access token is not signed',
  [codes.keyFetchingError]: 'no signing key is known for the access token (kid)',
  [codes.invalidClaimType]: 'the access token has a claim of the wrong type',
  [codes.invalidCritHeader]: 'the access token has an unsupported critical header'
}

/** A client-safe reason: our fixed texts, naming at most a registered claim. */
function describe (err: unknown): string {
  const code = (err as { code?: string }).code ?? ''
  if (code === codes.invalidClaimValue || code === codes.missingRequiredClaim) {
    const claim = /\b(iss|aud|exp)\b/.exec((err as Error).message)?.[1] ?? 'a claim'
    return code === codes.missingRequiredClaim ? `the access token has no ${claim} claim` : `the access token ${claim} is not accepted`
  }
  return TOKEN_ERROR_TEXT[code] ?? 'the access token is malformed'
}

/**
 * Invalid tokens per client IP in fixed one-minute windows. Entries are kept in creation order, which
 * is also expiry order, so pruning reads only the front of the map.
 */
class AuthFailureThrottle {
  readonly #counts = new Map<string, { count: number, resetAt: number }>()
  readonly #limit: number

  constructor (limit: number) {
    this.#limit = limit
  }

  /** Seconds the client must wait before presenting another token; 0 when it may. */
  retryAfterSec (ip: string, now: number): number {
    const entry = this.#counts.get(ip)
    if (entry === undefined || entry.resetAt <= now || entry.count < this.#limit) return 0
    return Math.ceil((entry.resetAt - now) / 1000)
  }

  /** Counts one failure; true when it is the one that reaches the limit. */
  record (ip: string, now: number): boolean {
    let entry = this.#counts.get(ip)
    if (entry === undefined || entry.resetAt <= now) {
      this.#counts.delete(ip)
      this.#prune(now)
      entry = { count: 0, resetAt: now + FAILURE_WINDOW_MS }
      this.#counts.set(ip, entry)
    }
    entry.count++
    return entry.count === this.#limit
  }

  #prune (now: number): void {
    for (const [ip, entry] of this.#counts) {
      if (entry.resetAt > now && this.#counts.size < MAX_THROTTLED_CLIENTS) return
      this.#counts.delete(ip)
    }
  }
}

function isRouteAuth (value: unknown): value is RouteAuth {
  if (value === false || value === 'optional') return true
  const scopes = (value as { scopes?: unknown } | null)?.scopes
  return Array.isArray(scopes) && scopes.every((s) => typeof s === 'string' && s !== '' && !/[\s"\\]/.test(s))
}

async function auth (fastify: FastifyInstance, options: AuthPluginOptions): Promise<void> {
  const verification = verificationFor(options, fastify.log)
  const toleranceSec = options.auth.clockToleranceSec
  const toleranceMs = toleranceSec * 1000
  const { issuer, audience } = options.auth

  await fastify.register(fastifyJwt, {
    secret: verification.secret,
    verify: {
      algorithms: verification.algorithms,
      // fast-jwt checks iss/aud only when present: require them whenever they are configured.
      requiredClaims: ['exp', ...(issuer === undefined ? [] : ['iss']), ...(audience === undefined ? [] : ['aud'])],
      clockTolerance: toleranceMs,
      ...(issuer === undefined ? {} : { allowedIss: issuer }),
      ...(audience === undefined ? {} : { allowedAud: audience }),
      // Verified tokens are cached (bounded, until exp or 10 min): a client's repeated token costs a
      // hash, not a signature check. Failures stay cached only within the clock tolerance, and not at
      // all when they may pass soon (unknown kid while the JWKS rotates, nbf about to arrive).
      cache: 1000,
      errorCacheTTL: (err: TokenError) => err.code === codes.keyFetchingError || err.code === codes.inactive ? -toleranceMs - 1 : 0
    }
  })
  if (verification.close !== undefined) fastify.addHook('onClose', verification.close)

  // The verifier's cache hands back the same claims object for a repeated token: map it once.
  const users = new WeakMap<object, AuthUser>()

  async function verifyAccessToken (token: string): Promise<AuthUser> {
    if (typeof token !== 'string' || token === '' || token.length > MAX_TOKEN_LENGTH) throw invalidToken('the access token is malformed')
    let claims: Record<string, unknown>
    try {
      claims = await fastify.jwt.verify<Record<string, unknown>>(token)
    } catch (err) {
      throw invalidToken(describe(err))
    }
    let user = users.get(claims)
    if (user === undefined) {
      user = userFromClaims(claims, Math.floor(Date.now() / 1000), toleranceSec)
      users.set(claims, user)
    }
    return user
  }

  const throttle = new AuthFailureThrottle(options.auth.failureLimit)

  /** The raw credential the client presented, if any: the Authorization header or (where allowed) the query. */
  function presented (request: FastifyRequest, allowQueryToken: boolean): { header?: string, query?: unknown } | undefined {
    const header = request.headers.authorization
    const query = allowQueryToken ? (request.query as Record<string, unknown> | undefined)?.access_token : undefined
    return header === undefined && query === undefined ? undefined : { header, query }
  }

  function tokenOf (credential: { header?: string, query?: unknown }): string {
    if (credential.header !== undefined && credential.query !== undefined) {
      throw invalidToken('send the access token once: in the Authorization header or in access_token, not both')
    }
    if (credential.header !== undefined) {
      const match = BEARER.exec(credential.header)
      if (match === null) throw invalidToken('the Authorization header must be "Bearer <token>"')
      return match[1]!
    }
    if (typeof credential.query !== 'string') throw invalidToken('access_token must be given once')
    return credential.query
  }

  async function authenticate (request: FastifyRequest, opts: AuthenticateOptions = {}): Promise<AuthUser> {
    const credential = presented(request, opts.allowQueryToken === true)
    if (credential === undefined) {
      const queryToken = (request.query as Record<string, unknown> | undefined)?.access_token
      throw missingToken(queryToken === undefined
        ? undefined
        : 'this route takes the access token in the Authorization header only (Bearer <token>), not in the query string')
    }
    const now = Date.now()
    const wait = throttle.retryAfterSec(request.ip, now)
    if (wait > 0) {
      // The contract's 429 shape: Retry-After plus the RateLimit-* headers, here for the strict budget.
      throw new AppError(ErrorCode.RATE_LIMITED, 'too many invalid access tokens from this client; retry later', {
        headers: { 'retry-after': String(wait), 'ratelimit-limit': String(options.auth.failureLimit), 'ratelimit-remaining': '0', 'ratelimit-reset': String(wait) }
      })
    }
    try {
      const user = await verifyAccessToken(tokenOf(credential))
      request.user = user
      return user
    } catch (err) {
      const reason = err instanceof AppError ? err.message : 'unexpected'
      request.log.debug({ reason }, 'access token rejected')
      if (throttle.record(request.ip, now)) {
        request.log.warn({ ip: request.ip, limit: options.auth.failureLimit }, 'too many invalid access tokens from one client; answering 429 for a minute')
      }
      throw err
    }
  }

  fastify.decorate('verifyAccessToken', verifyAccessToken)
  fastify.decorate('authenticate', authenticate)

  async function optionalToken (request: FastifyRequest): Promise<void> {
    if (presented(request, false) !== undefined) await authenticate(request)
  }

  function requireToken (scopes: readonly string[]) {
    return async function requireAccessToken (request: FastifyRequest): Promise<void> {
      const user = await authenticate(request)
      if (scopes.length > 0 && !hasScopes(user, scopes)) throw insufficientScope(scopes)
    }
  }
  const anyValidToken = requireToken([])

  // Each route's policy is read once, here; the request path runs only the hook it resolved to.
  // onRequest: before the body is read, and before the rate limiter's preHandler keys by request.user.
  fastify.addHook('onRoute', (route: RouteOptions) => {
    const declared = route.config?.auth
    const policy = declared === undefined ? DEFAULT_ROUTE_AUTH : declared
    if (!isRouteAuth(policy)) {
      throw new Error(`${String(route.method)} ${route.url}: config.auth must be false, 'optional' or { scopes: string[] } (scopes without spaces or quotes)`)
    }
    if (policy === false) return
    const hook = policy === 'optional' ? optionalToken : policy.scopes.length === 0 ? anyValidToken : requireToken([...policy.scopes])
    route.onRequest = [hook, ...routeHooks(route.onRequest)] as RouteOptions['onRequest']
  })
}

export default fp(auth, { name: 'keel-auth', dependencies: ['keel-errors'] })
