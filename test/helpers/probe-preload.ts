// Preloaded into the real entry point (`node --import <this file> server.ts`, spawnServer's `probeResource`
// option) so that tests of the process — shutdown, what it prints, `npm run token` — have routes of their
// own (probe-resource.ts) without any example resource. The probe is registered once app.ts has registered
// everything and just before the app listens, like a test registers it on a built app; its options
// travel in this module's URL (`?upstreamUrl=…`), the process environment staying what server.ts reads.

import { subscribe } from 'node:diagnostics_channel'
import type { FastifyInstance } from 'fastify'
import { probeResource, type ProbeResourceOptions } from './probe-resource.ts'

const query = new URL(import.meta.url).searchParams
const options: ProbeResourceOptions = { upstreamUrl: query.get('upstreamUrl') ?? undefined }

// Fastify announces every instance it creates on this channel; server.ts creates one.
subscribe('fastify.initialization', (message) => {
  const { fastify } = message as { fastify: FastifyInstance }
  const listen = fastify.listen.bind(fastify) as (...args: unknown[]) => Promise<string>
  Object.assign(fastify, {
    listen: async (...args: unknown[]) => {
      await fastify.register(probeResource, options)
      return await listen(...args)
    }
  })
})
