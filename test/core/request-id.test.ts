// x-request-id: echoed when well-formed, replaced otherwise, on every response; carried by logs.

import t from 'tap'
import { build, listen } from '../helpers/app.ts'
import { h1request } from '../helpers/http.ts'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

t.test('a well-formed client id is echoed', async (t) => {
  const { app } = await build(t)
  const res = await app.inject({ url: '/health/live', headers: { 'x-request-id': 'abc-123.X_y:z' } })
  t.equal(res.headers['x-request-id'], 'abc-123.X_y:z')
})

t.test('a malformed id is replaced with a generated one', async (t) => {
  const { app } = await build(t)
  for (const bad of ['x'.repeat(300), 'has space', '<script>', '']) {
    const res = await app.inject({ url: '/health/live', headers: { 'x-request-id': bad } })
    t.match(res.headers['x-request-id'], UUID, `replaced: ${JSON.stringify(bad.slice(0, 20))}`)
  }
})

t.test('CR/LF in the id over a real socket never reaches a response header', async (t) => {
  const { url } = await listen(t, { TLS: 'off' })
  // Node's client refuses to send CR/LF in a header; a raw write is what an attacker would do.
  const { connect } = await import('node:net')
  const u = new URL(url)
  const socket = connect(Number(u.port), '127.0.0.1')
  socket.write('GET /health/live HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\rb\r\nConnection: close\r\n\r\n')
  let raw = ''
  for await (const chunk of socket) raw += chunk
  t.notMatch(raw, /x-request-id: a\rb/i)
  t.match(raw, /^HTTP\/1\.1 400/, 'the parser rejects the header outright')
})

t.test('errors carry the id too', async (t) => {
  const { app } = await build(t)
  const res = await app.inject({ url: '/missing', headers: { 'x-request-id': 'err-1' } })
  t.equal(res.statusCode, 404)
  t.equal(res.headers['x-request-id'], 'err-1')
})

t.test('log lines written during a request carry its id; authorization never appears in logs', async (t) => {
  const { app, logs } = await build(t, { LOG_LEVEL: 'trace' })
  await app.inject({ url: '/health/live?access_token=tok-in-query', headers: { 'x-request-id': 'log-1', authorization: 'Bearer super.secret.token', cookie: 'sid=cookie-secret' } })
  const lines = logs.lines().filter((l) => l.reqId === 'log-1')
  t.ok(lines.length >= 2, 'incoming and completed lines carry the id')
  const text = logs.text()
  t.notMatch(text, /super\.secret\.token/)
  t.notMatch(text, /cookie-secret/)
  t.notMatch(text, /tok-in-query/)
})

t.test('over real TLS sockets the id is on HTTP/1.1 responses', async (t) => {
  const { url, ca } = await listen(t)
  const res = await h1request(`${url}/health/live`, { ca, headers: { 'x-request-id': 'real-1' } })
  t.equal(res.headers['x-request-id'], 'real-1')
})
