// The AsyncAPI 3.0 document of the real-time protocol, built from what the app loaded and declared: the
// event definitions (realtime/protocol/events/, as the WebSocket transport loaded them), the server's
// pushes (protocol/pushes.ts), the resources' feeds and the room policies. Served at
// GET /docs/asyncapi.json, next to the OpenAPI document. Adding an event file, a feed or a room policy
// changes the document with no edit here; nothing here is written per event.

import fp from 'fastify-plugin'
import type { FastifyInstance, FastifySchema } from 'fastify'
import type { TSchema } from '@sinclair/typebox'
import pkg from '../package.json' with { type: 'json' }
import type { EventDefinition } from './protocol/event-router.ts'
import {
  ErrorEnvelope, ackEnvelope, errorCodes, closeCodes, pushEnvelope, pushes, requestEnvelope, roomPush,
  type PushDefinition
} from './protocol/pushes.ts'
import type { DescribedRoomPolicy } from './protocol/rooms.ts'
import type { FeedDeclaration } from './plugin.ts'

export const ASYNCAPI_PATH = '/docs/asyncapi.json'

/** What the document is built from. */
export interface AsyncApiSources {
  /** The client events, as loaded. */
  definitions: readonly EventDefinition[]
  /** What the server pushes on its own: the built-in pushes and the feeds' (see `pushesOf`). */
  pushes: readonly PushDefinition[]
  /** In the order the hub applies them. */
  roomPolicies: readonly DescribedRoomPolicy[]
  /** Whether the server speaks TLS (wss/https) or not (ws/http). */
  tls: boolean
}

type Json = Record<string, unknown>

const ref = (pointer: string): Json => ({ $ref: pointer })
const WS = 'ws'
const SSE = 'sse'
const SERVERS = { [WS]: 'websocket', [SSE]: 'eventStream' }
const ERROR = 'error'

/** The built-in pushes and one per feed: the domain event's data plus `room` and `seq`, on both transports. */
export function pushesOf (feeds: readonly FeedDeclaration[]): PushDefinition[] {
  const fed = feeds.map((feed): PushDefinition => ({
    event: feed.event,
    data: roomPush(feed.data),
    transports: [WS, SSE],
    summary: feed.data.description ?? `The domain event ${feed.event}`,
    description: `Numbered, replayed on resume. Published to ${feed.room === undefined ? 'a room chosen per event' : `room \`${feed.room}\``} by the server.`
  }))
  return [...pushes, ...fed]
}

/** Component keys allow letters, digits, `.`, `-` and `_`: `room:join` → `room.join`, made unique. */
function keyMaker (): (name: string) => string {
  const used = new Set<string>()
  return (name) => {
    const base = name.replace(/[^A-Za-z0-9_-]+/g, '.').replace(/^\.|\.$/g, '') || 'event'
    let key = base
    for (let n = 2; used.has(key); n++) key = `${base}_${n}`
    used.add(key)
    return key
  }
}

function roomsTable (policies: readonly DescribedRoomPolicy[]): string {
  const rows = policies.map((p) => {
    const names = typeof p.match === 'string' ? `\`${p.match}\`` : `\`/${p.match.source}/\``
    const who = p.description ?? 'not described (its `canJoin` decides)'
    return `| ${names} | ${who} | ${p.clientPublish ? 'members' : 'server only'} | ${p.presence ? 'yes' : 'no'} | ${p.slowConsumer ?? 'server default'} |`
  })
  return ['| Room names | Which rooms, who may join | Who publishes | Presence | Slow consumer |', '|---|---|---|---|---|', ...rows].join('\n')
}

function closeCodesTable (): string {
  return ['| Close code | Meaning |', '|---|---|', ...Object.entries(closeCodes).map(([code, meaning]) => `| ${code} | ${meaning} |`)].join('\n')
}

const PROTOCOL = `Frames are JSON text. A client sends \`{event, data?, id?}\`; with an \`id\` the server answers exactly once, \`{event: "ack", id, data}\` or \`{event: "error", id, data: {code, message, errors?}}\`. Pushes are \`{event, data}\`.

**Resume and gaps.** A room's numbered pushes carry \`room\` and \`seq\` (1, 2, 3… per room). After a reconnect, \`room:join\` with \`since\` (the last seq seen) replays what followed before its ack; the ack's \`recovered\` is false when the history no longer reaches back (refetch the room's state). A seq that jumps by more than one is a gap. Over SSE, \`Last-Event-ID\` resumes every room of the stream, and \`stream:ready\` reports \`recovered\` per room. Transient pushes (presence, typing) carry no seq and are never replayed. (The Keel client reports a resume as its \`resumed\` event and a jump as \`gap\`: neither is a frame.)`

