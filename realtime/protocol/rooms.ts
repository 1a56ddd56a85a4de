// Who may join which rooms, and how each kind of room behaves. The hub applies the first policy
// whose `match` fits the room name; a name no policy matches cannot be joined (closed by default).
// Add a kind of room by adding a policy here.

import { Type } from '@sinclair/typebox'
import { ROOM_NAME_PATTERN, type RoomPolicy } from '../hub/room-hub.ts'

/** The schema of a room name in event data. */
export const RoomName = Type.String({ pattern: ROOM_NAME_PATTERN, description: 'a room name: printable ASCII, no spaces or quotes, 1–200 characters' })

const anyUser = (): boolean => true

export const roomPolicies: readonly RoomPolicy[] = [
  // The example resource's change feed: any authenticated user may watch it; only the server writes.
  // A client that falls behind misses notifications instead of being disconnected: it sees the gap in
  // `seq` and refetches the list, which is cheaper than a reconnect storm when a burst of writes lands.
  { match: 'items', canJoin: anyUser, clientPublish: false, presence: false, slowConsumer: 'drop' },
  // One user's private channel (all their tabs and devices): only that subject may join; server writes.
  { match: /^user:/, canJoin: (user, room) => room === `user:${user.sub}`, clientPublish: false, presence: false },
  // Open rooms (chat-like): plain names without a namespace prefix; any authenticated user may join,
  // members publish to each other and see who is there. Names with an undeclared `prefix:` are refused,
  // so a new namespace is always a deliberate policy here.
  { match: /^[A-Za-z0-9_.-]{1,64}$/, canJoin: anyUser, clientPublish: true, presence: true }
]
