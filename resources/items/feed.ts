// What the example resource announces, and where it goes: every change to an item is the domain event
// `items:changed` {id, op} (declared here, emitted by routes.ts), and the real-time layer publishes it
// to room `items` (rooms.ts) for WebSocket and SSE watchers.

import type { Realtime } from '../../realtime/plugin.ts'
import { ITEMS_ROOM } from './rooms.ts'

export interface ItemChange {
  id: string
  op: 'created' | 'updated' | 'deleted'
}

declare module '../../core/domain-events.ts' {
  interface DomainEventMap {
    'items:changed': ItemChange
  }
}

export function feedItemChanges (realtime: Realtime): void {
  realtime.feed('items:changed', ITEMS_ROOM)
}
