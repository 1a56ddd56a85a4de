// The development HS256 secret: generated once into certs/jwt-dev-secret (mode 0600, git-ignored)
// and reused, so `npm start` and `npm run token` agree without setup. Never used in production
// (core/config.ts refuses to start there without JWT_SECRET, JWT_PUBLIC_KEY_FILE or JWKS_URL).

import { randomBytes } from 'node:crypto'
import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export const DEV_JWT_SECRET_FILE = 'jwt-dev-secret'

/** Same floor as JWT_SECRET: HS256 needs at least 256 bits of key. */
const MIN_LENGTH = 32

export interface DevJwtSecret { secret: string, file: string, generated: boolean }

function readSecret (file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/** Reads the secret under `certsDir`, creating it (48 random bytes, base64url) when absent. */
export function ensureDevJwtSecret (certsDir: string): DevJwtSecret {
  const file = join(certsDir, DEV_JWT_SECRET_FILE)
  const existing = readSecret(file)
  if (existing !== undefined) {
    if (existing.length < MIN_LENGTH) throw new Error(`${file} holds fewer than ${MIN_LENGTH} characters; delete it to generate a new one`)
    return { secret: existing, file, generated: false }
  }
  mkdirSync(certsDir, { recursive: true })
  const secret = randomBytes(48).toString('base64url')
  // Written aside, then linked into place: link() is atomic and fails when the name exists, so when
  // the server and `npm run token` start together one secret wins whole and both read it.
  const pending = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`
  writeFileSync(pending, `${secret}\n`, { mode: 0o600, flag: 'wx' })
  try {
    linkSync(pending, file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    return ensureDevJwtSecret(certsDir)
  } finally {
    unlinkSync(pending)
  }
  return { secret, file, generated: true }
}
