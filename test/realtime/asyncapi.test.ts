// The AsyncAPI document of /ws and /sse (GET /docs/asyncapi.json): valid for the AsyncAPI parser, built
// from the events directory, the server's pushes, the feeds and the room policies, so that an event file
// added to the directory is documented with no other edit; and what a real session sends matches it.

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import { Parser, type AsyncAPIDocumentInterface, type MessageInterface, type OperationInterface } from '@asyncapi/parser'
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import errors from '../../core/error-handler.ts'
import metrics from '../../core/metrics.ts'
import health from '../../core/health.ts'
import redis from '../../core/redis.ts'
import domainEvents from '../../core/domain-events-plugin.ts'
import auth from '../../auth/plugin.ts'
import realtime from '../../realtime/plugin.ts'
import webSocketServer, { webSocketServerOptions } from '../../realtime/transports/ws-server.ts'
import webSocketTransport from '../../realtime/transports/ws-route.ts'
import asyncApiDocs, { ASYNCAPI_PATH } from '../../realtime/asyncapi.ts'
import { loadEventDirectory, type EventDefinition } from '../../realtime/protocol/event-router.ts'
import { ErrorEnvelope, pushes as builtInPushes, closeCodes, type PushDefinition } from '../../realtime/protocol/pushes.ts'
import { CloseCode } from '../../realtime/transports/ws-connection.ts'
import type { App } from '../../app.ts'
import { ROOT, build, listen, tempDir, testConfig } from '../helpers/app.ts'
import { openSocket, type Message } from '../helpers/ws.ts'
import { isEvent, openSse } from '../helpers/sse.ts'

interface Teardown { teardown: (fn: () => unknown) => void }

const EVENTS_DIR = join(ROOT, 'realtime/protocol/events')
const pushes: readonly PushDefinition[] = builtInPushes

/**
 * Diagnostics below warning the document may keep, each with its reason. `asyncapi-latest-version`:
 * the document is AsyncAPI 3.0.0 on purpose — the version the ws and http bindings and most tooling
 * support — and the parser only suggests 3.1.0.
 */
const ALLOWED_INFO = new Set(['asyncapi-latest-version'])

async function fetchDocument (app: App, host = 'keel.example:8443'): Promise<{ text: string, json: any }> {
  const response = await app.inject({ url: ASYNCAPI_PATH, headers: { host } })
  if (response.statusCode !== 200) throw new Error(`GET ${ASYNCAPI_PATH} → ${response.statusCode}`)
  return { text: response.body, json: response.json() }
}

async function parse (text: string): Promise<AsyncAPIDocumentInterface> {
  const { document, diagnostics } = await new Parser().parse(text)
  const problems = diagnostics.filter((d) => d.severity <= 1 || !ALLOWED_INFO.has(String(d.code)))
  if (document === undefined || problems.length > 0) throw new Error(`invalid AsyncAPI document: ${JSON.stringify(problems.map((d) => [d.code, d.message, d.path.join('.')]))}`)
  return document
}

/** An operation's title: the event's name. */
const titleOf = (operation: OperationInterface): string | undefined => operation.json<{ title?: string }>().title

/** A schema as the document has it, without the ids the parser adds to every schema. */
function withoutParserIds (value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutParserIds)
  if (typeof value !== 'object' || value === null) return value
  return Object.fromEntries(Object.entries(value).filter(([key]) => key !== 'x-parser-schema-id').map(([key, v]) => [key, withoutParserIds(v)]))
}

/** A member of a message's payload (the envelope's `event` or `data`), as JSON. */
const payloadMember = (message: MessageInterface | undefined, member: string): any => withoutParserIds(message?.payload()?.properties()?.[member]?.json())

/** The schema as it travels in the document (TypeBox's symbols left out). */
const asJson = (schema: TSchema): unknown => JSON.parse(JSON.stringify(schema))

