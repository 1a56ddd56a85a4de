// A small resource for tests of core, edge and auth behaviour, so that none of them depends on the example
// resources (resources/ may be removed): an in-memory collection of things, declared the way a route author
// declares routes so every policy app.ts registers applies — a public list and read, a create with a JSON
// body schema and a write scope, a delete that takes no body — and, when given an upstream URL, a public
// route that calls it through `fastify.addUpstream`. Tests register it on a built app before it is ready
// (`await app.register(probeResource)`); spawnServer's `probeResource` option adds it to the real entry point.

import { randomUUID } from 'node:crypto'
import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { notFound } from '../../core/errors.ts'
import { upstreamFailure } from '../../outbound/upstream-errors.ts'

export const PROBE_PATH = '/test/things'
/** The scope creating and deleting things needs. */
export const PROBE_WRITE_SCOPE = 'things:write'
/** The route that calls the upstream (only with `upstreamUrl`). */
export const PROBE_UPSTREAM_PATH = '/test/upstream'

export interface ProbeResourceOptions {
  /** An upstream base URL: adds the client `probe` and GET PROBE_UPSTREAM_PATH, which asks it for `/probe`. */
  upstreamUrl?: string
}

const Thing = Type.Object({ id: Type.String(), name: Type.String() })
const ThingInput = Type.Object({ name: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false })
const Params = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) })

export const probeResource: FastifyPluginAsyncTypebox<ProbeResourceOptions> = async (fastify, options) => {
  const things = new Map<string, { id: string, name: string }>()
  const write = { auth: { scopes: [PROBE_WRITE_SCOPE] } }

  fastify.get(PROBE_PATH, { config: { auth: false }, schema: { response: { 200: Type.Object({ things: Type.Array(Thing) }) } } },
    async () => ({ things: [...things.values()] }))

  fastify.post(PROBE_PATH, { config: write, schema: { body: ThingInput, response: { 201: Thing } } }, async (request, reply) => {
    const thing = { id: randomUUID(), name: request.body.name }
    things.set(thing.id, thing)
    return reply.code(201).send(thing)
  })

  fastify.get(`${PROBE_PATH}/:id`, { config: { auth: false }, schema: { params: Params, response: { 200: Thing } } }, async (request) => {
    const thing = things.get(request.params.id)
    if (thing === undefined) throw notFound('thing')
    return thing
  })

  // No body schema: the request-body policy never reads, inflates or parses what a client sends here.
  fastify.delete(`${PROBE_PATH}/:id`, { config: write, schema: { params: Params } }, async (request, reply) => {
    if (!things.delete(request.params.id)) throw notFound('thing')
    return reply.code(204).send()
  })

  if (options.upstreamUrl !== undefined) {
    const upstream = fastify.addUpstream('probe', options.upstreamUrl)
    fastify.get(PROBE_UPSTREAM_PATH, { config: { auth: false } }, async () => {
      try {
        return await upstream.getJson('/probe', Type.Unknown())
      } catch (err) {
        throw upstreamFailure(err, 'the probe upstream')
      }
    })
  }
}
