// Template of a resource's routes.ts: the TypeBox schemas from the fields, public reads with ETags and
// 304s, writes under `<scope>:write` with If-Match (428 without, 412 when stale), cursor pagination,
// and — with a real-time side — a domain event per change. Split by route group, as the file is.

import { commentBlock } from './comment.ts'
import { fromJson, inputSchema, outputSchema, toJson } from './fields.ts'
import { capitalize, withArticle } from './names.ts'
import { identifiers, type ResourceModel } from './resource-model.ts'

function schemas (m: ResourceModel): string {
  const id = identifiers(m)
  const { prose } = m.one
  return `const ${id.record}Input = Type.Object({
${m.fields.map((f) => `  ${f.name}: ${inputSchema(f)}`).join(',\n')}
}, { additionalProperties: false, description: '${capitalize(withArticle(prose))} as a client writes it' })
type ${id.record}InputJson = Static<typeof ${id.record}Input>

const ${id.record}Schema = Type.Object({
  id: Type.String({ description: 'Opaque identifier' }),
${m.fields.map((f) => `  ${f.name}: ${outputSchema(f)},`).join('\n')}
  version: Type.Integer({ minimum: 1, description: '1 on creation, +1 per update; drives the ETag' }),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' })
}, { description: 'The ${prose}, with its ETag and Last-Modified in the headers' })
type ${id.record}Json = Static<typeof ${id.record}Schema>

const ${id.page}Schema = Type.Object({
  ${m.names.camel}: Type.Array(${id.record}Schema),
  nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as \`cursor\` for the next page; null on the last page' })
}, { description: 'One page of ${m.names.prose}, oldest first' })

const ListQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: DEFAULT_LIMIT })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'nextCursor of the previous page' }))
})
const RecordParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) })
// No body: \`type: 'null'\` tells OpenAPI so, \`undefined\` lets the handler send nothing at all.
const noBody = (description: string) => Type.Unsafe<undefined>({ type: 'null', description })
const NotModified = noBody('Not Modified: the representation you hold (If-None-Match / If-Modified-Since) is current')
const NoContent = noBody('Deleted')

const etagOf = (record: ${id.record}): string => strongETag(\`v\${record.version}\`)

function toJson (record: ${id.record}): ${id.record}Json {
  return {
    id: record.id,
${m.fields.map((f) => `    ${f.name}: ${toJson(f, `record.${f.name}`)},`).join('\n')}
    version: record.version,
    createdAt: new Date(record.createdAt).toISOString(),
    updatedAt: new Date(record.updatedAt).toISOString()
  }
}

/** The store's form of a body: unset optional fields are null, times epoch milliseconds. */
function fieldsOf (body: ${id.record}InputJson): ${id.recordFields} {
  return {
${m.fields.map((f) => `    ${f.name}: ${fromJson(f, `body.${f.name}`)}`).join(',\n')}
  }
}

function setValidators (reply: FastifyReply, record: ${id.record}): FastifyReply {
  return reply.header('etag', etagOf(record)).header('last-modified', httpDate(record.updatedAt))
}`
}

const announce = (m: ResourceModel, idExpr: string, op: string): string =>
  m.realtime ? `\n    fastify.domainEvents.emit('${identifiers(m).changeEvent}', { ${idExpr === 'id' ? 'id' : `id: ${idExpr}`}, op: '${op}' })` : ''

