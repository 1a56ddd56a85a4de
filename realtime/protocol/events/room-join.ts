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
  data: Type.Object({
    room: RoomName,
    since: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'the last seq seen in this room' }))
  }),
  handle: async ({ room, since }, ctx) => await ctx.join(room, { since })
})
