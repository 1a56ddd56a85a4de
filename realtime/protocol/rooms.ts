// The built-in kinds of room: who may join them and how they behave. The hub applies the first policy
// whose `match` fits the room name; a name no policy matches cannot be joined (closed by default).
// A resource adds its own rooms with `fastify.realtime.addRoomPolicy` (checked before these), in its folder.
// Each policy says in prose which rooms it covers and who may join them: the AsyncAPI document
// (realtime/asyncapi.ts) shows it beside what the policy's fields say.

import { Type } from '@sinclair/typebox'
import { ROOM_NAME_PATTERN, type RoomPolicy } from '../hub/room-hub.ts'

/** The schema of a room name in event data. */
export const RoomName = Type.String({ pattern: ROOM_NAME_PATTERN, description: 'a room name: printable ASCII, no spaces or quotes, 1–200 characters' })

/** A room policy as the app declares it: the hub's rules, and who may join, in words, for the document. */
export interface DescribedRoomPolicy extends RoomPolicy {
  /** Which rooms these are and who may join them, e.g. "`user:<sub>`: only that user" (the document says so). */
  readonly description?: string
}

/** For rooms any authenticated user may join. */
export const anyUser = (): boolean => true

export const builtInRoomPolicies: readonly DescribedRoomPolicy[] = [
  // One user's private channel (all their tabs and devices): only that subject may join; server writes.
  {
    match: /^user:/,
    description: '`user:<sub>`: one user\'s private channel (all their tabs and devices); only the user whose subject it names may join',
    canJoin: (user, room) => room === `user:${user.sub}`,
    clientPublish: false,
    presence: false
  },
  // Open rooms (chat-like): plain names without a namespace prefix; any authenticated user may join,
  // members publish to each other and see who is there. Names with an undeclared `prefix:` are refused,
  // so a new namespace is always a deliberate policy.
  {
    match: /^[A-Za-z0-9_.-]{1,64}$/,
    description: 'open rooms: plain names (letters, digits, `_.-`, no `prefix:`); any authenticated user may join',
    canJoin: anyUser,
    clientPublish: true,
    presence: true
  }
]
