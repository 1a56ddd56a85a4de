// room:typing {room, typing} → the other members see `room:typing {room, user, typing}`.
// Members of rooms that allow client messages only. Transient: not numbered, never replayed.
// (This is the README's worked example of adding an event.)

import { Type } from '@sinclair/typebox'
import { defineEvent } from '../event-router.ts'
import type { Published, TypingChange } from '../pushes.ts'
import { RoomName } from '../rooms.ts'

export default defineEvent({
  event: 'room:typing',
  summary: 'Tells the other members of a room that this user started or stopped typing',
  data: Type.Object({ room: RoomName, typing: Type.Boolean() }),
  ack: Type.Object({ room: RoomName }),
  authorize: ({ room }, ctx) => ctx.hub.canClientPublish(ctx, room),
  handle: async ({ room, typing }, ctx) => {
    const change: Published<TypingChange> = { user: ctx.user.sub, typing }
    await ctx.publish(room, 'room:typing', change, { transient: true })
    return { room }
  }
})
