// The event router without a network: envelope parsing, lookup, TypeBox validation, authorization,
// exactly one ack or error per id, error codes, and loading event files from a directory.

import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import { AppError, ErrorCode } from '../../core/errors.ts'
import { EventRouter, defineEvent, isEventDefinition, loadEventDirectory, type RouterSession } from '../../realtime/protocol/event-router.ts'
import { RoomHub } from '../../realtime/hub/room-hub.ts'
import { ROOT, tempDir } from '../helpers/app.ts'

interface Sent { event: string, id?: string, data?: any }

function session (): RouterSession & { sent: Sent[], labels: string[] } {
  const sent: Sent[] = []
  const labels: string[] = []
  const unused = async (): Promise<never> => { throw new Error('not used here') }
  return {
    sent,
    labels,
    // The app's services: none are used by these events.
    app: {} as FastifyInstance,
    connectionId: 'c1',
    user: { sub: 'alice', scopes: ['a'], exp: 0 },
    rooms: new Set(['member-of']),
    hub: new RoomHub({ policies: [] }),
    send: (event, data) => { sent.push({ event, data }) },
    sendText: (text, label) => { sent.push(JSON.parse(text) as Sent); labels.push(label) },
    join: unused,
    leave: unused,
    publish: unused,
    presence: unused
  }
}

const echo = defineEvent({
  event: 'echo',
  data: Type.Object({ text: Type.String({ maxLength: 5 }), n: Type.Optional(Type.Integer()) }),
  ack: Type.Object({ text: Type.String(), by: Type.String() }),
  handle: ({ text }, ctx) => ({ text, by: ctx.user.sub })
})
const guarded = defineEvent({
  event: 'guarded',
  data: Type.Object({ room: Type.String() }),
  ack: Type.Null(),
  authorize: ({ room }, ctx) => ctx.rooms.has(room),
  handle: () => null
})
const failing = defineEvent({
  event: 'failing',
  data: Type.Object({ kind: Type.String() }),
  ack: Type.Null(),
  handle: ({ kind }) => {
    if (kind === 'conflict') throw new AppError(ErrorCode.CONFLICT, 'already there')
    if (kind === 'forbidden') throw new AppError(ErrorCode.FORBIDDEN, 'not yours')
    throw new Error('database password is hunter2')
  }
})

t.test('a valid event with an id gets exactly one ack carrying the handler\'s result', async (t) => {
  const received: string[] = []
  const router = new EventRouter([echo], { onReceived: (e) => received.push(e) })
  const s = session()
  await router.dispatch(s, JSON.stringify({ event: 'echo', data: { text: 'hi' }, id: 'a1' }))
  t.same(s.sent, [{ event: 'ack', id: 'a1', data: { text: 'hi', by: 'alice' } }])
  t.same(s.labels, ['ack'])
  await router.dispatch(s, Buffer.from(JSON.stringify({ event: 'echo', data: { text: 'yo' } })))
  t.equal(s.sent.length, 1, 'no id → no ack')
  t.same(received, ['echo', 'echo'])
})

t.test('an event whose ack is null acks with data null', async (t) => {
  const s = session()
  await new EventRouter([guarded]).dispatch(s, JSON.stringify({ event: 'guarded', data: { room: 'member-of' }, id: 'g' }))
  t.same(s.sent, [{ event: 'ack', id: 'g', data: null }])
})

