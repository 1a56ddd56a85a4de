// Access tokens as Keel understands them, free of Fastify: the verified claims → `AuthUser`
// mapping, scope parsing, the algorithm each key type pins, RFC 6750 challenges and their errors,
// and signing (for `npm run token` and tests). Never log a token or a key from here.

import type { KeyObject } from 'node:crypto'
import { createSigner } from 'fast-jwt'
import { AppError, ErrorCode } from '../core/errors.ts'

/** Who a verified token speaks for. `exp` is in seconds since the epoch (WebSockets close at it). */
export interface AuthUser {
  readonly sub: string
  readonly scopes: readonly string[]
  readonly exp: number
}

export const REALM = 'keel'

/** The only asymmetric algorithms Keel accepts, one per key type (see `algorithmForKey`). */
export type PublicKeyAlgorithm = 'RS256' | 'ES256' | 'EdDSA'

/** RSA keys below 2048 bits are factorable in practice; refuse them rather than trust them. */
const MIN_RSA_BITS = 2048

/**
 * The one algorithm a public key may verify: RSA → RS256, EC P-256 → ES256, Ed25519 → EdDSA.
 * Undefined for anything else (other curves, RSA-PSS-only keys, short RSA keys, secrets).
 */
export function algorithmForKey (key: KeyObject): PublicKeyAlgorithm | undefined {
  if (key.type !== 'public') return undefined
  const details = key.asymmetricKeyDetails ?? {}
  switch (key.asymmetricKeyType) {
    case 'rsa': return (details.modulusLength ?? 0) >= MIN_RSA_BITS ? 'RS256' : undefined
    case 'ec': return details.namedCurve === 'prime256v1' ? 'ES256' : undefined
    case 'ed25519': return 'EdDSA'
    default: return undefined
  }
}

function scopeList (value: unknown): string[] {
  if (typeof value === 'string') return value.split(' ').filter((s) => s !== '')
  if (Array.isArray(value)) return value.filter((s): s is string => typeof s === 'string' && s !== '')
  return []
}

/**
 * Scopes from `scope` (OAuth 2: space-separated) and `scp` (an array, or a space-separated string
 * as Entra ID sends it). A claim of any other shape grants nothing.
 */
export function parseScopes (claims: Record<string, unknown>): string[] {
  const scp = scopeList(claims.scp)
  const scope = scopeList(claims.scope)
  if (scp.length === 0) return scope
  if (scope.length === 0) return scp
  return [...new Set([...scope, ...scp])]
}

/** True when the user holds every one of `scopes`. */
export function hasScopes (user: AuthUser, scopes: readonly string[]): boolean {
  for (const scope of scopes) if (!user.scopes.includes(scope)) return false
  return true
}

export interface Challenge {
  error?: 'invalid_token' | 'insufficient_scope'
  description?: string
  scopes?: readonly string[]
}

/** An RFC 6750 `WWW-Authenticate` value. Descriptions are our own fixed texts, never token content. */
export function wwwAuthenticate (challenge: Challenge = {}): string {
  let value = `Bearer realm="${REALM}"`
  if (challenge.error !== undefined) value += `, error="${challenge.error}"`
  if (challenge.description !== undefined) value += `, error_description="${challenge.description.replaceAll('"', "'")}"`
  if (challenge.scopes !== undefined) value += `, scope="${challenge.scopes.join(' ')}"`
  return value
}

/** No token was sent: 401 with a bare challenge (RFC 6750 §3.1: no error code). */
export function missingToken (detail = 'this route needs an access token (Authorization: Bearer <token>)'): AppError {
  return new AppError(ErrorCode.UNAUTHORIZED, detail, { headers: { 'www-authenticate': wwwAuthenticate() } })
}

/** A token was sent and is unusable (malformed, expired, forged…): 401 `invalid_token`. */
export function invalidToken (description: string): AppError {
  return new AppError(ErrorCode.UNAUTHORIZED, description, {
    headers: { 'www-authenticate': wwwAuthenticate({ error: 'invalid_token', description }) }
  })
}

/** A valid token without the route's scopes: 403 `insufficient_scope` naming what is needed. */
export function insufficientScope (scopes: readonly string[]): AppError {
  return new AppError(ErrorCode.FORBIDDEN, `this route needs the scope${scopes.length === 1 ? '' : 's'} ${scopes.join(', ')}`, {
    headers: { 'www-authenticate': wwwAuthenticate({ error: 'insufficient_scope', scopes }) }
  })
}

/**
 * Turns verified claims into an `AuthUser`. The signature, `exp`, `nbf`, `iss` and `aud` were
 * checked by the verifier; this adds what it does not: a string `sub`, and an `iat` not in the future.
 */
export function userFromClaims (claims: Record<string, unknown>, nowSec: number, toleranceSec: number): AuthUser {
  const { sub, exp, iat } = claims
  if (typeof sub !== 'string' || sub === '') throw invalidToken('the access token has no subject (sub)')
  if (typeof exp !== 'number') throw invalidToken('the access token has no expiry (exp)')
  if (iat !== undefined && (typeof iat !== 'number' || iat > nowSec + toleranceSec)) {
    throw invalidToken('the access token was issued in the future (iat)')
  }
  return Object.freeze({ sub, scopes: Object.freeze(parseScopes(claims)), exp })
}

export interface TokenRequest {
  sub: string
  scopes?: readonly string[]
  ttlSec: number
  issuer?: string
  audience?: string
}

/** Signs an HS256 access token (the development secret or `JWT_SECRET`). */
export function signAccessToken (secret: string, request: TokenRequest): string {
  const sign = createSigner({
    key: secret,
    algorithm: 'HS256',
    expiresIn: request.ttlSec * 1000,
    ...(request.issuer === undefined ? {} : { iss: request.issuer }),
    ...(request.audience === undefined ? {} : { aud: request.audience })
  })
  const scopes = request.scopes ?? []
  return sign({ sub: request.sub, ...(scopes.length === 0 ? {} : { scope: scopes.join(' ') }) })
}
