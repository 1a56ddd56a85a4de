// `npm run token -- --sub ID [--scope a,b] [--ttl 15m]`: prints one access token on stdout that a
// server started from the same checkout and environment accepts (JWT_SECRET, or the development
// secret in certs/, with JWT_ISSUER/JWT_AUDIENCE when set). Any problem: one line on stderr, exit 1.

import { parseArgs } from 'node:util'
import { loadConfig, ConfigError } from '../core/config.ts'
import { signAccessToken } from '../auth/access-token.ts'
import { ensureDevJwtSecret } from '../auth/dev-secret.ts'

const USAGE = 'usage: npm run token -- --sub ID [--scope a,b] [--ttl 15m]'
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 }
// A development token should not outlive a working week; real tokens come from an identity provider.
const MAX_TTL_SEC = 7 * 86_400

class UsageError extends Error {}

function parseTtl (text: string): number {
  const m = /^(\d{1,7})([smhd])$/.exec(text)
  const seconds = m === null ? NaN : Number(m[1]) * UNIT_SECONDS[m[2]!]!
  if (!(seconds >= 1 && seconds <= MAX_TTL_SEC)) throw new UsageError(`--ttl "${text}" must be a duration like 30s, 15m, 2h or 1d, at most 7d`)
  return seconds
}

function parseScopes (text: string | undefined): string[] {
  if (text === undefined) return []
  const scopes = text.split(',').map((s) => s.trim()).filter((s) => s !== '')
  const bad = scopes.find((s) => !/^[\x21\x23-\x5B\x5D-\x7E]+$/.test(s))
  if (bad !== undefined) throw new UsageError(`--scope "${bad}" is not a valid scope (printable ASCII, no spaces, quotes or backslashes)`)
  return scopes
}

function token (): string {
  let values
  try {
    ({ values } = parseArgs({
      options: { sub: { type: 'string' }, scope: { type: 'string' }, ttl: { type: 'string', default: '15m' } },
      strict: true,
      allowPositionals: false
    }))
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]!)
  }
  if (values.sub === undefined || values.sub.trim() === '') throw new UsageError('--sub ID is required')
  const request = { sub: values.sub, scopes: parseScopes(values.scope), ttlSec: parseTtl(values.ttl) }

  const config = loadConfig()
  const { auth } = config
  if (auth.publicKeyFile !== undefined || auth.jwksUrl !== undefined) {
    const mode = auth.publicKeyFile !== undefined ? 'JWT_PUBLIC_KEY_FILE' : 'JWKS_URL'
    throw new Error(`this environment verifies tokens with ${mode}; only its identity provider can sign them (unset it to use the development secret)`)
  }
  const secret = auth.secret ?? ensureDevJwtSecret(config.certsDir).secret
  return signAccessToken(secret, { ...request, issuer: auth.issuer, audience: auth.audience })
}

try {
  process.stdout.write(`${token()}\n`)
} catch (err) {
  const message = err instanceof UsageError
    ? `${err.message} (${USAGE})`
    : err instanceof ConfigError ? err.message : `cannot sign a token: ${(err as Error).message}`
  process.stderr.write(`token: ${message.replaceAll('\n', ' ')}\n`)
  process.exitCode = 1
}