t.test('envelope errors → INVALID_MESSAGE (with the id whenever it is readable)', async (t) => {
  const errors: string[] = []
  const router = new EventRouter([echo], { onErrorSent: (code) => errors.push(code) })
  const cases: Array<[string, string, string | undefined, RegExp]> = [
    ['not JSON', '{oops', undefined, /not valid JSON/],
    ['an array', '[1]', undefined, /JSON object/],
    ['null', 'null', undefined, /JSON object/],
    ['a string', '"echo"', undefined, /JSON object/],
    ['no event', '{"id":"x1"}', 'x1', /event must be/],
    ['an empty event', '{"event":"","id":"x2"}', 'x2', /event must be/],
    ['a numeric event', '{"event":5,"id":"x3"}', 'x3', /event must be/],
    ['an event name over 128 characters', JSON.stringify({ event: 'e'.repeat(129), id: 'x4' }), 'x4', /event must be/],
    ['a numeric id', '{"event":"echo","id":7}', undefined, /id must be/],
    ['an empty id', '{"event":"echo","id":""}', undefined, /id must be/],
    ['an id over 128 characters', JSON.stringify({ event: 'echo', id: 'i'.repeat(129) }), undefined, /id must be/]
  ]
  for (const [name, raw, id, message] of cases) {
    const s = session()
    await router.dispatch(s, raw)
    t.equal(s.sent.length, 1, `${name}: one answer`)
    t.match(s.sent[0], { event: 'error', data: { code: 'INVALID_MESSAGE', message } }, name)
    t.equal(s.sent[0]!.id, id, `${name}: id`)
  }
  const s = session()
  await router.dispatch(s, Buffer.from('{"event":"echo"}'), true)
  t.match(s.sent, [{ event: 'error', data: { code: 'INVALID_MESSAGE', message: /binary/ } }], 'binary frames')
  t.equal(errors.length, cases.length + 1)
})

t.test('an unknown event → UNKNOWN_EVENT, naming it safely', async (t) => {
  const s = session()
  await new EventRouter([echo]).dispatch(s, JSON.stringify({ event: 'nope\u0000\u2028', id: 'u' }))
  t.same(s.sent, [{ event: 'error', id: 'u', data: { code: 'UNKNOWN_EVENT', message: 'unknown event "nope??"' } }])
})

t.test('data failing the schema → VALIDATION with each failing path', async (t) => {
  const router = new EventRouter([echo])
  const s = session()
  await router.dispatch(s, JSON.stringify({ event: 'echo', data: { text: 'too long', n: 1.5 }, id: 'v' }))
  t.match(s.sent, [{ event: 'error', id: 'v', data: { code: 'VALIDATION', message: /^invalid data for "echo": \/data\/text/ } }])
  t.same(s.sent[0]!.data.errors.map((e: { path: string }) => e.path), ['/data/text', '/data/n'])
  const missing = session()
  await router.dispatch(missing, JSON.stringify({ event: 'echo', id: 'm' }))
  t.match(missing.sent, [{ event: 'error', data: { code: 'VALIDATION', errors: [{ path: '/data' }] } }], 'data absent')
})

t.test('authorize returning false → FORBIDDEN and the handler does not run', async (t) => {
  const s = session()
  await new EventRouter([guarded]).dispatch(s, JSON.stringify({ event: 'guarded', data: { room: 'elsewhere' }, id: 'f' }))
  t.match(s.sent, [{ event: 'error', id: 'f', data: { code: 'FORBIDDEN' } }])
})

t.test('a handler throwing an AppError answers its code and message; anything else is INTERNAL and logged', async (t) => {
  const logged: Array<[unknown, string]> = []
  const router = new EventRouter([failing], { onHandlerError: (err, event) => logged.push([err, event]) })
  const s = session()
  await router.dispatch(s, JSON.stringify({ event: 'failing', data: { kind: 'conflict' }, id: '1' }))
  await router.dispatch(s, JSON.stringify({ event: 'failing', data: { kind: 'forbidden' }, id: '2' }))
  await router.dispatch(s, JSON.stringify({ event: 'failing', data: { kind: 'bug' }, id: '3' }))
  await router.dispatch(s, JSON.stringify({ event: 'failing', data: { kind: 'bug' } }))
  t.same(s.sent, [
    { event: 'error', id: '1', data: { code: 'CONFLICT', message: 'already there' } },
    { event: 'error', id: '2', data: { code: 'FORBIDDEN', message: 'not yours' } },
    { event: 'error', id: '3', data: { code: 'INTERNAL', message: 'the server failed to handle this event' } },
    { event: 'error', data: { code: 'INTERNAL', message: 'the server failed to handle this event' } }
  ])
  t.notMatch(JSON.stringify(s.sent), /hunter2/, 'internal details never reach the client')
  t.equal(logged.length, 2)
  t.equal(logged[0]![1], 'failing')
})

