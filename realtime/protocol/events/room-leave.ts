// room:leave {room} → leaves a room. Ack: {room, left} — `left` is false when it was not a member.

import { Type } from '@sinclair/typebox'
import { defineEvent } from '../event-router.ts'
import { RoomName } from '../rooms.ts'

export default defineEvent({
  event: 'room:leave',
  summary: 'Leaves a room',
  data: Type.Object({ room: RoomName }),
  ack: Type.Object({ room: RoomName, left: Type.Boolean({ description: 'false when the connection was not a member' }) }),
  handle: async ({ room }, ctx) => ({ room, left: await ctx.leave(room) })
})
