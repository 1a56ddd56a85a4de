// The deployment of deploy/compose.yaml, run for real without containers: the haproxy binary with
// deploy/haproxy/haproxy.cfg as compose runs it, two Keel processes (the real entry point, with the
// instance settings compose gives them) and a redis-server, all on loopback. Everything is checked
// through the proxy: TLS 1.3 with HTTP/2 and HTTP/1.1, the request id and client address it forwards,
// rooms across instances over WebSocket and SSE, a rolling restart, and an outage of Redis.

import t from 'tap'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { connect as h2connect, type IncomingHttpHeaders, type Settings } from 'node:http2'
import type { Duplex } from 'node:stream'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import WebSocket from 'ws'
import type { KeelClient } from '../../client/keel-client.ts'
import { ROOT, spawnServer, waitListening, type Spawned } from '../helpers/app.ts'
import { h1request, h2request, h2session, type Response } from '../helpers/http.ts'
import { nextEvent, record, testClient, trustedSocket } from '../helpers/keel-client.ts'
import { freePort } from '../helpers/ports.ts'
import { proxySkipReason, startProxy, type TestProxy } from '../helpers/proxy.ts'
import { redisSkipReason, startRedis, type TestRedis } from '../helpers/redis.ts'
import { isEvent, openSse } from '../helpers/sse.ts'
import { testToken } from '../helpers/tokens.ts'
import { until } from '../helpers/until.ts'
import { openSocket, upgradeStatus, type Message, type TestSocket } from '../helpers/ws.ts'
import { itemsSkipReason } from '../helpers/examples.ts'

// The topology is exercised through the example resource's routes (reads, writes, its room).
const skip = proxySkipReason() || redisSkipReason() || itemsSkipReason

/** What the helpers below need of a test: a place to stop what they start. */
type Test = Parameters<typeof startRedis>[0]
type Name = 'a' | 'b'
const NAMES: readonly Name[] = ['a', 'b']

/** Settings compose gives both instances, read from the file so the test runs what compose runs. */
function composeSettings (names: string[]): Record<string, string> {
  const compose = readFileSync(join(ROOT, 'deploy/compose.yaml'), 'utf8')
  return Object.fromEntries(names.map((name) => {
    const m = new RegExp(`^ +${name}: "?([^"\\n]*)"?$`, 'm').exec(compose)
    if (m === null) throw new Error(`deploy/compose.yaml sets no ${name}`)
    return [name, m[1]!]
  }))
}

const requestId = (): string => `proxy-test-${randomUUID()}`

/** Resolves with `promise`, or rejects when it takes longer than `ms`. */
async function bounded<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms) })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

interface Deployment {
  redis: TestRedis
  proxy: TestProxy
  instances: Record<Name, Spawned>
  /** Starts (or starts again) an instance on its own port. */
  start: (name: Name) => Promise<void>
  /** Which instance logged the request with this x-request-id (a WebSocket's is its upgrade's). */
  servedBy: (id: string) => Promise<Name>
}

/** Redis, then both instances, then the proxy in front of them; all stopped when the test ends. */
async function deploy (t: Test): Promise<Deployment> {
  const redis = await startRedis(t)
  const ports = { a: await freePort(), b: await freePort() }
  const proxyPort = await freePort()
  const env = {
    ...composeSettings(['TLS', 'MAX_CONNECTIONS_PER_IP', 'SHUTDOWN_DRAIN_MS', 'SHUTDOWN_TIMEOUT_MS']),
    REDIS_URL: redis.url,
    TRUST_PROXY: '127.0.0.1',
    CORS_ORIGINS: `https://localhost:${proxyPort}`,
    // Budgets are not under test: every request here comes from one address, and a loaded machine
    // must not shed the test's own traffic.
    RATE_LIMIT_MAX: '1000000',
    SHED_MAX_EVENT_LOOP_DELAY_MS: '0'
  }
  const instances = {} as Record<Name, Spawned>
  const start = async (name: Name): Promise<void> => {
    instances[name] = await waitListening(spawnServer(t, { ...env, PORT: String(ports[name]) }), 30_000)
  }
  await Promise.all(NAMES.map(start))
  const proxy = await startProxy(t, { KEEL_A: `127.0.0.1:${ports.a}`, KEEL_B: `127.0.0.1:${ports.b}` }, proxyPort)
  const servedBy = async (id: string): Promise<Name> => {
    let found: Name | undefined
    await until(() => {
      found = NAMES.find((name) => instances[name].output().includes(`"reqId":"${id}"`))
      return found !== undefined
    }, 5000, `an instance to log request ${id}`)
    return found!
  }
  return { redis, proxy, instances, start, servedBy }
}

