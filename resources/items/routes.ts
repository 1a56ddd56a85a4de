// The example resource, /api/v1/items: public reads with Cache-Control and ETags (304 on a match),
// writes with scope items:write, optimistic concurrency through If-Match (PUT declares it required, so
// the caching plugin answers 428 without it; stale → 412), opaque cursor pagination. Every change is
// announced on `fastify.domainEvents` as 'items:changed' once the store has committed it (feed.ts declares it and
// forwards it to room `items`).
//
// ETags: an item's tag is strong and derived from its version (`"v3"`); the caching plugin appends the
// content-coding when the body goes out compressed (`"v3-gzip"`) and edge/conditional.ts accepts either
// form back, so If-Match keeps RFC 9110's strong comparison under compression. The list's tag is weak,
// hashed from the body by the caching plugin.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type, type Static } from '@sinclair/typebox'
import type { FastifyReply } from 'fastify'
import type { Item } from './store.ts'
import { evaluatePreconditions, hasPreconditions, httpDate, strongETag } from '../../edge/conditional.ts'
import { notFound, preconditionFailed } from '../../core/errors.ts'

export const ITEMS_PATH = '/api/v1/items'
const DEFAULT_LIMIT = 20
// The largest valid body is about 1.3 KB (a 200-character name, 20 tags of 50); 16 KiB leaves room for
// pretty-printed JSON and still refuses an oversized body before it is parsed.
const ITEM_BODY_LIMIT = 16 * 1024

const ItemInput = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 200 }),
  // Bounded so one item stays small; unique because a tag set with repeats is a client bug.
  tags: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 50 }), { maxItems: 20, uniqueItems: true }))
}, { additionalProperties: false, description: 'An item as a client writes it', examples: [{ name: 'Espresso grinder', tags: ['kitchen', 'coffee'] }] })

const EXAMPLE_ITEM = {
  id: '01J9Z3K4XQ7V8N2M5P6R0T1W2Y',
  name: 'Espresso grinder',
  tags: ['kitchen', 'coffee'],
  version: 3,
  createdAt: '2026-10-21T07:20:00.000Z',
  updatedAt: '2026-10-21T07:28:00.000Z'
}

const ItemSchema = Type.Object({
  id: Type.String({ description: 'Opaque identifier' }),
  name: Type.String(),
  tags: Type.Array(Type.String()),
  version: Type.Integer({ minimum: 1, description: '1 on creation, +1 per update; drives the ETag' }),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' })
}, { description: 'The item, with its ETag and Last-Modified in the headers', examples: [EXAMPLE_ITEM] })
type ItemJson = Static<typeof ItemSchema>

const ItemPage = Type.Object({
  items: Type.Array(ItemSchema),
  nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `cursor` for the next page; null on the last page' })
}, { description: 'One page of items, oldest first', examples: [{ items: [EXAMPLE_ITEM], nextCursor: 'MDFKOVozSzRYUTdWOE4yTTVQNlIwVDFXMlk' }] })

const ListQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: DEFAULT_LIMIT })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'nextCursor of the previous page' }))
})
const ItemParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64, examples: [EXAMPLE_ITEM.id] }) })
// No body: `type: 'null'` tells OpenAPI so, `undefined` lets the handler send nothing at all.
const noBody = (description: string) => Type.Unsafe<undefined>({ type: 'null', description })
// Declared where the handler answers 304 itself; the API document adds the 304 of every ETag route anyway.
const NotModified = noBody('Not Modified: the representation you hold (If-None-Match / If-Modified-Since) is current')
const NoContent = noBody('Deleted')

const etagOf = (item: Item): string => strongETag(`v${item.version}`)

function toJson (item: Item): ItemJson {
  return {
    id: item.id,
    name: item.name,
    tags: item.tags,
    version: item.version,
    createdAt: new Date(item.createdAt).toISOString(),
    updatedAt: new Date(item.updatedAt).toISOString()
  }
}

function setValidators (reply: FastifyReply, item: Item): FastifyReply {
  return reply.header('etag', etagOf(item)).header('last-modified', httpDate(item.updatedAt))
}

type Routes = Parameters<FastifyPluginAsyncTypebox>[0]
/** What every write route shares: the scope, a resource ETag, a body limit sized to an item. */
interface WritePolicy { config: { auth: { scopes: string[] }, cache: { etag: 'resource' } }, bodyLimit: number }

