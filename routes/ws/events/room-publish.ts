// room:publish {room, payload} → the other members receive
// `room:message {room, from, payload, seq}`. Members only, in rooms whose policy lets clients publish.
// Ack: {room, seq}.

import { Type } from '@sinclair/typebox'
import { defineEvent } from '../../../lib/event-router.ts'
import { RoomName } from '../rooms.ts'

export default defineEvent({
  event: 'room:publish',
  data: Type.Object({ room: RoomName, payload: Type.Unknown() }),
  authorize: ({ room }, ctx) => ctx.hub.canClientPublish(ctx, room),
  handle: async ({ room, payload }, ctx) => {
    const seq = await ctx.publish(room, 'room:message', { from: ctx.user.sub, payload })
    return { room, seq }
  }
})