/** The instance's log line of the request with this id (its "incoming request"). */
function loggedRequest (instance: Spawned, id: string): { req: { remoteAddress: string } } {
  const line = instance.output().split('\n').find((l) => l.includes(`"reqId":"${id}"`) && l.includes('"req":'))
  if (line === undefined) throw new Error(`no log line of request ${id}`)
  return JSON.parse(line)
}

/** Opens browser-like sockets (Origin: the proxy's) through the proxy until one is on each instance. */
async function socketOnEach (t: Test, d: Deployment, sub: string): Promise<Record<Name, TestSocket>> {
  const found: Partial<Record<Name, TestSocket>> = {}
  for (let i = 0; i < 8 && (found.a === undefined || found.b === undefined); i++) {
    const id = requestId()
    const socket = await openSocket(t, d.proxy, { sub, headers: { 'x-request-id': id, origin: d.proxy.publicOrigin } })
    const where = await d.servedBy(id)
    if (found[where] === undefined) found[where] = socket
    else socket.ws.close()
  }
  if (found.a === undefined || found.b === undefined) throw new Error('the proxy sent every socket to the same instance')
  return found as Record<Name, TestSocket>
}

interface PlacedClient { client: KeelClient, socketIds: string[] }

/** A KeelClient through the proxy whose connection is on instance `name` (each socket's upgrade carries an id). */
async function clientOn (t: Test, d: Deployment, name: Name, sub: string): Promise<PlacedClient> {
  const elsewhere: KeelClient[] = []
  try {
    for (let i = 0; i < 8; i++) {
      const socketIds: string[] = []
      const { client } = testClient(t, d.proxy, {
        sub,
        createSocket: (url) => {
          const id = requestId()
          socketIds.push(id)
          return trustedSocket(d.proxy, url, { 'x-request-id': id, origin: d.proxy.publicOrigin })
        }
      })
      await client.connect()
      if (await d.servedBy(socketIds.at(-1)!) === name) return { client, socketIds }
      elsewhere.push(client)
    }
  } finally {
    for (const client of elsewhere) client.close()
  }
  throw new Error(`no connection landed on instance ${name}`)
}

/** What `ws` does with a stream it did not open (not in its types): speaks WebSocket over it, as a client when `_isServer` is false. */
interface AdoptingWebSocket { _isServer: boolean, setSocket: (socket: Duplex, head: Buffer, options: { maxPayload: number }) => void }

/**
 * Opens /ws as an HTTP/2 extended CONNECT (RFC 8441), as Chrome does on an HTTP/2 connection whose
 * server offers it; resolves with what the proxy offered, the CONNECT's status and the first message.
 */
async function h2WebSocket (t: Test, proxy: TestProxy, token: string): Promise<{ offered: boolean, status: number, first: Message }> {
  const session = h2connect(proxy.url, { ca: proxy.ca, servername: 'localhost', ALPNProtocols: ['h2'] })
  session.on('error', () => {})
  t.teardown(() => session.destroy())
  const [settings] = await bounded(once(session, 'remoteSettings'), 5000, 'HTTP/2 settings') as [Settings]
  const stream = session.request({
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':scheme': 'https',
    ':path': '/ws',
    ':authority': new URL(proxy.publicOrigin).host,
    'sec-websocket-version': '13',
    authorization: `Bearer ${token}`,
    origin: proxy.publicOrigin
  })
  stream.on('error', () => {})
  const [headers] = await bounded(once(stream, 'response'), 5000, 'the CONNECT\'s answer') as [IncomingHttpHeaders]
  // ws reads its options even for a socket it did not open; its types leave them out of that form.
  const ws = Reflect.construct(WebSocket, [null, undefined, {}]) as WebSocket
  const adopting = ws as unknown as AdoptingWebSocket
  adopting._isServer = false
  adopting.setSocket(stream, Buffer.alloc(0), { maxPayload: 1 << 20 })
  t.teardown(() => ws.terminate())
  const [raw] = await bounded(once(ws, 'message'), 5000, 'the first WebSocket message') as [Buffer]
  return { offered: settings.enableConnectProtocol === true, status: Number(headers[':status']), first: JSON.parse(raw.toString()) }
}

