// The client's protocol types against the server's schemas. At compile time (`npx tsc --noEmit`), each
// request's data and ack, each push the server sends over WebSocket (realtime/protocol/pushes.ts), and
// the error answer are compared with the server's TypeBox schemas: a schema changed on one side only
// fails the type check, naming the event. At run time, the pushes a real server sends are held to
// exactly the members the client's types declare.

import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Static } from '@sinclair/typebox'
import t from 'tap'
import type {
  AckData, FieldError, KeelPushes, PresenceChange, ReadyData, RequestData, RequestName, RoomMessage, ServerErrorData, TypingChange
} from '../../client/keel-client.ts'
import type ping from '../../realtime/protocol/events/ping.ts'
import type presenceList from '../../realtime/protocol/events/presence-list.ts'
import type roomJoin from '../../realtime/protocol/events/room-join.ts'
import type roomLeave from '../../realtime/protocol/events/room-leave.ts'
import type roomPublish from '../../realtime/protocol/events/room-publish.ts'
import type roomTyping from '../../realtime/protocol/events/room-typing.ts'
import type { ConnectionReady, ErrorData, FieldError as ServerFieldError, pushes } from '../../realtime/protocol/pushes.ts'
import { ROOT, listen } from '../helpers/app.ts'
import { openSocket, type Message } from '../helpers/ws.ts'

// ---- Compile time: checked by `npx tsc --noEmit` ----

/** True only when A and B are the same type (not merely assignable one way). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false

/** A type as it travels in JSON: `readonly` is the server's business, and intersections are flattened. */
type Wire<T> = T extends readonly unknown[]
  ? Array<Wire<T[number]>>
  : T extends object ? { -readonly [K in keyof T]: Wire<T[K]> } : T

/** The names in `Server` whose type the client declares differently, or not at all. */
type Disagreeing<Client, Server> = {
  [E in keyof Server]: E extends keyof Client ? (Equal<Wire<Client[E]>, Wire<Server[E]>> extends true ? never : E) : E
}[keyof Server]

/** The server's events, as realtime/protocol/events/ defines them (every file: see the test below). */
interface ServerEvents {
  ping: typeof ping
  'presence:list': typeof presenceList
  'room:join': typeof roomJoin
  'room:leave': typeof roomLeave
  'room:publish': typeof roomPublish
  'room:typing': typeof roomTyping
}

type ServerData = { [E in keyof ServerEvents]: Static<ServerEvents[E]['data']> }
type ServerAcks = { [E in keyof ServerEvents]: Static<ServerEvents[E]['ack']> }
type ClientData = { [E in RequestName]: RequestData<E> }
type ClientAcks = { [E in RequestName]: AckData<E> }

/**
 * What the server pushes over WebSocket, by event, from pushes.ts: every push but `connection:ready`
 * (the client reads it as ReadyData, compared below). A push added there must be added to KeelPushes.
 */
type WsPush = Extract<typeof pushes[number], { transports: readonly ['ws', ...string[]] }>
type ServerPushes = { [P in WsPush as P['event'] extends 'connection:ready' ? never : P['event']]: Static<P['data']> }

t.test('each request\'s data and ack, each push and the error answer are typed as the server\'s schemas say (else npx tsc --noEmit fails, naming the event)', async (t) => {
  // Each spread holds the names that disagree, so a disagreement cannot be assigned to `never`.
  const disagreeing: never[] = [
    ...[] as Array<Disagreeing<ClientData, ServerData>>,
    ...[] as Array<Disagreeing<ClientAcks, ServerAcks>>,
    ...[] as Array<Disagreeing<KeelPushes, ServerPushes>>,
    ...[] as Array<Disagreeing<{ 'connection:ready': ReadyData }, { 'connection:ready': ConnectionReady }>>,
    ...[] as Array<Disagreeing<{ error: ServerErrorData, 'error field': FieldError }, { error: ErrorData, 'error field': ServerFieldError }>>
  ]
  t.same(disagreeing, [])
})

t.test('every event file of the events directory is compared above', async (t) => {
  const source = readFileSync(new URL(import.meta.url), 'utf8')
  const files = readdirSync(join(ROOT, 'realtime/protocol/events')).filter((name) => /^[^_.].*(?<!\.d|\.test)\.ts$/.test(name))
  t.ok(files.length > 0)
  for (const file of files) t.ok(source.includes(`from '../../realtime/protocol/events/${file}'`), `${file} is in ServerEvents`)
})
// ---- Run time: the pushes a real server sends ----

