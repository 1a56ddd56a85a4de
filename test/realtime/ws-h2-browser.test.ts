// A real browser against Keel: headless Chromium loads a page from Keel over HTTP/2 and opens
// `new WebSocket('wss://…/ws')` from it. With the server advertising extended CONNECT, Chromium sends
// it as an RFC 8441 CONNECT on the page's own HTTP/2 connection; the session works as any other, and
// the server's metrics and logs say it arrived over h2.

import t from 'tap'
import type { Http2Session, ServerHttp2Stream, IncomingHttpHeaders } from 'node:http2'
import type { Page } from 'puppeteer-core'
import { listen } from '../helpers/app.ts'
import { browserSkipReason, launchChromium } from '../helpers/browser.ts'
import { testToken } from '../helpers/tokens.ts'
import { openSocket, type Message } from '../helpers/ws.ts'

const WAIT_MS = 10_000

/** What the page keeps: its socket and every message received on it. */
interface PageGlobals { location: { host: string }, keel: { ws: WebSocket, messages: Message[] } }

/** Runs in the page: opens the WebSocket on the page's own origin; resolves once it is open. */
async function openInPage (token: string): Promise<void> {
  const page = globalThis as unknown as PageGlobals
  const ws = new WebSocket(`wss://${page.location.host}/ws?access_token=${encodeURIComponent(token)}`)
  page.keel = { ws, messages: [] }
  ws.onmessage = (event) => { page.keel.messages.push(JSON.parse(String(event.data)) as Message) }
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve()
    ws.onerror = () => reject(new Error('the WebSocket failed to open'))
  })
}

/** The first message the page received with this event (and this id, when given), once it has. */
async function pageNext (page: Page, event: string, id?: string): Promise<Message> {
  const handle = await page.waitForFunction((event: string, id: string | undefined) => {
    const { keel } = globalThis as unknown as PageGlobals
    return keel.messages.find((m) => m.event === event && (id === undefined || m.id === id))
  }, { timeout: WAIT_MS }, event, id)
  return await handle.jsonValue() as Message
}

async function pageSend (page: Page, message: Message): Promise<void> {
  await page.evaluate((text: string) => { (globalThis as unknown as PageGlobals).keel.ws.send(text) }, JSON.stringify(message))
}

t.test('Chromium opens new WebSocket(wss://…/ws) from a Keel page as an extended CONNECT on the page\'s HTTP/2 connection, and exchanges messages', { skip: browserSkipReason() }, async (t) => {
  const server = await listen(t)
  // What each HTTP/2 connection carried, to see where the WebSocket went.
  const carried = new Map<Http2Session, string[]>()
  server.app.server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    const list = carried.get(stream.session!) ?? []
    carried.set(stream.session!, list)
    list.push(`${headers[':method']} ${String(headers[':path']).replace(/\?.*/, '')}${headers[':protocol'] === undefined ? '' : ` (${headers[':protocol']})`}`)
  })
  const browser = await launchChromium(t, server.ca!)
  const page = await browser.newPage()
  const response = await page.goto(`${server.url}/docs`, { waitUntil: 'load', timeout: WAIT_MS })
  t.equal(response?.status(), 200, 'the page loaded')
  t.equal(await page.evaluate('performance.getEntriesByType("navigation")[0].nextHopProtocol'), 'h2', 'over HTTP/2')

  const peer = await openSocket(t, server, { sub: 'peer' })
  await peer.request('room:join', { room: 'browser' })

  await page.evaluate(openInPage, testToken({ sub: 'browser-user' }))
  t.match(await pageNext(page, 'connection:ready'), { data: { user: { sub: 'browser-user' } } })
  await pageSend(page, { event: 'room:join', data: { room: 'browser' }, id: 'j1' })
  t.match(await pageNext(page, 'ack', 'j1'), { data: { room: 'browser', joined: true } })
  await pageSend(page, { event: 'room:publish', data: { room: 'browser', payload: 'from the browser' }, id: 'p1' })
  t.match(await pageNext(page, 'ack', 'p1'), { data: { room: 'browser', seq: 1 } })
  t.match(await peer.next((m) => m.event === 'room:message'), { data: { from: 'browser-user', payload: 'from the browser', seq: 1 } })
  await peer.request('room:publish', { room: 'browser', payload: 'to the browser' })
  t.match(await pageNext(page, 'room:message'), { data: { from: 'peer', payload: 'to the browser', seq: 2 } })

  const metric = await server.app.metrics.getSingleMetric('ws_connections_opened_total')!.get()
  const byTransport = Object.fromEntries(metric.values.map((v) => [v.labels.transport, v.value]))
  t.same(byTransport, { h2: 1, h1: 1 }, 'the metric counts the browser\'s session under h2 (the peer\'s under h1)')
  const opened = server.logs.lines().find((l) => l.msg === 'WebSocket session opened' && l.transport === 'h2')
  t.ok(opened, 'the log line of the session says h2')
  const withSocket = [...carried.values()].find((streams) => streams.includes('CONNECT /ws (websocket)'))
  t.ok(withSocket?.includes('GET /docs'), `the WebSocket went over the connection that served the page (${JSON.stringify(withSocket)})`)
})