/** The app's real-time part alone, loading its events from `eventsDir`, with the document plugin. */
async function realtimeApp (t: Teardown, eventsDir: string): Promise<App> {
  const config = testConfig()
  const app = Fastify()
  await app.register(errors)
  await app.register(metrics)
  await app.register(health)
  await app.register(redis, { url: undefined })
  await app.register(domainEvents)
  await app.register(auth, { auth: config.auth, env: config.env, certsDir: config.certsDir })
  await app.register(realtime, { ws: config.ws })
  await app.register(webSocketServer, webSocketServerOptions(config.ws))
  await app.register(webSocketTransport, { allowedOrigins: [], tls: false, ws: config.ws, eventsDir })
  await app.register(asyncApiDocs, { tls: false })
  t.teardown(() => app.close())
  return app
}

/** Checks that `document` has `definition`'s message, its ack and a receive operation that replies with both answers. */
function assertDocumented (t: Test, document: AsyncAPIDocumentInterface, json: any, definition: EventDefinition): void {
  const operation = document.operations().all().find((o) => titleOf(o) === definition.event && o.action() === 'receive')
  if (operation === undefined) {
    t.fail(`${definition.event}: no operation receives it`)
    return
  }
  const [request] = operation.messages().all()
  t.same(payloadMember(request, 'data'), asJson(definition.data), `${definition.event}: the message's data is the event's schema`)
  t.same(payloadMember(request, 'event'), { const: definition.event, type: 'string' }, `${definition.event}: the envelope names it`)
  const replies = operation.reply()?.messages().all() ?? []
  const ack = replies.find((m) => m.name() === 'ack')
  t.same(payloadMember(ack, 'data'), asJson(definition.ack), `${definition.event}: the ack's data is the event's ack schema`)
  t.ok(replies.some((m) => m.name() === 'error'), `${definition.event}: it may be answered with an error`)
  t.equal(operation.channels().all()[0]?.address(), '/ws')
  t.ok(Object.values(json.channels.ws.messages).length > 0)
}

// A domain event of this test's own, so that the type check below stands without the example resources.
const ProbeChange = Type.Object({ id: Type.String(), op: Type.Literal('changed') })
declare module '../../core/domain-events.ts' {
  interface DomainEventMap {
    'probe:changed': Static<typeof ProbeChange>
  }
}

t.test('GET /docs/asyncapi.json is an AsyncAPI 3 document the AsyncAPI parser accepts with no error or warning', async (t) => {
  const { app } = await build(t)
  const { text, json } = await fetchDocument(app)
  t.equal(json.asyncapi, '3.0.0')
  const diagnostics = await new Parser().validate(text)
  t.same(diagnostics.filter((d) => d.severity === 0).map((d) => d.message), [], 'no errors')
  t.same(diagnostics.filter((d) => d.severity === 1).map((d) => d.message), [], 'no warnings')
  t.same(diagnostics.filter((d) => d.severity > 1 && !ALLOWED_INFO.has(String(d.code))).map((d) => d.message), [], 'only the infos listed with their reason')
  await parse(text)
})

t.test('every event file of the events directory is documented: its message, its ack, and its error reply', async (t) => {
  const { app } = await build(t)
  const { text, json } = await fetchDocument(app)
  const document = await parse(text)
  const definitions = await loadEventDirectory(EVENTS_DIR)
  t.ok(definitions.length > 0)
  for (const definition of definitions) assertDocumented(t, document, json, definition)
})

t.test('an event file added to the events directory appears in the document with no other edit', async (t) => {
  const dir = tempDir('keel-asyncapi-events-')
  const routerUrl = new URL('../../realtime/protocol/event-router.ts', import.meta.url).href
  const typeboxUrl = import.meta.resolve('@sinclair/typebox')
  writeFileSync(join(dir, 'note-add.ts'), `import { Type } from '${typeboxUrl}'\nimport { defineEvent } from '${routerUrl}'\n` +
    'export default defineEvent({\n  event: \'note:add\',\n  summary: \'Adds a note\',\n' +
    '  data: Type.Object({ text: Type.String({ maxLength: 140 }) }),\n  ack: Type.Object({ id: Type.String(), at: Type.Integer() }),\n' +
    '  handle: () => ({ id: \'n1\', at: Date.now() })\n})\n')
  const app = await realtimeApp(t, dir)
  const { text, json } = await fetchDocument(app)
  const document = await parse(text)
  const [added] = await loadEventDirectory(dir)
  assertDocumented(t, document, json, added!)
  t.equal(document.operations().all().find((o) => titleOf(o) === 'note:add')?.summary(), 'Adds a note', 'with its summary')
  t.notOk(document.operations().all().some((o) => titleOf(o) === 'room:join'), 'and only the events of the directory it was given')
})