function collectionRoutes (m: ResourceModel): string {
  const id = identifiers(m)
  const tag = m.names.kebab
  return `/** GET and POST on the collection. */
function collectionRoutes (fastify: Routes, { config: write, bodyLimit }: WritePolicy): void {
  fastify.get(${id.pathConst}, {
    // no-cache: caches keep the list but revalidate each use, which costs a 304 while nothing changed.
    config: { auth: false, cache: { noCache: true, etag: 'computed' } },
    schema: {
      tags: ['${tag}'],
      summary: 'List ${m.names.prose}',
      description: '${capitalize(m.names.prose)} in creation order, \`limit\` per page (1–100, default 20). Carries a weak ETag; If-None-Match → 304.',
      querystring: ListQuery,
      response: { 200: ${id.page}Schema, 304: NotModified }
    }
  }, async (request) => {
    const page = await fastify.${id.decorator}.list(request.query.limit ?? DEFAULT_LIMIT, request.query.cursor)
    return { ${m.names.camel}: page.${m.names.camel}.map(toJson), nextCursor: page.nextCursor }
  })

  fastify.post(${id.pathConst}, {
    config: write,
    bodyLimit,
    schema: {
      tags: ['${tag}'],
      summary: 'Create ${withArticle(m.one.prose)}',
      description: 'Needs scope ${id.writeScope}. Answers 201 with Location and the new ETag.',
      body: ${id.record}Input,
      response: { 201: ${id.record}Schema }
    }
  }, async (request, reply) => {
    const record = await fastify.${id.decorator}.create(fieldsOf(request.body))${announce(m, 'record.id', 'created')}
    return setValidators(reply, record).code(201).header('location', \`\${${id.pathConst}}/\${record.id}\`).send(toJson(record))
  })
}`
}

function readRoute (m: ResourceModel): string {
  const id = identifiers(m)
  return `  fastify.get(\`\${${id.pathConst}}/:id\`, {
    // no-cache: a client about to write must see the current ETag, never a cached older one.
    config: { auth: false, cache: { noCache: true, etag: 'resource' } },
    schema: {
      tags: ['${m.names.kebab}'],
      summary: 'Read ${withArticle(m.one.prose)}',
      description: 'Carries a strong ETag and Last-Modified; If-None-Match / If-Modified-Since → 304.',
      params: RecordParams,
      response: { 200: ${id.record}Schema, 304: NotModified }
    }
  }, async (request, reply) => {
    const record = await fastify.${id.decorator}.get(request.params.id)
    if (record === undefined) throw notFound('${m.one.prose}')
    const outcome = evaluatePreconditions(request.method, request.headers, { etag: etagOf(record), lastModified: record.updatedAt })
    if (outcome.result === 'failed') throw preconditionFailed()
    setValidators(reply, record)
    // The 304 names the tag the client holds (it may carry a content-coding suffix).
    if (outcome.result === 'not-modified') return reply.header('etag', outcome.etag ?? etagOf(record)).code(304).send()
    return toJson(record)
  })`
}

function replaceRoute (m: ResourceModel): string {
  const id = identifiers(m)
  return `  fastify.put(\`\${${id.pathConst}}/:id\`, {
    config: write,
    bodyLimit,
    schema: {
      tags: ['${m.names.kebab}'],
      summary: 'Replace ${withArticle(m.one.prose)}',
      description: 'Needs scope ${id.writeScope} and If-Match with the ETag you read: 428 without it, 412 when the ${m.one.prose} changed since. Answers 200 with the new ETag.',
      params: RecordParams,
      body: ${id.record}Input,
      response: { 200: ${id.record}Schema }
    }
  }, async (request, reply) => {
    if (request.headers['if-match'] === undefined) throw preconditionRequired()
    const current = await fastify.${id.decorator}.get(request.params.id)
    if (current === undefined) throw notFound('${m.one.prose}')
    const outcome = evaluatePreconditions(request.method, request.headers, { etag: etagOf(current), lastModified: current.updatedAt })
    if (outcome.result !== 'proceed') throw preconditionFailed()
    // Compare-and-set on the version just checked: a writer that got in between (another instance) wins, we 412.
    const record = await fastify.${id.decorator}.update(current.id, current.version, fieldsOf(request.body))${announce(m, 'record.id', 'updated')}
    return setValidators(reply, record).send(toJson(record))
  })`
}

