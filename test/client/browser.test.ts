// The client package in a real browser: headless Chromium loads a page from a site of its own (HTTPS,
// its origin listed in CORS_ORIGINS) whose plain `<script type="module">` imports the BUILT client by
// URL, no bundler. Against a spawned Keel with Redis it connects, joins, publishes with an ack, gets a
// peer's message and resumes after the server restarts with `recovered: true` and no gap; a server
// refusing its Origin or its token stops it with a typed error in one attempt; and behind a proxy
// that refuses WebSocket upgrades it falls back to SSE and still exchanges room messages.

import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import type { Browser, Page } from 'puppeteer-core'
import { DEV_CERT_FILE, DEV_KEY_FILE, ensureDevCertificate } from '../../core/dev-cert.ts'
import { listen, spawnServer, tempDir, waitListening } from '../helpers/app.ts'
import { browserSkipReason, launchChromium, servePage } from '../helpers/browser.ts'
import { buildClient, nextEvent, testClient } from '../helpers/keel-client.ts'
import { startNoUpgradeProxy } from '../helpers/no-upgrade-proxy.ts'
import { freePort } from '../helpers/ports.ts'
import { redisSkipReason, startRedis } from '../helpers/redis.ts'
import { testToken } from '../helpers/tokens.ts'

interface Teardown { teardown: (fn: () => unknown) => void }

const WAIT_MS = 20_000

// The page: a plain module script importing the built client by URL, and a small harness the test
// drives through page.evaluate (what a page's own code would do with the client).
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>loading</title>
<script type="module">
import { KeelClient, KeelClientError } from './keel-client/keel-client.js'

const plain = (value) => value instanceof KeelClientError
  ? { name: value.name, code: value.code, status: value.status, message: value.message, typed: true }
  : JSON.parse(JSON.stringify(value ?? null))
const events = []
let hold = Promise.resolve()
let release = () => {}
let client

