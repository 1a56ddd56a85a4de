// presence:list {room} → who is in a room this user may join. Ack: {room, users, count}.

import { Type } from '@sinclair/typebox'
import { defineEvent } from '../event-router.ts'
import { RoomName } from '../rooms.ts'

export default defineEvent({
  event: 'presence:list',
  data: Type.Object({ room: RoomName }),
  handle: async ({ room }, ctx) => await ctx.presence(room)
})
