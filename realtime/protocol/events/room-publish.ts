// room:publish {room, payload} → the other members receive
// `room:message {room, from, payload, seq}`. Members only, in rooms whose policy lets clients publish.
// Ack: {room, seq}. A client that lost the ack re-sends the same envelope `id`: within the dedup
// window it gets the same ack and the room does not see the message twice (on any instance).

import { Type } from '@sinclair/typebox'
import { AppError, ErrorCode } from '../../../core/errors.ts'
import { defineEvent } from '../event-router.ts'
import type { Published, RoomMessage } from '../pushes.ts'
import { RoomName } from '../rooms.ts'

export default defineEvent({
  event: 'room:publish',
  summary: 'Publishes to a room: its other members receive room:message',
  description: 'Members only, in rooms whose policy lets clients publish. Re-sending the same `id` after a lost ack gets the same ack; the room sees the message once.',
  data: Type.Object({ room: RoomName, payload: Type.Unknown() }),
  ack: Type.Object({ room: RoomName, seq: Type.Integer({ minimum: 1, description: 'the message\'s seq in the room' }) }),
  authorize: ({ room }, ctx) => ctx.hub.canClientPublish(ctx, room),
  handle: async ({ room, payload }, ctx, { id }) => {
    const dedupKey = id === undefined ? undefined : `${ctx.user.sub}\n${id}`
    const message: Published<RoomMessage> = { from: ctx.user.sub, payload }
    const seq = await ctx.publish(room, 'room:message', message, { dedupKey })
    // The hub numbers every message that is not transient: this one always has its seq.
    if (seq === undefined) throw new AppError(ErrorCode.INTERNAL, 'the message was not numbered')
    return { room, seq }
  }
})