t.test('a resource\'s feed is documented as a push on both channels: its data schema with its room and seq', async (t) => {
  const { app } = await build(t)
  const { text } = await fetchDocument(app)
  const document = await parse(text)
  if (app.realtime.feeds.length === 0) t.comment('no resource declares a feed in this app')
  for (const feed of app.realtime.feeds) {
    const sent = document.operations().all().filter((o) => titleOf(o) === feed.event && o.action() === 'send')
    t.same(sent.map((o) => o.channels().all()[0]?.address()).sort(), ['/sse', '/ws'], `${feed.event}: over /ws and /sse`)
    const pushed = sent.find((o) => o.channels().all()[0]?.address() === '/ws')
    const data = payloadMember(pushed?.messages().all()[0], 'data') as { properties?: Record<string, unknown>, required?: string[] } | undefined
    for (const [name, schema] of Object.entries(feed.data.properties)) t.same(data?.properties?.[name], asJson(schema), `${feed.event}.${name}`)
    t.same(data?.required?.sort(), [...(feed.data.required ?? []), 'room', 'seq'].sort(), `${feed.event}: required fields`)
  }
})

t.test('both channels: /ws (token in the header or ?access_token=) and /sse (rooms in the query, Last-Event-ID), on the origin the client reached', async (t) => {
  const { app } = await build(t)
  const { text, json } = await fetchDocument(app, 'rt.example:9443')
  const document = await parse(text)
  const addresses = document.channels().all().map((c) => c.address()).sort()
  t.same(addresses, ['/sse', '/ws'])
  t.same(json.channels.ws.bindings.ws.query.properties.access_token.type, 'string')
  const sseOperation = Object.values(json.operations as Record<string, any>).find((o) => o.channel.$ref === '#/channels/sse')
  t.match(sseOperation.bindings.http, { method: 'GET', query: { required: ['room'], properties: { room: { type: 'array' } } } })
  t.match(json.channels.sse.description, /Last-Event-ID/)
  const servers = document.servers().all()
  t.same(servers.map((s) => [s.host(), s.protocol()]).sort(), [['rt.example:9443', 'https'], ['rt.example:9443', 'wss']])
  for (const server of servers) {
    t.same(server.security().map((requirement) => requirement.all().map((r) => r.scheme().type())).flat().sort(), ['http', 'httpApiKey'], 'bearer header or access_token query')
  }
  t.same(Object.keys(json.channels.ws['x-close-codes']).map(Number).filter((code) => (Object.values(CloseCode) as number[]).includes(code)).sort(),
    Object.values(CloseCode).sort(), 'every close code the transport sends is documented')
  t.match(json.channels.ws.description, /4001/)
})

t.test('the document is public, cacheable with an ETag, and not in the OpenAPI document nor in the way of its UI', async (t) => {
  const { app } = await build(t)
  const first = await app.inject({ url: ASYNCAPI_PATH })
  t.equal(first.statusCode, 200, 'no token needed')
  t.match(first.headers['content-type'], /^application\/json/)
  t.ok(first.headers.etag)
  const again = await app.inject({ url: ASYNCAPI_PATH, headers: { 'if-none-match': String(first.headers.etag) } })
  t.equal(again.statusCode, 304)
  const openapi = await app.inject({ url: '/docs/json' })
  t.notOk(Object.keys(openapi.json().paths).some((path) => path.includes('asyncapi')), 'hidden from OpenAPI')
  t.ok([200, 302].includes((await app.inject({ url: '/docs' })).statusCode), 'the OpenAPI UI still answers')
})

