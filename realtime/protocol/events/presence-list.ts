// presence:list {room} → who is in a room this user may join. Ack: {room, users, count}.

import { Type } from '@sinclair/typebox'
import { defineEvent } from '../event-router.ts'
import { RoomName } from '../rooms.ts'

export default defineEvent({
  event: 'presence:list',
  summary: 'Who is in a room (rooms that track presence, for users who may join them)',
  data: Type.Object({ room: RoomName }),
  ack: Type.Object({
    room: RoomName,
    users: Type.Array(Type.String(), { description: 'the subjects in the room' }),
    count: Type.Integer({ minimum: 0 })
  }),
  handle: async ({ room }, ctx) => await ctx.presence(room)
})
