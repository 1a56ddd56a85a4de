// GET /api/v1/quotes/:symbol — the example of a route that calls an upstream: it asks
// `${UPSTREAM_QUOTES_URL}/quotes/:symbol` through the resilient client and answers 502 when the
// upstream fails (after retries), 503 + Retry-After when its breaker is open (without calling it),
// 504 when the deadline runs out. Public: a quote is not user data.
// Self-contained: it declares and adds its own upstream client (`quotes`) when a URL is given.

import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { AppError, ErrorCode, notFound } from '../../core/errors.ts'
import { UpstreamHttpError, upstreamFailure } from '../../outbound/upstream-errors.ts'
import { DEADLINE_HEADER, callOptionsFor } from '../../outbound/call-options.ts'
import type { ResilientClient } from '../../outbound/resilient-client.ts'

declare module '../../outbound/upstreams.ts' {
  interface Upstreams {
    /** Absent when UPSTREAM_QUOTES_URL is not set. */
    quotes?: ResilientClient
  }
}

export interface QuotesOptions {
  /** The quote service's base URL (UPSTREAM_QUOTES_URL); without it the route answers 503. */
  baseUrl?: string
}

// What the upstream must answer, checked on arrival, and what we answer: only these fields leave.
const Quote = Type.Object({
  symbol: Type.String({ minLength: 1, maxLength: 12 }),
  price: Type.Number(),
  currency: Type.String({ pattern: '^[A-Z]{3}$' }),
  asOf: Type.String({ minLength: 1, maxLength: 64, description: 'when the upstream priced it (ISO 8601)' })
})

// Starts with a letter or digit, so a symbol can never be `.` or `..` in the upstream's path.
const Params = Type.Object({ symbol: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9.-]{0,11}$' }) })
const Headers = Type.Object({
  [DEADLINE_HEADER]: Type.Optional(Type.Integer({
    minimum: 1, maximum: 600_000, description: 'milliseconds the caller will wait; caps the upstream call'
  }))
})

const SERVICE = 'the quote service'

const quotesRoutes: FastifyPluginAsyncTypebox<QuotesOptions> = async (fastify, opts) => {
  if (opts.baseUrl !== undefined) fastify.addUpstream('quotes', opts.baseUrl)

  fastify.get('/api/v1/quotes/:symbol', {
    // A live price: never cached.
    config: { auth: false, cache: { noStore: true } },
    schema: {
      tags: ['quotes'],
      summary: 'A quote from the upstream quote service (502 upstream failed, 503 circuit open, 504 deadline)',
      params: Params,
      headers: Headers,
      response: { 200: Quote }
    }
  }, async (request, reply) => {
    const quotes = fastify.upstreams.quotes
    if (quotes === undefined) throw new AppError(ErrorCode.SERVICE_UNAVAILABLE, `${SERVICE} is not configured`)
    const { symbol } = request.params
    try {
      return await quotes.getJson(`/quotes/${encodeURIComponent(symbol)}`, Quote, callOptionsFor(request, reply))
    } catch (err) {
      if (err instanceof UpstreamHttpError && err.status === 404) throw notFound(`a quote for ${symbol}`)
      throw upstreamFailure(err, SERVICE)
    }
  })
}

export default quotesRoutes