const isMessage = (room: string, n: number) => (m: Message) => m.event === 'room:message' && m.data.room === room && m.data.payload?.n === n

interface HttpLoad {
  /** Requests answered 2xx so far, with the time each answer came. */
  answeredAt: number[]
  /** Stops the clients and resolves with every failure (a non-2xx status or an error), described. */
  stop: () => Promise<string[]>
}

/**
 * Clients sending requests through the proxy until stopped: GETs over HTTP/2 and over HTTP/1.1 (a new
 * connection each), and POSTs that create items over HTTP/2.
 */
async function startHttpLoad (t: Test, d: Deployment): Promise<HttpLoad> {
  const session = await h2session(d.proxy.url, { ca: d.proxy.ca })
  t.teardown(() => session.close())
  const writer = { authorization: `Bearer ${testToken({ sub: 'writer', scope: 'items:write' })}` }
  const kinds: Record<string, (n: number) => Promise<Response>> = {
    'HTTP/2 GET': async () => await h2request(session, '/api/v1/items?limit=1'),
    'HTTP/1.1 GET': async () => await h1request(`${d.proxy.url}/api/v1/items?limit=1`, { ca: d.proxy.ca }),
    'HTTP/2 POST': async (n) => await h2request(session, '/api/v1/items', { ':method': 'POST', 'content-type': 'application/json', ...writer }, JSON.stringify({ name: `item ${n}` }))
  }
  const answeredAt: number[] = []
  const failures: string[] = []
  const stopped = new AbortController()
  const clients = Object.entries(kinds).map(async ([kind, send]) => {
    for (let n = 0; !stopped.signal.aborted; n++) {
      try {
        const res = await bounded(send(n), 10_000, kind)
        if (res.status >= 200 && res.status < 300) answeredAt.push(Date.now())
        else failures.push(`${kind} → ${res.status} ${res.body.slice(0, 200)}`)
      } catch (err) {
        failures.push(`${kind} → ${(err as Error).message}`)
      }
      await delay(15)
    }
  })
  return {
    answeredAt,
    stop: async () => {
      stopped.abort()
      await Promise.all(clients)
      return failures
    }
  }
}

/** Publishes {n: 1, 2, …} to `room` every 60 ms (under the per-connection message budget) until stopped. */
function startPublishing (client: KeelClient, room: string): { published: number[], stop: () => Promise<void> } {
  const published: number[] = []
  const stopped = new AbortController()
  const loop = (async () => {
    for (let n = 1; !stopped.signal.aborted && n <= 1000; n++) {
      await client.publish(room, { n })
      published.push(n)
      await delay(60)
    }
  })()
  // Kept until stop() awaits it, so a failed publish is reported there, not as an unhandled rejection.
  const outcome = loop.then(() => undefined, (err: unknown) => err)
  return {
    published,
    stop: async () => {
      stopped.abort()
      const err = await outcome
      if (err !== undefined) throw err
    }
  }
}

