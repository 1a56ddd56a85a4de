// The server as clients meet it on real sockets: TLS 1.3 only, HTTP/2 and HTTP/1.1 through ALPN on
// one port, cleartext with TLS=off.

import t from 'tap'
import { connect as tlsConnect } from 'node:tls'
import { once } from 'node:events'
import { listen } from '../helpers/app.ts'
import { h1request, h2request, h2session } from '../helpers/http.ts'

t.test('HTTP/2 over TLS 1.3 serves /health/live with ALPN h2', async (t) => {
  const { url, ca } = await listen(t)
  const session = await h2session(url, { ca })
  t.teardown(() => session.close())
  const res = await h2request(session, '/health/live')
  t.equal(res.status, 200)
  t.same(JSON.parse(res.body), { status: 'ok' })
  t.equal(res.alpn, 'h2')
  t.equal(res.tlsVersion, 'TLSv1.3')
})

t.test('HTTP/1.1 over TLS 1.3 is served on the same port', async (t) => {
  const { url, ca } = await listen(t)
  const res = await h1request(`${url}/health/live`, { ca })
  t.equal(res.status, 200)
  t.equal(res.alpn, 'http/1.1')
  t.equal(res.tlsVersion, 'TLSv1.3')
})

t.test('a TLS 1.2 client fails the handshake', async (t) => {
  const { port, ca } = await listen(t)
  const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost', maxVersion: 'TLSv1.2' })
  const [err] = await once(socket, 'error') as [NodeJS.ErrnoException]
  t.match(err.code, /ERR_SSL|ECONNRESET/, `handshake refused (${err.code})`)
  socket.destroy()
})

t.test('the development certificate names localhost, 127.0.0.1 and ::1 with an ECDSA P-256 key', async (t) => {
  const { port, ca } = await listen(t)
  const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost', ALPNProtocols: ['http/1.1'] })
  await once(socket, 'secureConnect')
  const cert = socket.getPeerCertificate()
  socket.destroy()
  t.match(cert.subjectaltname, /DNS:localhost/)
  t.match(cert.subjectaltname, /IP Address:127\.0\.0\.1/)
  t.match(cert.subjectaltname, /IP Address:0:0:0:0:0:0:0:1|IP Address:::1/)
  t.equal((cert as unknown as { asn1Curve?: string }).asn1Curve, 'prime256v1')
})

t.test('TLS=off serves cleartext HTTP/1.1', async (t) => {
  const { url } = await listen(t, { TLS: 'off' })
  t.match(url, /^http:\/\//)
  const res = await h1request(`${url}/health/live`)
  t.equal(res.status, 200)
})