function deleteRoute (m: ResourceModel): string {
  const id = identifiers(m)
  return `  fastify.delete(\`\${${id.pathConst}}/:id\`, {
    config: write,
    schema: {
      tags: ['${m.names.kebab}'],
      summary: 'Delete ${withArticle(m.one.prose)}',
      description: 'Needs scope ${id.writeScope}. Honours If-Match, If-None-Match and If-Unmodified-Since when sent (412 when one does not hold).',
      params: RecordParams,
      response: { 204: NoContent }
    }
  }, async (request, reply) => {
    const { id } = request.params
    if (!hasPreconditions(request.headers)) {
      await fastify.${id.decorator}.delete(id)
    } else {
      const current = await fastify.${id.decorator}.get(id)
      if (current === undefined) throw notFound('${m.one.prose}')
      const outcome = evaluatePreconditions(request.method, request.headers, { etag: etagOf(current), lastModified: current.updatedAt })
      if (outcome.result !== 'proceed') throw preconditionFailed('the ${m.one.prose} does not meet the request\\'s preconditions (If-Match, If-None-Match or If-Unmodified-Since)')
      await fastify.${id.decorator}.delete(id, current.version)
    }${announce(m, 'id', 'deleted')}
    return reply.code(204).send()
  })`
}

export function routesFile (m: ResourceModel): string {
  const id = identifiers(m)
  const events = m.realtime
    ? ` Every change is announced on \`fastify.domainEvents\` as '${id.changeEvent}' once the store has committed it (feed.ts declares it and forwards it to room \`${id.room}\`).`
    : ''
  return `${commentBlock(`${id.path}: public reads with Cache-Control and ETags (304 on a match), writes with scope ${id.writeScope}, optimistic concurrency through If-Match (PUT without it → 428, stale → 412), opaque cursor pagination.${events}`)}
//
${commentBlock(`ETags: ${withArticle(m.one.prose)}'s tag is strong and derived from its version (\`"v3"\`); the caching plugin appends the content-coding when the body goes out compressed and edge/conditional.ts accepts either form back. The list's tag is weak, hashed from the body by the caching plugin.`)}

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type, type Static } from '@sinclair/typebox'
import type { FastifyReply } from 'fastify'
import type { ${id.record}, ${id.recordFields} } from './store.ts'
import { evaluatePreconditions, hasPreconditions, httpDate, strongETag } from '../../edge/conditional.ts'
import { notFound, preconditionFailed, preconditionRequired } from '../../core/errors.ts'

export const ${id.pathConst} = '${id.path}'
const DEFAULT_LIMIT = 20
// A body over 64 KiB is refused before it is parsed; raise it if ${withArticle(m.one.prose)} is meant to be larger.
const BODY_LIMIT = 64 * 1024

${schemas(m)}

type Routes = Parameters<FastifyPluginAsyncTypebox>[0]
/** What every write route shares: the scope, a resource ETag, a body limit. */
interface WritePolicy { config: { auth: { scopes: string[] }, cache: { etag: 'resource' } }, bodyLimit: number }

${collectionRoutes(m)}

/** GET, PUT and DELETE on one ${m.one.prose}, each under its preconditions. */
function recordRoutes (fastify: Routes, { config: write, bodyLimit }: WritePolicy): void {
${readRoute(m)}

${replaceRoute(m)}

${deleteRoute(m)}
}

const ${m.names.camel}Routes: FastifyPluginAsyncTypebox = async (fastify) => {
  // JSON only: a text/plain body is a 415, not a string that fails validation.
  fastify.removeContentTypeParser('text/plain')
  const policy: WritePolicy = {
    config: { auth: { scopes: ['${id.writeScope}'] }, cache: { etag: 'resource' } },
    bodyLimit: Math.min(BODY_LIMIT, fastify.initialConfig.bodyLimit ?? BODY_LIMIT)
  }
  collectionRoutes(fastify, policy)
  recordRoutes(fastify, policy)
}

export default ${m.names.camel}Routes
`
}
