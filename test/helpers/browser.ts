// Drives Debian's Chromium (headless, through puppeteer-core) for tests that need a real browser: a fresh
// profile for each launch, nothing fetched but the test server, and that server's certificate trusted
// by its public-key pin alone (certificate errors are never ignored wholesale). Closed when the test ends.
// Also serves the pages such a test loads, from an origin of their own.

import { existsSync, rmSync } from 'node:fs'
import { createHash, X509Certificate } from 'node:crypto'
import { once } from 'node:events'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { extname } from 'node:path'
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

const CONTENT_TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.ts': 'text/plain; charset=utf-8' }

/**
 * Serves `files` (path → content) over HTTPS on 127.0.0.1 with `tls`, as a site of its own would: its
 * origin is `https://127.0.0.1:<port>`. Anything else is a 404. Closed when the test ends.
 */
export async function servePage (t: Teardown, tls: { cert: Buffer, key: Buffer }, files: Record<string, string | Buffer>): Promise<{ origin: string }> {
  const server = createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
    const path = new URL(req.url ?? '/', 'https://page.test').pathname
    const body = files[path]
    if (body === undefined) {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'content-type': CONTENT_TYPES[extname(path)] ?? CONTENT_TYPES['.html']!, 'cache-control': 'no-store' }).end(body)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return { origin: `https://127.0.0.1:${(server.address() as AddressInfo).port}` }
}