t.test('refuse() answers a frame refused before dispatch, echoing its id when readable', async (t) => {
  const router = new EventRouter([echo])
  const s = session()
  router.refuse(s, JSON.stringify({ event: 'echo', id: 'r' }), 'RATE_LIMITED', 'slow down')
  router.refuse(s, 'garbage', 'RATE_LIMITED', 'slow down')
  t.same(s.sent, [
    { event: 'error', id: 'r', data: { code: 'RATE_LIMITED', message: 'slow down' } },
    { event: 'error', data: { code: 'RATE_LIMITED', message: 'slow down' } }
  ])
})

t.test('definitions are checked when the router is built', async (t) => {
  t.throws(() => new EventRouter([echo, echo]), /"echo" is defined twice/)
  t.throws(() => new EventRouter([{ event: 'x' } as never]), TypeError)
  t.same(new EventRouter([guarded, echo]).events, ['echo', 'guarded'])
  t.notOk(isEventDefinition(null))
  t.notOk(isEventDefinition({ event: 'x', data: {}, ack: {}, handle: () => {}, authorize: 'yes' }))
  t.notOk(isEventDefinition({ event: 'x', data: {}, handle: () => {} }), 'an event declares its ack')
  t.notOk(isEventDefinition({ event: 'x', data: {}, ack: {}, handle: () => {}, summary: 1 }))
  t.ok(isEventDefinition(echo))
})

t.test('an event\'s handler must return what its ack schema says (else npx tsc --noEmit fails)', async (t) => {
  const wrong = {
    event: 'count',
    data: Type.Object({}),
    ack: Type.Object({ count: Type.Integer() }),
    handle: () => ({ count: 'three' })
  }
  // @ts-expect-error the handler's result is not the ack's type
  t.ok(isEventDefinition(defineEvent(wrong)), 'the shape is still a definition: only the type check refuses it')
})

t.test('loadEventDirectory: one file per event, nothing to register elsewhere', async (t) => {
  // The built-in directory loads and includes the protocol's events; adding an event file keeps this true.
  const builtIn = new EventRouter(await loadEventDirectory(join(ROOT, 'realtime/protocol/events'))).events
  for (const event of ['room:join', 'room:leave', 'room:publish', 'presence:list']) t.ok(builtIn.includes(event), `${event} is built in`)

  const dir = tempDir('keel-events-')
  const routerUrl = new URL('../../realtime/protocol/event-router.ts', import.meta.url).href
  const typeboxUrl = import.meta.resolve('@sinclair/typebox')
  writeFileSync(join(dir, 'shout.ts'), `import { Type } from '${typeboxUrl}'\nimport { defineEvent } from '${routerUrl}'\n` +
    'export default defineEvent({ event: \'shout\', data: Type.String(), ack: Type.String(), handle: (text: string) => text.toUpperCase() })\n')
  writeFileSync(join(dir, '_helper.ts'), 'export default 1\n')
  writeFileSync(join(dir, 'shout.test.ts'), 'throw new Error("tests are not events")\n')
  writeFileSync(join(dir, 'types.d.ts'), 'export {}\n')
  writeFileSync(join(dir, 'notes.md'), '# not code\n')
  const loaded = await loadEventDirectory(dir)
  t.same(loaded.map((d) => d.event), ['shout'], 'helpers, tests, declarations and other files are skipped')
  const s = session()
  await new EventRouter(loaded).dispatch(s, JSON.stringify({ event: 'shout', data: 'hey', id: 's' }))
  t.same(s.sent, [{ event: 'ack', id: 's', data: 'HEY' }])

  const bad = tempDir('keel-events-bad-')
  mkdirSync(join(bad, 'sub'))
  writeFileSync(join(bad, 'wrong.ts'), 'export default { name: "not an event" }\n')
  await t.rejects(loadEventDirectory(bad), { message: /wrong\.ts: the default export must be defineEvent/ })
})
