// Certificate rotation from a Kubernetes Secret volume (what cert-manager renews): the kubelet never
// rewrites tls.crt or tls.key; it writes a new timestamped directory and swaps the `..data` symlink
// that the files point through. The watcher must see that swap as a change of the pair.

import t from 'tap'
import { mkdirSync, writeFileSync, symlinkSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import { X509Certificate } from 'node:crypto'
import { createSelfSignedCertificate, type PemPair } from '../../core/dev-cert.ts'
import { listen, tempDir } from '../helpers/app.ts'
import { h1request } from '../helpers/http.ts'

const fingerprint = (pem: string): string => new X509Certificate(pem).fingerprint256

/** Lays out `dir` as the kubelet's atomic writer does: `..<version>/` holds the files, `..data` points at it. */
function writeSecretVolume (dir: string, version: string, pair: PemPair): void {
  const payload = join(dir, `..${version}`)
  mkdirSync(payload)
  writeFileSync(join(payload, 'tls.crt'), pair.cert)
  writeFileSync(join(payload, 'tls.key'), pair.key)
  symlinkSync(`..${version}`, join(dir, '..data_tmp'))
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'))
}

t.test('rotation: a renewed Kubernetes Secret volume (the ..data symlink swapped) is picked up without a signal', async (t) => {
  const dir = tempDir()
  const a = await createSelfSignedCertificate({ commonName: 'keel-a' })
  const b = await createSelfSignedCertificate({ commonName: 'keel-b' })
  writeSecretVolume(dir, 'v1', a)
  symlinkSync('..data/tls.crt', join(dir, 'tls.crt'))
  symlinkSync('..data/tls.key', join(dir, 'tls.key'))
  const { url, logs } = await listen(t, { TLS_CERT_FILE: join(dir, 'tls.crt'), TLS_KEY_FILE: join(dir, 'tls.key') }, tempDir())
  const ca = [a.cert, b.cert]
  t.equal((await h1request(`${url}/health/live`, { ca })).peerFingerprint, fingerprint(a.cert), 'serves A')

  writeSecretVolume(dir, 'v2', b)
  await logs.waitFor(/TLS certificate reloaded/, 10_000)
  t.equal((await h1request(`${url}/health/live`, { ca })).peerFingerprint, fingerprint(b.cert), 'a new connection presents B')
})
