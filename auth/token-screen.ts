// A token's plausibility, judged without a signature check: it decodes, names an accepted algorithm
// (and a kid where keys come from a JWKS), and its claims could pass (sub, exp, nbf, iss, aud). This
// costs a base64 decode and two JSON.parse calls, far less than a signature check; it reads a subset
// of the verifier's rules the same way, so every token the verifier accepts passes it. The auth
// plugin screens only the tokens of clients over their invalid-token budget.

import { createDecoder } from 'fast-jwt'

export interface ScreenRules {
  algorithms: readonly string[]
  /** Keys are looked up by kid (JWKS): a token without one cannot verify. */
  needsKid: boolean
  issuer?: string
  audience?: string
  toleranceSec: number
}

const decode = createDecoder({ complete: true }) as (token: string) => { header: Record<string, unknown>, payload: Record<string, unknown>, signature: string }

function claimsCouldPass (payload: Record<string, unknown>, rules: ScreenRules, nowMs: number): boolean {
  const { sub, exp, nbf, iss, aud } = payload
  const toleranceMs = rules.toleranceSec * 1000
  if (typeof sub !== 'string' || sub === '') return false
  if (typeof exp !== 'number' || exp * 1000 + toleranceMs < nowMs) return false
  if (nbf !== undefined && (typeof nbf !== 'number' || nbf * 1000 - toleranceMs > nowMs)) return false
  if (rules.issuer !== undefined && iss !== rules.issuer) return false
  if (rules.audience !== undefined && aud !== rules.audience && !(Array.isArray(aud) && aud.includes(rules.audience))) return false
  return true
}

/** True when `token` may verify; false when it certainly cannot. */
export function isPlausibleToken (token: string, rules: ScreenRules, nowMs: number): boolean {
  let decoded
  try {
    decoded = decode(token)
  } catch {
    return false
  }
  const { header, payload, signature } = decoded
  if (signature === '' || typeof header.alg !== 'string' || !rules.algorithms.includes(header.alg)) return false
  if (rules.needsKid && (typeof header.kid !== 'string' || header.kid === '')) return false
  return claimsCouldPass(payload, rules, nowMs)
}
