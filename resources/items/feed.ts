// What the example resource announces, and where it goes: every change to an item is the domain event
// `items:changed` {id, op} (declared here with its schema, emitted by routes.ts), and the real-time layer
// publishes it to room `items` (rooms.ts) for WebSocket and SSE watchers, and documents it.

import { Type, type Static } from '@sinclair/typebox'
import type { Realtime } from '../../realtime/plugin.ts'
import { ITEMS_ROOM } from './rooms.ts'

export const ItemChange = Type.Object({
  id: Type.String({ description: 'the item\'s id' }),
  op: Type.Union([Type.Literal('created'), Type.Literal('updated'), Type.Literal('deleted')])
}, { description: 'An item was created, updated or deleted: refetch it (or the list) over HTTP.' })
export type ItemChange = Static<typeof ItemChange>

declare module '../../core/domain-events.ts' {
  interface DomainEventMap {
    'items:changed': ItemChange
  }
}

export function feedItemChanges (realtime: Realtime): void {
  realtime.feed('items:changed', ItemChange, ITEMS_ROOM)
}