// One deployment serves every subtest (starting it takes seconds), hence one long function: the
// subtests run in order, and the last ones change it (an instance restarted, Redis stopped).
t.test('two Keel instances and Redis behind deploy/haproxy/haproxy.cfg', { skip }, async (t) => {
  const d = await deploy(t)

  t.test('HTTP/2 and HTTP/1.1 clients are answered through the proxy by both instances, over TLS 1.3 only', async (t) => {
    const session = await h2session(d.proxy.url, { ca: d.proxy.ca })
    t.teardown(() => session.close())
    const answeredBy = new Set<Name>()
    for (let i = 0; i < 10 && answeredBy.size < 2; i++) {
      const id = requestId()
      const res = i % 2 === 0
        ? await h2request(session, '/api/v1/items', { 'x-request-id': id })
        : await h1request(`${d.proxy.url}/api/v1/items`, { ca: d.proxy.ca, headers: { 'x-request-id': id } })
      t.match(res, { status: 200, alpn: i % 2 === 0 ? 'h2' : 'http/1.1', tlsVersion: 'TLSv1.3' })
      t.match(res.headers['strict-transport-security'], /^max-age=31536000/, 'the proxy sends HSTS')
      answeredBy.add(await d.servedBy(id))
    }
    t.same([...answeredBy].sort(), NAMES, 'both instances answered')
    await t.rejects(h1request(`${d.proxy.url}/health/live`, { ca: d.proxy.ca, maxVersion: 'TLSv1.2' }), 'TLS 1.2 is refused')
  })

  t.test('/metrics stays inside: the proxy answers 404 problem+json for it', async (t) => {
    const res = await h1request(`${d.proxy.url}/metrics`, { ca: d.proxy.ca })
    t.match(res, { status: 404, headers: { 'content-type': 'application/problem+json' } })
    t.match(JSON.parse(res.body), { status: 404, title: 'Not Found' })
  })

  t.test('the proxy passes x-request-id and the client\'s address, which the instance believes, not one the client claims', async (t) => {
    const id = requestId()
    const res = await h1request(`${d.proxy.url}/health/live`, {
      ca: d.proxy.ca,
      localAddress: '127.0.0.2',
      headers: { 'x-request-id': id, 'x-forwarded-for': '203.0.113.9' }
    })
    t.equal(res.headers['x-request-id'], id, 'the id comes back')
    const logged = loggedRequest(d.instances[await d.servedBy(id)], id)
    t.equal(logged.req.remoteAddress, '127.0.0.2', 'the instance logged the client\'s own address')

    // Without an id the proxy makes one: its access line (which shows the id the request carried
    // onwards) and the instance's log both hold the id the client got back.
    const anonymous = await h1request(`${d.proxy.url}/health/live`, { ca: d.proxy.ca })
    const made = String(anonymous.headers['x-request-id'])
    t.ok(await d.servedBy(made), 'the instance logged the request under the id the client got')
    await until(() => d.proxy.output().includes(`{${made}}`), 5000, 'the proxy to log the request with that id')
    t.pass('the proxy\'s log line carries the same id')
  })

  t.test('a message written on one instance is read from its room on the other, from the history and live', async (t) => {
    const sockets = await socketOnEach(t, d, 'notes-user')
    await sockets.a.request('room:join', { room: 'notes' })
    for (let n = 1; n <= 3; n++) t.match(await sockets.a.request('room:publish', { room: 'notes', payload: { n } }), { event: 'ack', data: { seq: n } })

    const joined = await sockets.b.request('room:join', { room: 'notes', since: 0 })
    t.match(joined, { event: 'ack', data: { room: 'notes', seq: 3, recovered: true } })
    for (let n = 1; n <= 3; n++) t.match((await sockets.b.next(isMessage('notes', n))).data, { seq: n }, `history message ${n}`)

    const live = sockets.b.next(isMessage('notes', 4))
    await sockets.a.request('room:publish', { room: 'notes', payload: { n: 4 } })
    t.match((await live).data, { seq: 4, from: 'notes-user' }, 'a WebSocket on one instance receives what a client on the other published')
    t.match(await upgradeStatus(d.proxy, { headers: { origin: 'https://elsewhere.example' } }), { status: 403 }, 'a page of another origin is still refused')
  })

  t.test('an HTTP/2 client opens /ws as an extended CONNECT through the proxy, as browsers do when it is offered', async (t) => {
    const opened = await h2WebSocket(t, d.proxy, testToken({ sub: 'h2-user' }))
    t.match(opened, { offered: true, status: 200, first: { event: 'connection:ready', data: { user: { sub: 'h2-user' } } } })
  })

  t.test('an SSE stream through the proxy gets each event as it is published, uncompressed', async (t) => {
    const sse = await openSse(t, d.proxy, { path: '/sse?room=feed', headers: { 'accept-encoding': 'gzip, br' } })
    t.match(sse, { status: 200, headers: { 'content-type': /^text\/event-stream/ } })
    t.notOk(sse.headers['content-encoding'], 'not compressed')
    await sse.next(isEvent('stream:ready'))
    const writer = await openSocket(t, d.proxy, { sub: 'feeder' })
    await writer.request('room:join', { room: 'feed' })
    for (let n = 1; n <= 3; n++) {
      await writer.request('room:publish', { room: 'feed', payload: { n } })
      // Far below the 15 s heartbeat, the next write that would push a buffered event through.
      const event = await sse.next(isEvent('room:message'), 2000)
      t.match(event, { id: String(n) })
      t.match(JSON.parse(event.data!), { payload: { n } })
    }
  })

  t.test('SIGTERM to an instance with clients connected: no HTTP request fails, its WebSocket clients get 1001 and resume on the other instance without a gap', async (t) => {
    const room = 'rolling'
    const listener = await clientOn(t, d, 'a', 'listener')
    const speaker = await clientOn(t, d, 'b', 'speaker')
    await listener.client.join(room)
    await speaker.client.join(room)
    const received: Array<{ n: number, seq: number }> = []
    listener.client.on('room:message', (m) => { if (m.room === room) received.push({ n: (m.payload as { n: number }).n, seq: m.seq }) })
    const gaps = record(listener.client, 'gap')
    const closed = nextEvent(listener.client, 'close', undefined, 20_000)
    const resumed = nextEvent(listener.client, 'resumed', (r) => r.room === room, 20_000)

    const publishing = startPublishing(speaker.client, room)
    const load = await startHttpLoad(t, d)
    await until(() => publishing.published.length >= 3 && load.answeredAt.length >= 10, 10_000, 'traffic before the restart')
    const proxyLogFrom = d.proxy.output().length
    const stopping = d.instances.a
    const signalledAt = Date.now()
    stopping.proc.kill('SIGTERM')

    t.match(await closed, { code: 1001, reconnect: true }, 'the instance said it was going away')
    t.match(await resumed, { room, recovered: true }, 'the room resumed from the history')
    t.equal(await d.servedBy(listener.socketIds.at(-1)!), 'b', 'the reconnect landed on the other instance')
    t.equal(await bounded(stopping.exited, 15_000, 'the instance to exit'), 0, 'the instance exited cleanly')
    const exitedAt = Date.now()
    const resumedAfter = publishing.published.length
    await until(() => received.some((m) => m.n >= resumedAfter + 3), 10_000, 'live messages after the resume')

    await publishing.stop()
    const failures = await load.stop()
    const last = publishing.published.at(-1)
    await until(() => received.at(-1)?.n === last, 5000, 'the last message published')
    t.same(received.map((m) => m.n), publishing.published, 'every message arrived once, in order')
    t.ok(received.every((m, i) => i === 0 || m.seq === received[i - 1]!.seq + 1), 'one seq after the other')
    t.same(gaps, [], 'the client saw no gap')
    t.same(failures, [], 'no HTTP request failed')
    t.ok(load.answeredAt.filter((at) => at > signalledAt && at < exitedAt).length > 0, 'requests were answered while the instance drained and closed')
    t.match(d.proxy.output().slice(proxyLogFrom), /Server keel\/a is DOWN, reason: Layer7 wrong status, code: 503/,
      'its failing readiness took it out of rotation, not its closed port')
  })

  t.test('the restarted instance is back in rotation once its readiness checks pass', async (t) => {
    const proxyLogFrom = d.proxy.output().length
    await d.start('a')
    await until(() => /Server keel\/a is UP/.test(d.proxy.output().slice(proxyLogFrom)), 10_000, 'the proxy to bring instance a back')
    const answeredBy = new Set<Name>()
    for (let i = 0; i < 10 && !answeredBy.has('a'); i++) {
      const id = requestId()
      t.equal((await h1request(`${d.proxy.url}/api/v1/items`, { ca: d.proxy.ca, headers: { 'x-request-id': id } })).status, 200)
      answeredBy.add(await d.servedBy(id))
    }
    t.ok(answeredBy.has('a'), 'the restarted instance answers requests again')
  })

  t.test('the proxy\'s log carries no token: browsers send theirs in the query of /ws and /sse', async (t) => {
    t.match(d.proxy.output(), /"GET \/ws HTTP\/1\.1"/, 'WebSocket upgrades were logged, by path')
    t.notMatch(d.proxy.output(), /access_token|eyJ/, 'no query token in any line')
  })

  t.test('when no instance is ready (Redis down for all), the proxy still sends requests to them instead of answering 503', { skip: redisSkipReason({ control: true }) }, async (t) => {
    const proxyLogFrom = d.proxy.output().length
    await d.redis.stop()
    await until(() => /0 active and 2 backup servers left\. Running on backup/.test(d.proxy.output().slice(proxyLogFrom)), 10_000, 'both instances to be out of rotation')
    t.match(await h1request(`${d.proxy.url}/api/v1/items`, { ca: d.proxy.ca }), { status: 200 }, 'an instance without Redis still serves the request')
    const ready = await h1request(`${d.proxy.url}/health/ready`, { ca: d.proxy.ca })
    t.match(ready, { status: 503, headers: { 'content-type': /^application\/json/ } }, 'the instance\'s own readiness answer says why, not the proxy\'s 503')
  })
})
