// The one token verifier: the verification mode config chose (HS256 secret, a public key file, a JWKS
// endpoint, or the generated development secret), @fastify/jwt (fast-jwt) with its algorithms, issuer
// and audience pinned, and the mapping of every failure to a 401 with a client-safe reason. Never
// logs a token or a key.

import { createPublicKey, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import fastifyJwt, { type FastifyJWTOptions } from '@fastify/jwt'
import { TokenError, type Algorithm, type DecodedJwt } from 'fast-jwt'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { ConfigError, type Config } from '../core/config.ts'
import { algorithmForKey, invalidToken, userFromClaims, type AuthUser } from './access-token.ts'
import { createJwksKeys, type JwksOptions } from './jwks-keys.ts'
import { ensureDevJwtSecret } from './dev-secret.ts'
import { isPlausibleToken, type ScreenRules } from './token-screen.ts'

export interface VerifierOptions {
  auth: Config['auth']
  env: Config['env']
  /** Where the development secret lives when no verification mode is configured. */
  certsDir: string
  /** JWKS fetch tuning (interval, TTL, timeout); the URL comes from `auth.jwksUrl`. */
  jwks?: Omit<JwksOptions, 'url'>
}

export interface TokenVerifier {
  /** Resolves to the token's user or throws a 401 `AppError` with an RFC 6750 challenge. */
  verify: (token: string) => Promise<AuthUser>
  /** False when the token certainly cannot verify, judged without a signature check. */
  plausible: (token: string, nowMs: number) => boolean
}

// Far above any real JWT (a few hundred bytes to a few KiB), far below what would cost real work.
const MAX_TOKEN_LENGTH = 8192

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
function verificationFor (options: VerifierOptions, log: FastifyBaseLogger): Verification {
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

/** Registers @fastify/jwt on `fastify` (its `fastify.jwt` is this verifier's only) and returns the verifier. */
export async function registerTokenVerifier (fastify: FastifyInstance, options: VerifierOptions): Promise<TokenVerifier> {
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
  const rules: ScreenRules = { algorithms: verification.algorithms, needsKid: options.auth.jwksUrl !== undefined, issuer, audience, toleranceSec }

  return {
    async verify (token) {
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
    },
    plausible: (token, nowMs) => token.length <= MAX_TOKEN_LENGTH && isPlausibleToken(token, rules, nowMs)
  }
}
