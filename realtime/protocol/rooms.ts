// The built-in kinds of room: who may join them and how they behave. The hub applies the first policy
// whose `match` fits the room name; a name no policy matches cannot be joined (closed by default).
// A resource adds its own rooms with `fastify.realtime.addRoomPolicy` (checked before these), in its folder.

import { Type } from '@sinclair/typebox'
import { ROOM_NAME_PATTERN, type RoomPolicy } from '../hub/room-hub.ts'

/** The schema of a room name in event data. */
export const RoomName = Type.String({ pattern: ROOM_NAME_PATTERN, description: 'a room name: printable ASCII, no spaces or quotes, 1–200 characters' })

/** For rooms any authenticated user may join. */
export const anyUser = (): boolean => true

export const builtInRoomPolicies: readonly RoomPolicy[] = [
  // One user's private channel (all their tabs and devices): only that subject may join; server writes.
  { match: /^user:/, canJoin: (user, room) => room === `user:${user.sub}`, clientPublish: false, presence: false },
  // Open rooms (chat-like): plain names without a namespace prefix; any authenticated user may join,
  // members publish to each other and see who is there. Names with an undeclared `prefix:` are refused,
  // so a new namespace is always a deliberate policy.
  { match: /^[A-Za-z0-9_.-]{1,64}$/, canJoin: anyUser, clientPublish: true, presence: true }
]
