// A client that goes away while its rooms are being joined (REDIS_URL, with Redis slowed by a relay the
// test holds) leaves nothing behind: no member, no presence renewed for it, no Redis subscription —
// over SSE (joined during the handshake) and over WebSocket (room:join in flight).

import t from 'tap'
import { request as httpsRequest } from 'node:https'
import { Redis } from 'ioredis'
import { listen, type Listening } from '../helpers/app.ts'
import { redisSkipReason, startRedis } from '../helpers/redis.ts'
import { startTcpRelay, type TcpRelay } from '../helpers/tcp-relay.ts'
import { testToken } from '../helpers/tokens.ts'
import { until } from '../helpers/until.ts'
import { openSocket } from '../helpers/ws.ts'

const skip = redisSkipReason()

interface Setup { server: Listening, relay: TcpRelay, redis: Redis }

/** A server whose Redis is reached through a relay the test can hold, and a direct Redis client to inspect. */
async function setup (t: Parameters<typeof listen>[0]): Promise<Setup> {
  const target = await startRedis(t)
  const relay = await startTcpRelay(t, target.url)
  const server = await listen(t, { REDIS_URL: relay.url })
  await until(async () => (await server.app.inject('/health/ready')).statusCode === 200, 5000, 'the hub\'s Redis connections')
  const redis = new Redis(target.url)
  t.teardown(() => redis.disconnect())
  return { server, relay, redis }
}

/** Resolves once the server has no client connection left (it has seen the client go). */
async function clientGone (server: Listening): Promise<void> {
  const connections = async () => await new Promise<number>((resolve, reject) => {
    server.app.server.getConnections((err, count) => { if (err === null) resolve(count); else reject(err) })
  })
  await until(async () => await connections() === 0, 3000, 'the server to see the client go')
}

/** Resolves once Redis holds no room subscription and no presence of the server, and the hub no session. */
async function nothingLeft ({ server, redis }: Setup): Promise<void> {
  let left = ''
  await until(async () => {
    const channels = await redis.pubsub('CHANNELS', 'keel:hub:room:*') as string[]
    const presence = await redis.keys('keel:presence:*')
    let entries = 0
    for (const key of presence) entries += await redis.zcard(key)
    left = JSON.stringify({ channels, presenceEntries: entries, sessions: server.app.roomHub.size })
    return channels.length === 0 && entries === 0 && server.app.roomHub.size === 0
  }, 3000, 'no room subscription, presence entry or session to be left').catch((err: Error) => { throw new Error(`${err.message}; left: ${left}`) })
}

t.test('an SSE client gone while its rooms are being joined leaves no member, presence or subscription behind', { skip }, async (t) => {
  const setupDone = await setup(t)
  const { server, relay } = setupDone
  relay.hold()
  const req = httpsRequest(`${server.url}/sse?room=ghost-a&room=ghost-b&room=ghost-c`, {
    ca: server.ca, servername: 'localhost', ALPNProtocols: ['http/1.1'], agent: false, headers: { authorization: `Bearer ${testToken({ sub: 'leaver' })}` }
  } as never)
  req.on('error', () => {})
  req.end()
  // The first room's subscription is on its way to Redis (held): the handshake is joining.
  await relay.sent(/keel:hub:room:ghost-a/)
  req.destroy()
  await clientGone(server)
  relay.release()
  await nothingLeft(setupDone)
  t.pass('nothing left behind')
})

t.test('a WebSocket closed while its room:join is in flight leaves no member, presence or subscription behind', { skip }, async (t) => {
  const setupDone = await setup(t)
  const { server, relay } = setupDone
  const socket = await openSocket(t, server, { sub: 'leaver' })
  relay.hold()
  socket.send({ event: 'room:join', data: { room: 'ghost-ws' }, id: 'j' })
  await relay.sent(/keel:hub:room:ghost-ws/)
  socket.ws.terminate()
  await clientGone(server)
  relay.release()
  await nothingLeft(setupDone)
  t.pass('nothing left behind')
})