t.test('what a real session sends matches the schemas the document is built from', async (t) => {
  const server = await listen(t)
  const definitions = new Map((await loadEventDirectory(EVENTS_DIR)).map((d) => [d.event, d]))
  const pushSchemas = new Map(pushes.filter((p) => p.transports.includes('ws')).map((p) => [p.event, p.data]))
  const alice = await openSocket(t, server, { sub: 'alice' })
  const bob = await openSocket(t, server, { sub: 'bob' })
  const check = (what: string, schema: TSchema | undefined, data: unknown): void => {
    t.ok(schema !== undefined && Value.Check(schema, data), `${what} matches its schema: ${JSON.stringify(data)}`)
  }
  const ack = async (event: string, data?: unknown): Promise<Message> => {
    const answer = await alice.request(event, data)
    t.equal(answer.event, 'ack', event)
    check(`${event}'s ack`, definitions.get(event)?.ack, answer.data)
    return answer
  }
  check('connection:ready', pushSchemas.get('connection:ready'), alice.ready.data)
  await ack('room:join', { room: 'lobby' })
  await bob.request('room:join', { room: 'lobby' })
  check('presence:join', pushSchemas.get('presence:join'), (await alice.next(isPush('presence:join'))).data)
  await bob.request('room:publish', { room: 'lobby', payload: { text: 'hi' } })
  check('room:message', pushSchemas.get('room:message'), (await alice.next(isPush('room:message'))).data)
  await bob.request('room:typing', { room: 'lobby', typing: true })
  check('room:typing', pushSchemas.get('room:typing'), (await alice.next(isPush('room:typing'))).data)
  await ack('room:publish', { room: 'lobby', payload: 1 })
  await ack('room:typing', { room: 'lobby', typing: false })
  await ack('presence:list', { room: 'lobby' })
  await ack('ping')
  await ack('room:join', { room: 'lobby', since: 0 })
  await bob.request('room:leave', { room: 'lobby' })
  check('presence:leave', pushSchemas.get('presence:leave'), (await alice.next(isPush('presence:leave'))).data)
  await ack('room:leave', { room: 'lobby' })
  const refused = await alice.request('room:join', { room: 42 })
  t.ok(Value.Check(ErrorEnvelope, refused), 'an error answer matches the error envelope')
})

t.test('an SSE stream\'s stream:ready and numbered messages match the schemas the document is built from', async (t) => {
  const server = await listen(t)
  const sse = await openSse(t, server, { path: '/sse?room=lobby' })
  const sseSchemas = new Map(pushes.filter((p) => p.transports.includes('sse')).map((p) => [p.event, p.data]))
  const ready = await sse.next(isEvent('stream:ready'))
  t.ok(Value.Check(sseSchemas.get('stream:ready')!, JSON.parse(ready.data!)), 'stream:ready')
  const bob = await openSocket(t, server, { sub: 'bob' })
  await bob.request('room:join', { room: 'lobby' })
  await bob.request('room:publish', { room: 'lobby', payload: 'over SSE' })
  const message = await sse.next(isEvent('room:message'))
  t.ok(Value.Check(sseSchemas.get('room:message')!, JSON.parse(message.data!)), 'room:message')
})

t.test('a feed\'s schema must be its domain event\'s data type (else npx tsc --noEmit fails)', async (t) => {
  const declare = (app: App): void => {
    // @ts-expect-error op is missing from the schema: it is not what probe:changed emits
    app.realtime.feed('probe:changed', Type.Object({ id: Type.String() }), 'probe')
    app.realtime.feed('probe:changed', ProbeChange, 'probe')
  }
  t.type(declare, 'function')
  t.ok(Object.keys(closeCodes).length >= Object.keys(CloseCode).length)
})

function isPush (event: string): (m: Message) => boolean {
  return (m) => m.event === event
}