function info (sources: AsyncApiSources): Json {
  return {
    title: `${pkg.name} real-time API`,
    version: pkg.version,
    description: `${PROTOCOL}\n\n**Rooms** (the first policy whose names match applies; other names cannot be joined):\n\n${roomsTable(sources.roomPolicies)}`
  }
}

function servers (host: string, tls: boolean): Json {
  const security = [ref('#/components/securitySchemes/bearer'), ref('#/components/securitySchemes/accessToken')]
  return {
    [SERVERS[WS]]: { host, protocol: tls ? 'wss' : 'ws', description: 'WebSocket (HTTP/1.1 upgrade, or HTTP/2 extended CONNECT)', security },
    [SERVERS[SSE]]: { host, protocol: tls ? 'https' : 'http', description: 'Server-sent events', security }
  }
}

const securitySchemes = {
  bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'An access token in `Authorization: Bearer …`' },
  accessToken: { type: 'httpApiKey', name: 'access_token', in: 'query', description: 'The same token as `?access_token=`, for browsers (WebSocket and EventSource cannot set headers)' }
}

const accessTokenQuery = { type: 'string', description: 'the access token, when the Authorization header cannot be sent' }

interface Built { messages: Json, operations: Json, channelMessages: Record<string, Json> }

function message (name: string, title: string, payload: TSchema, summary?: string, description?: string): Json {
  return { name, title, contentType: 'application/json', payload, ...(summary === undefined ? {} : { summary }), ...(description === undefined ? {} : { description }) }
}

/** Each client event: its frame, its ack, and the operation (the server receives it, replies ack or error). */
function clientEvents (definitions: readonly EventDefinition[], key: (name: string) => string, built: Built): void {
  const ws = built.channelMessages[WS]!
  for (const definition of definitions) {
    const summary = definition.summary ?? definition.description?.split('\n')[0]
    const request = key(definition.event)
    const ack = key(`${definition.event}.ack`)
    built.messages[request] = message(definition.event, definition.event, requestEnvelope(definition.event, definition.data), summary, definition.description)
    built.messages[ack] = message('ack', `${definition.event} ack`, ackEnvelope(definition.ack), `The answer to ${definition.event} (when it had an id)`)
    ws[request] = ref(`#/components/messages/${request}`)
    ws[ack] = ref(`#/components/messages/${ack}`)
    built.operations[request] = {
      action: 'receive',
      channel: ref(`#/channels/${WS}`),
      title: definition.event,
      ...(summary === undefined ? {} : { summary }),
      messages: [ref(`#/channels/${WS}/messages/${request}`)],
      reply: { channel: ref(`#/channels/${WS}`), messages: [ref(`#/channels/${WS}/messages/${ack}`), ref(`#/channels/${WS}/messages/${ERROR}`)] }
    }
  }
}

/** Each push, per transport: an envelope over WebSocket; over SSE the `event:` line names it and `data:` is its data. */
function serverPushes (list: readonly PushDefinition[], key: (name: string) => string, built: Built): void {
  for (const push of list) {
    for (const transport of push.transports) {
      const name = key(`${push.event}.${transport}`)
      const payload = transport === WS ? pushEnvelope(push.event, push.data) : push.data
      const description = transport === WS ? push.description : [push.description, 'SSE: `event:` is the name, `data:` the payload; numbered events carry an `id:` to send back as Last-Event-ID.'].filter(Boolean).join(' ')
      built.messages[name] = message(push.event, `${push.event} (${transport === WS ? 'WebSocket' : 'SSE'})`, payload, push.summary, description)
      built.channelMessages[transport]![name] = ref(`#/components/messages/${name}`)
      built.operations[name] = {
        action: 'send',
        channel: ref(`#/channels/${transport}`),
        title: push.event,
        summary: push.summary,
        messages: [ref(`#/channels/${transport}/messages/${name}`)]
      }
    }
  }
}

