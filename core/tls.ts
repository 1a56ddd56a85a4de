// TLS material for the HTTPS server: reads and checks a PEM pair (and the CA for mutual TLS), and the
// secure-context options a reload installs (TLS 1.3 only). ALPN (h2, then http/1.1) is set by the HTTP/2
// server itself (core/server-options.ts: allowHTTP1).

import { readFileSync } from 'node:fs'
import { createSecureContext, type SecureContextOptions } from 'node:tls'

export interface TlsFiles { certFile: string, keyFile: string, caFile?: string }
export interface TlsMaterial { cert: Buffer, key: Buffer, ca?: Buffer }

/**
 * Reads the files and proves they form a usable pair by building a secure context from them:
 * a corrupt file or a key that does not match the certificate throws here, not at handshake.
 */
export function loadTlsMaterial (files: TlsFiles): TlsMaterial {
  const material: TlsMaterial = {
    cert: readFileSync(files.certFile),
    key: readFileSync(files.keyFile),
    ca: files.caFile === undefined ? undefined : readFileSync(files.caFile)
  }
  createSecureContext(contextOptions(material))
  return material
}

export function contextOptions (m: TlsMaterial): SecureContextOptions {
  return { cert: m.cert, key: m.key, ca: m.ca, minVersion: 'TLSv1.3' }
}
