// What a resource sees of the outbound plugin, without importing it: the `fastify.upstreams` record
// of named clients (each resource declares its own entry by declaration merging) and
// `fastify.addUpstream`, through which a resource gets a client for the upstream it calls.

import type { ResilientClient } from './resilient-client.ts'

/**
 * Upstream clients by name. Outbound names none: a resource that calls an upstream declares it,
 * `declare module '…/outbound/upstreams.ts' { interface Upstreams { payments?: ResilientClient } }`,
 * and adds it with `fastify.addUpstream('payments', baseUrl)` when its URL is configured.
 */
export interface Upstreams {}

/** Creates the client `name` for `baseUrl` with the configured policy, metrics, readiness check and shutdown. */
export type AddUpstream = (name: string, baseUrl: string) => ResilientClient

declare module 'fastify' {
  interface FastifyInstance {
    upstreams: Upstreams
    /** Also sets `upstreams[name]`; a name may be added once. Call it while plugins register. */
    addUpstream: AddUpstream
  }
}
