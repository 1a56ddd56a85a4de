// Drives Debian's Chromium (headless, through puppeteer-core) for tests that need a real browser: a fresh
// profile for each launch, nothing fetched but the test server, and that server's certificate trusted
// by its public-key pin alone (certificate errors are never ignored wholesale). Closed when the test ends.

import { existsSync, rmSync } from 'node:fs'
import { createHash, X509Certificate } from 'node:crypto'
import puppeteer, { type Browser } from 'puppeteer-core'
import { tempDir } from './app.ts'

interface Teardown { teardown: (fn: () => unknown) => void }

export const CHROMIUM = '/usr/bin/chromium'
const LAUNCH_TIMEOUT_MS = 30_000

/** Why browser tests cannot run here, or false when they can. */
export function browserSkipReason (): string | false {
  return existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium)`
}

/** The base64 SHA-256 of a certificate's SubjectPublicKeyInfo: the form Chromium's SPKI allow-list takes. */
export function spkiPin (certificatePem: Buffer | string): string {
  const spki = new X509Certificate(certificatePem).publicKey.export({ type: 'spki', format: 'der' })
  return createHash('sha256').update(spki).digest('base64')
}

/** Headless Chromium trusting `trust` (a PEM certificate) by its key. */
export async function launchChromium (t: Teardown, trust: Buffer | string): Promise<Browser> {
  const profile = tempDir('keel-chromium-')
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Its own profile: the SPKI allow-list is honoured only with one.
    userDataDir: profile,
    timeout: LAUNCH_TIMEOUT_MS,
    args: [
      // Chromium's sandbox cannot start as root (CI containers).
      '--no-sandbox',
      '--disable-gpu',
      // HTTP/2 over TCP only, as the server speaks it; and no traffic of the browser's own.
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--ignore-certificate-errors-spki-list=${spkiPin(trust)}`
    ]
  })
  t.teardown(async () => {
    await browser.close()
    rmSync(profile, { recursive: true, force: true })
  })
  return browser
}
