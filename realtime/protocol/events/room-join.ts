// room:join {room, since?} → joins a room its policy lets the user into (FORBIDDEN otherwise).
// Ack: {room, joined, seq, recovered?} — `joined` is false when the connection was already a member;
// `seq` is the room's latest. With `since` (the last seq the client saw, e.g. before a reconnect) the
// messages after it arrive first, in order, then live ones; `recovered` says whether the history
// still reached back that far (false: refetch the room's state).

import { Type } from '@sinclair/typebox'
import { defineEvent } from '../event-router.ts'
import { RoomName } from '../rooms.ts'

export default defineEvent({
  event: 'room:join',
  summary: 'Joins a room (FORBIDDEN unless its policy lets the user in); with `since`, resumes it',
  description: 'With `since` (the last seq seen, e.g. before a reconnect) the room\'s messages after it arrive before the ack, in order, then live ones.',
  data: Type.Object({
    room: RoomName,
    since: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'the last seq seen in this room' }))
  }),
  ack: Type.Object({
    room: RoomName,
    joined: Type.Boolean({ description: 'false when the connection was already a member' }),
    seq: Type.Integer({ minimum: 0, description: 'the room\'s latest seq (0 before its first message)' }),
    recovered: Type.Optional(Type.Boolean({
      description: 'only with `since`: true when every message after it came before this ack; false when the history no longer reaches back (refetch the room\'s state)'
    }))
  }),
  handle: async ({ room, since }, ctx) => await ctx.join(room, { since })
})
