// room:publish {room, payload} → the other members receive
// `room:message {room, from, payload, seq}`. Members only, in rooms whose policy lets clients publish.
// Ack: {room, seq}. A client that lost the ack re-sends the same envelope `id`: within the dedup
// window it gets the same ack and the room does not see the message twice (on any instance).

import { Type } from '@sinclair/typebox'
import { defineEvent } from '../event-router.ts'
import { RoomName } from '../rooms.ts'

export default defineEvent({
  event: 'room:publish',
  data: Type.Object({ room: RoomName, payload: Type.Unknown() }),
  authorize: ({ room }, ctx) => ctx.hub.canClientPublish(ctx, room),
  handle: async ({ room, payload }, ctx, { id }) => {
    const dedupKey = id === undefined ? undefined : `${ctx.user.sub}\n${id}`
    const seq = await ctx.publish(room, 'room:message', { from: ctx.user.sub, payload }, { dedupKey })
    return { room, seq }
  }
})
