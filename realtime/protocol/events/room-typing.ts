// room:typing {room, typing} → the other members see `room:typing {room, user, typing}`.
// Members of rooms that allow client messages only. Transient: not numbered, never replayed.
// (This is the README's worked example of adding an event.)

import { Type } from '@sinclair/typebox'
import { defineEvent } from '../event-router.ts'
import { RoomName } from '../rooms.ts'

export default defineEvent({
  event: 'room:typing',
  data: Type.Object({ room: RoomName, typing: Type.Boolean() }),
  authorize: ({ room }, ctx) => ctx.hub.canClientPublish(ctx, room),
  handle: async ({ room, typing }, ctx) => {
    await ctx.publish(room, 'room:typing', { user: ctx.user.sub, typing }, { transient: true })
    return { room }
  }
})
