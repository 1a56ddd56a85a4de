// The example resource's room: `items`, its change feed. Any authenticated user may watch it; only the
// server writes (feed.ts). A client that falls behind misses notifications instead of being
// disconnected: it sees the gap in `seq` and refetches the list, which is cheaper than a reconnect
// storm when a burst of writes lands.

import { anyUser, type DescribedRoomPolicy } from '../../realtime/protocol/rooms.ts'

export const ITEMS_ROOM = 'items'

export const itemsRoomPolicy: DescribedRoomPolicy = {
  match: ITEMS_ROOM,
  description: '`items`: the example resource\'s change feed; any authenticated user may watch it',
  canJoin: anyUser,
  clientPublish: false,
  presence: false,
  slowConsumer: 'drop'
}