window.keelPage = {
  events,
  // token: a function that waits while the test holds connections (to be offline on purpose).
  async start ({ holdable, token, ...options }) {
    client = new KeelClient({ ...options, token: holdable ? async () => { await hold; return token } : token })
    for (const name of ['open', 'close', 'reconnecting', 'resumed', 'gap', 'fallback', 'room:message']) {
      client.on(name, (data) => { events.push({ event: name, data: name === 'close' ? { ...plain(data), error: data.error && plain(data.error) } : plain(data) }) })
    }
    return await window.keelPage.call('connect')
  },
  async call (method, ...args) {
    try { return { value: plain(await client[method](...args)) } } catch (err) { return { error: plain(err) } }
  },
  transport: () => client.transport ?? null,
  holdConnections () { hold = new Promise((resolve) => { release = resolve }) },
  releaseConnections () { release() }
}
document.title = 'ready'
</script>
`

interface PageEvent { event: string, data: any }
interface Harness {
  events: PageEvent[]
  start: (options: Record<string, unknown>) => Promise<{ value?: any, error?: any }>
  call: (method: string, ...args: unknown[]) => Promise<{ value?: any, error?: any }>
  transport: () => string | null
  holdConnections: () => void
  releaseConnections: () => void
}
declare global {
  // What the page's module script sets up (the functions the test runs in the page reach it here).
  var keelPage: Harness
}

/** What every test here shares: one certificate (one pin covers Keel, the page's site and the proxy), the site, one Chromium. */
interface Shared { cert: Buffer, key: Buffer, pageOrigin: string, browser: Browser }

let shared: Promise<Shared> | undefined

/** Built on first use; the site and the browser close when the file's tests end. */
async function setUp (): Promise<Shared> {
  shared ??= (async () => {
    const pair = await ensureDevCertificate(tempDir('keel-browser-cert-'))
    const tls = { cert: readFileSync(pair.certFile), key: readFileSync(pair.keyFile) }
    const built = buildClient()
    const files: Record<string, string | Buffer> = { '/': PAGE }
    for (const name of readdirSync(built)) if (name.endsWith('.js')) files[`/keel-client/${name}`] = readFileSync(join(built, name))
    const { origin } = await servePage(t, tls, files)
    return { ...tls, pageOrigin: origin, browser: await launchChromium(t, tls.cert) }
  })()
  return await shared
}

/** A working directory whose certs/ holds the shared pair, which the server then serves. */
function serverDir (s: Shared): string {
  const cwd = tempDir()
  mkdirSync(join(cwd, 'certs'))
  writeFileSync(join(cwd, 'certs', DEV_CERT_FILE), s.cert)
  writeFileSync(join(cwd, 'certs', DEV_KEY_FILE), s.key, { mode: 0o600 })
  return cwd
}

/** A new tab on the page, once its module script has run; closed when the test ends. */
async function openPage (t: Teardown, s: Shared): Promise<Page> {
  const page = await s.browser.newPage()
  t.teardown(async () => { await page.close() })
  await page.goto(`${s.pageOrigin}/`, { waitUntil: 'load', timeout: WAIT_MS })
  await page.waitForFunction('document.title === "ready"', { timeout: WAIT_MS })
  return page
}

/** Keel in this process (no restart needed) serving the shared certificate. */
async function keelHere (t: Teardown, s: Shared, env: Record<string, string>): Promise<{ url: string, ca: Buffer }> {
  const server = await listen(t, env, serverDir(s))
  return { url: server.url, ca: s.cert }
}

/** The first event the page recorded that matches, once it has (bounded). */
async function pageEvent (page: Page, event: string, match: Record<string, unknown> = {}): Promise<PageEvent> {
  const handle = await page.waitForFunction((event: string, match: Record<string, unknown>) => {
    const { events } = keelPage
    return events.find((e) => e.event === event && Object.entries(match).every(([k, v]) => e.data?.[k] === v))
  }, { timeout: WAIT_MS }, event, match)
  return await handle.jsonValue() as PageEvent
}

async function pageEvents (page: Page, event: string): Promise<PageEvent[]> {
  return await page.evaluate((event: string) => keelPage.events.filter((e) => e.event === event), event)
}

const wsUrl = (httpsUrl: string): string => httpsUrl.replace(/^https/, 'wss') + '/ws'
const skip = browserSkipReason()

t.test('in Chromium, the built client imported by a plain module script connects, joins, publishes with an ack, receives, and resumes a restart with no gap', { skip: skip || redisSkipReason() }, async (t) => {
  const s = await setUp()
  const redis = await startRedis(t)
  const port = await freePort()
  const cwd = serverDir(s)
  const start = async () => await waitListening(spawnServer(t, { PORT: String(port), REDIS_URL: redis.url, CORS_ORIGINS: s.pageOrigin }, cwd))
  let keel = await start()
  const keelUrl = `https://127.0.0.1:${port}`
  const page = await openPage(t, s)
  t.equal(await page.evaluate(() => typeof keelPage.start), 'function', 'the page imported the built client from a plain <script type="module">')

  const { client: peer } = testClient(t, { url: keelUrl, ca: s.cert }, { sub: 'peer', ackTimeoutMs: WAIT_MS })
  await peer.connect()
  await peer.join('lobby')

  const started = await page.evaluate(async (url: string, token: string) => await keelPage.start({ url, token, holdable: true, reconnect: { baseMs: 50, capMs: 500 } }), wsUrl(keelUrl), testToken({ sub: 'browser' }))
  t.match(started, { value: { user: { sub: 'browser' } } }, 'connects')
  t.equal(await page.evaluate(() => keelPage.transport()), 'websocket')

  t.match(await page.evaluate(async () => await keelPage.call('join', 'lobby')), { value: { room: 'lobby', joined: true } }, 'joins a room')

  const toPeer = nextEvent(peer, 'room:message', () => true, WAIT_MS)
  t.match(await page.evaluate(async () => await keelPage.call('publish', 'lobby', 'from the browser')), { value: { room: 'lobby', seq: 1 } }, 'publishes with an ack')
  t.match(await toPeer, { from: 'browser', payload: 'from the browser', seq: 1 }, 'the peer got it')

  await peer.publish('lobby', 'to the browser')
  t.match(await pageEvent(page, 'room:message', { payload: 'to the browser' }), { data: { from: 'peer', seq: 2 } }, 'receives another client\'s message')

  // Restart: the page stays offline until the peer has published into the restarted server.
  await page.evaluate(() => { keelPage.holdConnections() })
  const peerBack = nextEvent(peer, 'resumed', () => true, WAIT_MS * 2)
  keel.proc.kill('SIGTERM')
  await keel.exited
  keel = await start()
  t.match(await peerBack, { room: 'lobby', recovered: true })
  await peer.publish('lobby', 'while the browser was away')
  await page.evaluate(() => { keelPage.releaseConnections() })
  t.match(await pageEvent(page, 'resumed', { room: 'lobby' }), { data: { recovered: true } }, 'resumed {recovered: true} after the restart (Redis kept the history)')
  t.match(await pageEvent(page, 'room:message', { payload: 'while the browser was away' }), { data: { seq: 3 } }, 'what it missed came')
  t.same(await pageEvents(page, 'gap'), [], 'no gap')
  t.same((await pageEvents(page, 'room:message')).map((e) => e.data.seq), [2, 3], 'each message once, in order')
})

