// TRUST_PROXY as a client behind a load balancer meets it: the forwarded address is believed only
// when the peer is a trusted proxy, and then it keys the rate limit and the logs.

import t from 'tap'
import { build } from '../helpers/app.ts'

async function clientIp (env: Record<string, string>, remoteAddress: string): Promise<{ ip: string, remaining: string }> {
  const { app } = await build(t, { RATE_LIMIT_MAX: '5', ...env })
  app.get('/whoami', { config: { auth: false } }, async (request) => ({ ip: request.ip }))
  const res = await app.inject({ url: '/whoami', remoteAddress, headers: { 'x-forwarded-for': '203.0.113.9' } })
  return { ip: res.json<{ ip: string }>().ip, remaining: String(res.headers['ratelimit-remaining']) }
}

t.test('without TRUST_PROXY, X-Forwarded-For is ignored: the client is the socket peer', async (t) => {
  t.equal((await clientIp({}, '10.1.2.3')).ip, '10.1.2.3')
})

t.test('a trusted proxy\'s X-Forwarded-For names the client', async (t) => {
  t.equal((await clientIp({ TRUST_PROXY: '10.0.0.0/8' }, '10.1.2.3')).ip, '203.0.113.9')
  t.equal((await clientIp({ TRUST_PROXY: '1' }, '10.1.2.3')).ip, '203.0.113.9')
})

t.test('a peer outside TRUST_PROXY cannot choose its address with X-Forwarded-For', async (t) => {
  t.equal((await clientIp({ TRUST_PROXY: '10.0.0.0/8' }, '198.51.100.4')).ip, '198.51.100.4')
})

t.test('behind a trusted proxy, clients get their own rate-limit budgets', async (t) => {
  const { app } = await build(t, { RATE_LIMIT_MAX: '2', TRUST_PROXY: '127.0.0.1' })
  app.get('/ping-budget', { config: { auth: false } }, async () => ({ ok: true }))
  const as = async (client: string) => await app.inject({ url: '/ping-budget', remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': client } })
  t.equal((await as('203.0.113.1')).statusCode, 200)
  t.equal((await as('203.0.113.1')).statusCode, 200)
  t.equal((await as('203.0.113.1')).statusCode, 429, 'one client used its budget')
  t.equal((await as('203.0.113.2')).statusCode, 200, 'another client behind the same proxy still has its own')
})
