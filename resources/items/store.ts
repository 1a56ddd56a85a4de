// The example resource's storage contract: what an item is, the store every adapter implements
// (sqlite-store.ts, postgres-store.ts), and what they share — the opaque cursor and the page rule.
// The optimistic-concurrency rule holds in every adapter: a write names the version it read, and the
// database itself refuses a stale one (one conditional statement, never read-then-write), which
// surfaces as 412; a write to a missing item as 404.

import { AppError, ErrorCode, notFound, preconditionFailed } from '../../core/errors.ts'

export interface Item {
  /** Opaque (a UUID). */
  id: string
  name: string
  tags: string[]
  /** 1 on creation, +1 per update; the item's ETag is derived from it. */
  version: number
  /** Milliseconds since the epoch. */
  createdAt: number
  updatedAt: number
}

export interface ItemInput {
  name: string
  tags?: string[]
}

export interface ItemPage {
  items: Item[]
  /** Pass back as `cursor` for the next page; null on the last page. */
  nextCursor: string | null
}

export interface ItemsStore {
  /** Items in creation order, `limit` at a time, after `cursor` (from a previous page) when given. */
  list: (limit: number, cursor?: string) => Promise<ItemPage>
  get: (id: string) => Promise<Item | undefined>
  create: (input: ItemInput) => Promise<Item>
  /** Replaces the item if it is still at `expectedVersion`; 404 when it does not exist, 412 when it moved on. */
  update: (id: string, expectedVersion: number, input: ItemInput) => Promise<Item>
  /** Deletes the item (only at `expectedVersion` when given); 404 when it does not exist, 412 when it moved on. */
  delete: (id: string, expectedVersion?: number) => Promise<void>
}

// A cursor is the base64url of the last `seq` served (the creation-order key every adapter keeps:
// strictly increasing, never reused): opaque to clients, cheap to check here.
const CURSOR = /^[1-9][0-9]{0,15}$/

export function encodeCursor (seq: number): string {
  return Buffer.from(String(seq)).toString('base64url')
}

export function decodeCursor (cursor: string): number {
  const text = Buffer.from(cursor, 'base64url').toString()
  // Re-encoding must give back the same string: rejects padding, stray characters and non-canonical forms.
  if (!CURSOR.test(text) || encodeCursor(Number(text)) !== cursor) {
    throw new AppError(ErrorCode.VALIDATION, 'the cursor is not one this API issued; start again without a cursor', {
      errors: [{ path: '/querystring/cursor', message: 'is not a cursor this API issued' }]
    })
  }
  return Number(text)
}

/**
 * A page from rows fetched with `limit + 1`: the extra row only tells that a next page exists (no COUNT).
 * `seqOf` reads a row's creation-order key.
 */
export function toPage<R> (rows: R[], limit: number, seqOf: (row: R) => number, toItem: (row: R) => Item): ItemPage {
  const more = rows.length > limit
  const served = more ? rows.slice(0, limit) : rows
  return { items: served.map(toItem), nextCursor: more ? encodeCursor(seqOf(served[served.length - 1]!)) : null }
}

/** Why a conditional write touched no row: the item is gone (404) or at another version (412). */
export function staleOrMissing (exists: boolean): AppError {
  return exists ? preconditionFailed() : notFound('item')
}