t.test('in Chromium, a server refusing the page\'s Origin stops the client with ORIGIN_REFUSED in one attempt', { skip }, async (t) => {
  const s = await setUp()
  const keel = await keelHere(t, s, { CORS_ORIGINS: 'https://some-other-site.example' })
  const page = await openPage(t, s)
  const started = await page.evaluate(async (url: string, token: string) => await keelPage.start({ url, token, reconnect: { baseMs: 50, capMs: 100, maxAttempts: 2 } }), wsUrl(keel.url), testToken({ sub: 'browser' }))
  t.match(started, { error: { typed: true, name: 'KeelClientError', code: 'ORIGIN_REFUSED', status: 403 } })
  t.same(await pageEvents(page, 'reconnecting'), [], 'no retry')
})

t.test('in Chromium, a server refusing the token stops the client with UNAUTHORIZED in one attempt', { skip }, async (t) => {
  const s = await setUp()
  const keel = await keelHere(t, s, { CORS_ORIGINS: s.pageOrigin })
  const page = await openPage(t, s)
  const started = await page.evaluate(async (url: string) => await keelPage.start({ url, token: 'not-a-token', reconnect: { baseMs: 50, capMs: 100, maxAttempts: 2 } }), wsUrl(keel.url))
  t.match(started, { error: { typed: true, code: 'UNAUTHORIZED', status: 401 } })
  t.same(await pageEvents(page, 'reconnecting'), [], 'no retry')
})

t.test('in Chromium behind a proxy that refuses WebSocket upgrades, the client falls back to SSE and still exchanges room messages', { skip }, async (t) => {
  const s = await setUp()
  const keel = await keelHere(t, s, { CORS_ORIGINS: s.pageOrigin })
  const page = await openPage(t, s)
  const proxy = await startNoUpgradeProxy(t, keel.url, { cert: s.cert, key: s.key, ca: s.cert })
  const { client: peer } = testClient(t, keel, { sub: 'peer', ackTimeoutMs: WAIT_MS })
  await peer.connect()
  await peer.join('lobby')

  const started = await page.evaluate(async (url: string, token: string) => await keelPage.start({ url, token, reconnect: { baseMs: 50, capMs: 500, maxAttempts: 3 } }), wsUrl(proxy.url), testToken({ sub: 'browser' }))
  t.match(started, { value: { connectionId: String } }, 'connected')
  t.ok(proxy.refusedUpgrades() >= 1, 'the WebSocket upgrade was tried and refused')
  t.match(await pageEvent(page, 'fallback'), { data: { transport: 'sse' } }, 'a fallback event')
  t.equal(await page.evaluate(() => keelPage.transport()), 'sse', 'the connection runs over SSE')

  t.match(await page.evaluate(async () => await keelPage.call('join', 'lobby')), { value: { room: 'lobby', joined: true } }, 'joins over SSE')
  await peer.publish('lobby', 'to the browser over SSE')
  t.match(await pageEvent(page, 'room:message', { payload: 'to the browser over SSE' }), { data: { from: 'peer', seq: 1 } }, 'receives room messages over SSE')

  const toPeer = nextEvent(peer, 'room:message', () => true, WAIT_MS)
  t.match(await page.evaluate(async () => await keelPage.call('publish', 'lobby', 'over POST /events')), { value: { room: 'lobby', seq: 2 } }, 'publishes with an ack over POST /events')
  t.match(await toPeer, { from: 'browser', payload: 'over POST /events', seq: 2 })
})
