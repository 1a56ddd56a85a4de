// `new event <room:verb>`: an event file in realtime/protocol/events/ (loaded by the WebSocket
// transport like every other, so it is in the protocol and its documents by being there) — its data
// schema, an authorization hook (members of the room only) and a handler that tells the room's other
// members — and a test that sends it through a real /ws connection.

import { GeneratorError, emptyPlan, type Plan } from './plan.ts'
import { nameForms, type NameForms } from './names.ts'
import { sourceMentions } from './project.ts'

const EVENT_NAME = /^([a-z][a-z0-9-]{0,63}):([a-z][a-z0-9-]{0,63})$/
// Namespaces the protocol itself uses: its own client events and what the server sends.
const PROTOCOL_NAMESPACES = new Set(['room', 'presence', 'connection', 'stream', 'user', 'error', 'ack', 'ping'])

interface EventModel {
  readonly event: string
  readonly room: string
  /** `notes-pin`: the file's name. */
  readonly file: NameForms
}

function eventFile (e: EventModel): string {
  const ack = `${e.file.pascal}Ack`
  return `// ${e.event} {id} → the other members of room \`${e.room}\` receive \`${e.event} {id, by, room, seq}\`. Members of
// the room only: whoever its policy let in (FORBIDDEN otherwise). Ack: {room, seq}. The data and what the
// handler does are this event's to shape; the schema is what the router validates before it runs.

import { Type } from '@sinclair/typebox'
import { defineEvent } from '../event-router.ts'

const ROOM = '${e.room}'

/** What the sender's \`ack\` carries. */
export const ${ack} = Type.Object({ room: Type.String(), seq: Type.Optional(Type.Integer({ minimum: 1 })) })

export default defineEvent({
  event: '${e.event}',
  summary: 'Tells the other members of room \`${e.room}\` about {id}',
  data: Type.Object({ id: Type.String({ minLength: 1, maxLength: 64, description: 'what the event is about' }) }, { additionalProperties: false }),
  // Membership, not the room's name: joining is where the room's policy decided who may be there.
  ack: ${ack},
  authorize: (_data, ctx) => ctx.rooms.has(ROOM),
  handle: async ({ id }, ctx) => {
    const seq = await ctx.publish(ROOM, '${e.event}', { id, by: ctx.user.sub })
    return { room: ROOM, seq }
  }
})
`
}

function eventTestFile (e: EventModel): string {
  return `// ${e.event} through a real /ws connection: a member's event reaches the room's other members and is
// acknowledged; a non-member is refused; data outside the schema is a VALIDATION error; the AsyncAPI
// document describes it (found there by its file alone).

import t from 'tap'
import { build, listen } from '../../../helpers/app.ts'
import { openSocket } from '../../../helpers/ws.ts'

t.test('${e.event} from a member of room ${e.room} reaches the other members, and its sender gets an ack', async (t) => {
  const server = await listen(t)
  const alice = await openSocket(t, server, { sub: 'alice' })
  const bob = await openSocket(t, server, { sub: 'bob' })
  for (const socket of [alice, bob]) t.match(await socket.request('room:join', { room: '${e.room}' }), { event: 'ack' })
  t.match(await alice.request('${e.event}', { id: 'first' }), { event: 'ack', data: { room: '${e.room}', seq: Number } })
  const seen = await bob.next((msg) => msg.event === '${e.event}')
  t.match(seen.data, { id: 'first', by: 'alice', room: '${e.room}' })
})

t.test('${e.event} from outside room ${e.room} → FORBIDDEN; data outside its schema → VALIDATION', async (t) => {
  const server = await listen(t)
  const outsider = await openSocket(t, server, { sub: 'outsider' })
  t.match(await outsider.request('${e.event}', { id: 'x' }), { event: 'error', data: { code: 'FORBIDDEN' } })
  t.match(await outsider.request('${e.event}', { id: '' }), { event: 'error', data: { code: 'VALIDATION' } })
  t.match(await outsider.request('${e.event}', { id: 'x', extra: 1 }), { event: 'error' }, 'unknown properties are not silently accepted')
})

t.test('${e.event} is in the AsyncAPI document: a client event with its ack', async (t) => {
  const { app } = await build(t)
  const document = (await app.inject({ url: '/docs/asyncapi.json' })).json() as { operations: Record<string, { title?: string, action: string, reply?: unknown }> }
  const operation = Object.values(document.operations).find((o) => o.title === '${e.event}' && o.action === 'receive')
  t.ok(operation, 'an operation the server receives')
  t.ok(operation?.reply, 'answered by its ack or an error')
})
`
}

export function eventPlan (root: string, name: string): Plan {
  const m = EVENT_NAME.exec(name)
  if (m === null) throw new GeneratorError(`"${name}" is not an event name room:verb in kebab-case (e.g. notes:pin)`)
  const [, room, verb] = m
  if (PROTOCOL_NAMESPACES.has(room!)) throw new GeneratorError(`refusing "${name}": the protocol already owns the "${room}:" namespace; nothing was changed`)
  const e: EventModel = { event: name, room: room!, file: nameForms(`${room}-${verb}`) }
  const path = `realtime/protocol/events/${e.file.kebab}.ts`
  const taken = sourceMentions(root, `event: '${name}'`) ?? sourceMentions(root, `'${name}'`)
  if (taken !== undefined) throw new GeneratorError(`refusing "${name}": ${taken} already uses that event name; nothing was changed`)
  const plan = emptyPlan()
  plan.files.set(path, eventFile(e))
  plan.files.set(`test/realtime/protocol/events/${e.file.kebab}.test.ts`, eventTestFile(e))
  return plan
}