/** What `typeof` says of a value (`array` and `null` apart); `unknown` accepts anything, even absence. */
type Tag<V> = unknown extends V ? 'unknown' : [V] extends [readonly unknown[]] ? 'array' : ScalarTag<V>
type ScalarTag<V> = [V] extends [string] ? 'string' : [V] extends [number] ? 'number' : [V] extends [boolean] ? 'boolean' : 'object'

/** Each member of `T` with its value's tag (`?` when it may be absent): TypeScript makes a literal list exactly T's members. */
type Shape<T> = { [K in keyof T]-?: unknown extends T[K] ? 'unknown' : undefined extends T[K] ? `${Tag<Exclude<T[K], undefined>>}?` : Tag<T[K]> }

function tagOf (value: unknown): string {
  if (value === null) return 'null'
  return Array.isArray(value) ? 'array' : typeof value
}

/** How `data` differs from `shape`: members it lacks, members of another kind, members the client does not declare. */
function mismatches (data: unknown, shape: Record<string, string>): string[] {
  if (tagOf(data) !== 'object') return [`the data is ${tagOf(data)}, not an object`]
  const record = data as Record<string, unknown>
  const problems = Object.keys(record).filter((key) => !(key in shape)).map((key) => `"${key}" is not declared by the client`)
  for (const [key, tag] of Object.entries(shape)) {
    if (tag === 'unknown') continue
    const optional = tag.endsWith('?')
    const expected = optional ? tag.slice(0, -1) : tag
    if (!(key in record)) {
      if (!optional) problems.push(`"${key}" is missing`)
    } else if (tagOf(record[key]) !== expected) {
      problems.push(`"${key}" is ${tagOf(record[key])}, not ${expected}`)
    }
  }
  return problems
}

const readyShape: Shape<ReadyData> = { connectionId: 'string', user: 'object' }
const userShape: Shape<ReadyData['user']> = { sub: 'string', scopes: 'array', exp: 'number' }
const messageShape: Shape<RoomMessage> = { room: 'string', from: 'string', payload: 'unknown', seq: 'number' }
const presenceShape: Shape<PresenceChange> = { room: 'string', user: 'string', count: 'number' }
const typingShape: Shape<TypingChange> = { room: 'string', user: 'string', typing: 'boolean' }
const errorShape: Shape<ServerErrorData> = { code: 'string', message: 'string', errors: 'array?' }
const fieldErrorShape: Shape<FieldError> = { path: 'string', message: 'string' }

const is = (event: string) => (m: Message) => m.event === event

t.test('connection:ready carries exactly the members of ReadyData', async (t) => {
  const server = await listen(t)
  const { ready } = await openSocket(t, server, { sub: 'alice' })
  t.same(mismatches(ready.data, readyShape), [])
  t.same(mismatches(ready.data.user, userShape), [])
})

t.test('room:message, presence:join/leave and room:typing carry exactly the members the client declares', async (t) => {
  const server = await listen(t)
  const alice = await openSocket(t, server, { sub: 'alice' })
  const bob = await openSocket(t, server, { sub: 'bob' })
  await alice.request('room:join', { room: 'lobby' })
  await bob.request('room:join', { room: 'lobby' })
  t.same(mismatches((await alice.next(is('presence:join'))).data, presenceShape), [], 'presence:join')

  await bob.request('room:publish', { room: 'lobby', payload: { text: 'hi' } })
  t.same(mismatches((await alice.next(is('room:message'))).data, messageShape), [], 'room:message')
  await bob.request('room:typing', { room: 'lobby', typing: true })
  t.same(mismatches((await alice.next(is('room:typing'))).data, typingShape), [], 'room:typing')
  await bob.request('room:leave', { room: 'lobby' })
  t.same(mismatches((await alice.next(is('presence:leave'))).data, presenceShape), [], 'presence:leave')
})

t.test('an error frame carries exactly the members the client reads, with and without field errors', async (t) => {
  const server = await listen(t)
  const alice = await openSocket(t, server, { sub: 'alice' })
  const invalid = await alice.request('room:join', { room: 42 })
  t.equal(invalid.event, 'error')
  t.same(mismatches(invalid.data, errorShape), [], 'VALIDATION')
  t.ok(invalid.data.errors.length > 0)
  for (const fieldError of invalid.data.errors) t.same(mismatches(fieldError, fieldErrorShape), [])
  const forbidden = await alice.request('room:join', { room: 'user:someone-else' })
  t.equal(forbidden.event, 'error')
  t.same(mismatches(forbidden.data, errorShape), [], 'FORBIDDEN')
})
