// Certificate rotation without restart and mutual TLS, over real TLS sockets.

import t from 'tap'
import { writeFileSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import { X509Certificate } from 'node:crypto'
import { createSelfSignedCertificate, createCertificateAuthority, issueCertificate, type PemPair } from '../../core/dev-cert.ts'
import { listen, tempDir, spawnServer, waitListening } from '../helpers/app.ts'
import { h1request, h2request, h2session } from '../helpers/http.ts'

// Distinct subjects: a client trusting two self-signed certificates of one name picks one by name.
const fingerprint = (pem: string): string => new X509Certificate(pem).fingerprint256

function writePair (dir: string, pair: PemPair): { TLS_CERT_FILE: string, TLS_KEY_FILE: string } {
  // Write-then-rename, as deployment tools do, so the watcher never reads half a file.
  writeFileSync(join(dir, 'tmp-cert.pem'), pair.cert)
  writeFileSync(join(dir, 'tmp-key.pem'), pair.key)
  renameSync(join(dir, 'tmp-key.pem'), join(dir, 'key.pem'))
  renameSync(join(dir, 'tmp-cert.pem'), join(dir, 'cert.pem'))
  return { TLS_CERT_FILE: join(dir, 'cert.pem'), TLS_KEY_FILE: join(dir, 'key.pem') }
}

t.test('rotation: new connections get the new certificate, an open HTTP/2 session keeps working, a corrupt pair keeps the old one', async (t) => {
  const dir = tempDir()
  const a = await createSelfSignedCertificate({ commonName: 'keel-a' })
  const b = await createSelfSignedCertificate({ commonName: 'keel-b' })
  const env = writePair(dir, a)
  const { url, app, logs } = await listen(t, env, dir)
  const ca = [a.cert, b.cert]

  const session = await h2session(url, { ca })
  t.teardown(() => session.close())
  t.equal((await h2request(session, '/health/live')).peerFingerprint, fingerprint(a.cert), 'serves A')

  writePair(dir, b)
  t.ok(app.reloadTls(), 'reload accepted the new pair')
  const fresh = await h1request(`${url}/health/live`, { ca })
  t.equal(fresh.peerFingerprint, fingerprint(b.cert), 'a new connection presents B')
  const old = await h2request(session, '/health/live')
  t.equal(old.status, 200, 'the open HTTP/2 session still answers')
  t.equal(old.peerFingerprint, fingerprint(a.cert), '…on the connection it started with')

  writeFileSync(join(dir, 'cert.pem'), '-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n')
  t.notOk(app.reloadTls(), 'a corrupt pair is refused')
  await logs.waitFor(/TLS reload failed; keeping the current certificate/)
  t.equal((await h1request(`${url}/health/live`, { ca })).peerFingerprint, fingerprint(b.cert), 'B is still served')
})

t.test('rotation: a changed file on disk is picked up without a signal', async (t) => {
  const dir = tempDir()
  const a = await createSelfSignedCertificate({ commonName: 'keel-a' })
  const b = await createSelfSignedCertificate({ commonName: 'keel-b' })
  const { url, logs } = await listen(t, writePair(dir, a), dir)
  writePair(dir, b)
  await logs.waitFor(/TLS certificate reloaded/)
  t.equal((await h1request(`${url}/health/live`, { ca: [a.cert, b.cert] })).peerFingerprint, fingerprint(b.cert))
})

t.test('rotation: SIGHUP to the real process reloads the pair', async (t) => {
  const dir = tempDir()
  const a = await createSelfSignedCertificate({ commonName: 'keel-a' })
  const b = await createSelfSignedCertificate({ commonName: 'keel-b' })
  // File watching off, so only the signal can explain the change.
  const server = await waitListening(spawnServer(t, { ...writePair(dir, a), TLS_WATCH_FILES: 'off' }, dir))
  writePair(dir, b)
  server.proc.kill('SIGHUP')
  const deadline = Date.now() + 5000
  let seen = ''
  while (Date.now() < deadline && seen !== fingerprint(b.cert)) {
    seen = (await h1request(`${server.url}/health/live`, { ca: [a.cert, b.cert] })).peerFingerprint ?? ''
  }
  t.equal(seen, fingerprint(b.cert), 'new connections present B')
  t.match(server.output(), /TLS certificate reloaded/)
  server.proc.kill('SIGTERM')
  t.equal(await server.exited, 0)
})

t.test('mutual TLS: a client without a certificate is refused, one signed by the CA gets through', async (t) => {
  const dir = tempDir()
  const ca = await createCertificateAuthority()
  const serverPair = await issueCertificate(ca)
  const client = await issueCertificate(ca, { commonName: 'client-1', client: true, dnsNames: [], ipAddresses: [] })
  const otherCa = await createCertificateAuthority('Someone Else')
  const stranger = await issueCertificate(otherCa, { commonName: 'stranger', client: true, dnsNames: [], ipAddresses: [] })
  writeFileSync(join(dir, 'ca.pem'), ca.cert)
  const { url } = await listen(t, { ...writePair(dir, serverPair), TLS_CA_FILE: join(dir, 'ca.pem'), TLS_CLIENT_AUTH: 'require' }, dir)

  await t.rejects(h1request(`${url}/health/live`, { ca: ca.cert }), 'no client certificate → refused')
  await t.rejects(h1request(`${url}/health/live`, { ca: ca.cert, cert: stranger.cert, key: stranger.key }), 'certificate from another CA → refused')
  const ok = await h1request(`${url}/health/live`, { ca: ca.cert, cert: client.cert, key: client.key })
  t.equal(ok.status, 200, 'certificate signed by the CA → served')
  const session = await h2session(url, { ca: ca.cert, cert: client.cert, key: client.key })
  t.teardown(() => session.close())
  t.equal((await h2request(session, '/health/live')).status, 200, 'and over HTTP/2')
})
