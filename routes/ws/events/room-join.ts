// room:join {room} → joins a room its policy lets the user into (FORBIDDEN otherwise).
// Ack: {room, joined} — `joined` is false when the connection was already a member.

import { Type } from '@sinclair/typebox'
import { defineEvent } from '../../../lib/event-router.ts'
import { RoomName } from '../rooms.ts'

export default defineEvent({
  event: 'room:join',
  data: Type.Object({ room: RoomName }),
  handle: async ({ room }, ctx) => await ctx.join(room)
})