/** GET and POST on the collection. */
function collectionRoutes (fastify: Routes, { config: write, bodyLimit }: WritePolicy): void {
  fastify.get(ITEMS_PATH, {
    // no-cache: caches keep the list but revalidate each use, which costs a 304 while nothing changed.
    config: { auth: false, cache: { noCache: true, etag: 'computed' } },
    schema: {
      tags: ['items'],
      operationId: 'listItems',
      summary: 'List items',
      description: 'Items in creation order, `limit` per page (1–100, default 20). Carries a weak ETag; If-None-Match → 304.',
      querystring: ListQuery,
      response: { 200: ItemPage }
    }
  }, async (request) => {
    const page = await fastify.items.list(request.query.limit ?? DEFAULT_LIMIT, request.query.cursor)
    return { items: page.items.map(toJson), nextCursor: page.nextCursor }
  })

  fastify.post(ITEMS_PATH, {
    config: write,
    bodyLimit,
    schema: {
      tags: ['items'],
      operationId: 'createItem',
      summary: 'Create an item',
      description: 'Needs scope items:write. Answers 201 with Location and the new ETag.',
      body: ItemInput,
      response: { 201: ItemSchema }
    }
  }, async (request, reply) => {
    const item = await fastify.items.create(request.body)
    fastify.domainEvents.emit('items:changed', { id: item.id, op: 'created' })
    return setValidators(reply, item).code(201).header('location', `${ITEMS_PATH}/${item.id}`).send(toJson(item))
  })
}

/** GET, PUT and DELETE on one item, each under its preconditions. */
function itemRoutes (fastify: Routes, { config: write, bodyLimit }: WritePolicy): void {
  fastify.get(`${ITEMS_PATH}/:id`, {
    // no-cache: a client about to write must see the current ETag, never a cached older one.
    config: { auth: false, cache: { noCache: true, etag: 'resource' } },
    schema: {
      tags: ['items'],
      operationId: 'getItem',
      summary: 'Read an item',
      description: 'Carries a strong ETag and Last-Modified; If-None-Match / If-Modified-Since → 304.',
      params: ItemParams,
      response: { 200: ItemSchema, 304: NotModified }
    }
  }, async (request, reply) => {
    const item = await fastify.items.get(request.params.id)
    if (item === undefined) throw notFound('item')
    const outcome = evaluatePreconditions(request.method, request.headers, { etag: etagOf(item), lastModified: item.updatedAt })
    if (outcome.result === 'failed') throw preconditionFailed()
    setValidators(reply, item)
    // The 304 names the tag the client holds (it may carry a content-coding suffix).
    if (outcome.result === 'not-modified') return reply.header('etag', outcome.etag ?? etagOf(item)).code(304).send()
    return toJson(item)
  })

  fastify.put(`${ITEMS_PATH}/:id`, {
    config: { ...write, preconditions: 'required' },
    bodyLimit,
    schema: {
      tags: ['items'],
      operationId: 'replaceItem',
      summary: 'Replace an item',
      description: 'Needs scope items:write and If-Match with the ETag you read: 428 without it, 412 when the item changed since. Answers 200 with the new ETag.',
      params: ItemParams,
      body: ItemInput,
      response: { 200: ItemSchema }
    }
  }, async (request, reply) => {
    const current = await fastify.items.get(request.params.id)
    if (current === undefined) throw notFound('item')
    const outcome = evaluatePreconditions(request.method, request.headers, { etag: etagOf(current), lastModified: current.updatedAt })
    if (outcome.result !== 'proceed') throw preconditionFailed()
    // Compare-and-set on the version just checked: a writer that got in between (another instance) wins, we 412.
    const item = await fastify.items.update(current.id, current.version, request.body)
    fastify.domainEvents.emit('items:changed', { id: item.id, op: 'updated' })
    return setValidators(reply, item).send(toJson(item))
  })

  fastify.delete(`${ITEMS_PATH}/:id`, {
    config: { ...write, preconditions: 'optional' },
    schema: {
      tags: ['items'],
      operationId: 'deleteItem',
      summary: 'Delete an item',
      description: 'Needs scope items:write. Honours If-Match, If-None-Match and If-Unmodified-Since when sent (412 when one does not hold).',
      params: ItemParams,
      response: { 204: NoContent }
    }
  }, async (request, reply) => {
    const { id } = request.params
    if (!hasPreconditions(request.headers)) {
      await fastify.items.delete(id)
    } else {
      const current = await fastify.items.get(id)
      if (current === undefined) throw notFound('item')
      const outcome = evaluatePreconditions(request.method, request.headers, { etag: etagOf(current), lastModified: current.updatedAt })
      if (outcome.result !== 'proceed') throw preconditionFailed('the item does not meet the request\'s preconditions (If-Match, If-None-Match or If-Unmodified-Since)')
      await fastify.items.delete(id, current.version)
    }
    fastify.domainEvents.emit('items:changed', { id, op: 'deleted' })
    return reply.code(204).send()
  })
}

const itemsRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  // Items are JSON only: a text/plain body is a 415, not a string that fails validation.
  fastify.removeContentTypeParser('text/plain')
  const policy: WritePolicy = {
    config: { auth: { scopes: ['items:write'] }, cache: { etag: 'resource' } },
    bodyLimit: Math.min(ITEM_BODY_LIMIT, fastify.initialConfig.bodyLimit ?? ITEM_BODY_LIMIT)
  }
  collectionRoutes(fastify, policy)
  itemRoutes(fastify, policy)
}

export default itemsRoutes