function channels (built: Built): Json {
  return {
    [WS]: {
      address: '/ws',
      title: 'WebSocket',
      description: `One connection per client; rooms are joined with \`room:join\`. It ends with one of these close codes:\n\n${closeCodesTable()}`,
      servers: [ref(`#/servers/${SERVERS[WS]}`)],
      messages: built.channelMessages[WS],
      bindings: { ws: { method: 'GET', query: { type: 'object', properties: { access_token: accessTokenQuery } }, bindingVersion: '0.1.0' } },
      'x-close-codes': closeCodes
    },
    [SSE]: {
      address: '/sse',
      title: 'Server-sent events',
      description: 'GET /sse?room=a&room=b: the rooms\' numbered messages as `text/event-stream`, read-only. A reconnect sends `Last-Event-ID` (the last `id:` seen) to resume every room of the stream; an id this stream did not send → 400. Refusals before the stream opens are problem+json (401, 403, 429, 503).',
      servers: [ref(`#/servers/${SERVERS[SSE]}`)],
      messages: built.channelMessages[SSE]
    }
  }
}

const sseQuery = {
  type: 'object',
  required: ['room'],
  properties: {
    room: { type: 'array', minItems: 1, items: { type: 'string' }, description: 'a room to subscribe to; repeat the parameter for more' },
    access_token: accessTokenQuery
  }
}

/** The SSE operations are GETs with the rooms in the query. */
function withSseBinding (operations: Json): void {
  for (const operation of Object.values(operations) as Json[]) {
    if ((operation.channel as Json).$ref === `#/channels/${SSE}`) {
      operation.bindings = { http: { method: 'GET', query: sseQuery, bindingVersion: '0.3.0' } }
    }
  }
}

/** The whole document, for clients reaching the server at `host` (`name[:port]`). */
export function asyncApiDocument (sources: AsyncApiSources, host: string): Json {
  const key = keyMaker()
  const built: Built = { messages: {}, operations: {}, channelMessages: { [WS]: {}, [SSE]: {} } }
  // The error envelope answers every event: its key is reserved before any event's.
  key(ERROR)
  built.messages[ERROR] = message(ERROR, 'error', ErrorEnvelope, 'A refused frame (with its id when it had a readable one)', `Codes: ${errorCodes.join(', ')}.`)
  built.channelMessages[WS]![ERROR] = ref(`#/components/messages/${ERROR}`)
  built.operations[ERROR] = {
    action: 'send',
    channel: ref(`#/channels/${WS}`),
    title: ERROR,
    summary: 'The answer to a refused frame; without an id, about a frame that had none (or was unreadable)',
    messages: [ref(`#/channels/${WS}/messages/${ERROR}`)]
  }
  clientEvents(sources.definitions, key, built)
  serverPushes(sources.pushes, key, built)
  withSseBinding(built.operations)
  return {
    asyncapi: '3.0.0',
    info: info(sources),
    defaultContentType: 'application/json',
    servers: servers(host, sources.tls),
    channels: channels(built),
    operations: built.operations,
    components: { messages: built.messages, securitySchemes }
  }
}

/** The authority the request was addressed to, when it is a plain `host[:port]`; else `localhost`. */
function hostOf (authority: string | undefined): string {
  return authority !== undefined && /^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:\d{1,5})?$/.test(authority) ? authority : 'localhost'
}

export interface AsyncApiDocsOptions {
  tls: boolean
}

/**
 * Serves the document. Its sources are read once the app is ready (every event, feed and room policy
 * declared); each response names the host the request reached as the servers' host. Public, outside
 * the OpenAPI document, revalidated with a computed ETag.
 */
async function asyncApiDocs (fastify: FastifyInstance, options: AsyncApiDocsOptions): Promise<void> {
  let sources: AsyncApiSources | undefined
  fastify.addHook('onReady', async () => {
    const { realtime, webSockets } = fastify
    sources = { definitions: webSockets.definitions, pushes: pushesOf(realtime.feeds), roomPolicies: realtime.roomPolicies, tls: options.tls }
  })
  fastify.route({
    method: 'GET',
    url: ASYNCAPI_PATH,
    config: { auth: false, cache: { noCache: true, etag: 'computed' } },
    schema: { hide: true } as FastifySchema,
    handler: async (request, reply) => {
      reply.type('application/json; charset=utf-8')
      return JSON.stringify(asyncApiDocument(sources!, hostOf(request.host)))
    }
  })
}

export default fp(asyncApiDocs, { name: 'keel-asyncapi', dependencies: ['keel-realtime', 'keel-websocket'] })
