// Authentication and authorization, wired: the token verifier (`fastify.verifyAccessToken`), the
// request authenticator shared by HTTP, WebSocket and SSE (`fastify.authenticate`) with its per-IP
// invalid-token throttle, and each route's `config.auth` as an onRequest hook.
// Tokens and keys are never logged; every verification failure is a 401 (429 past the budget), never a 500.

import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { AppError } from '../core/errors.ts'
import { invalidToken, missingToken, type AuthUser } from './access-token.ts'
import { AuthFailureThrottle, tooManyInvalidTokens } from './failure-throttle.ts'
import { presentedCredential, queryToken, tokenOf } from './presented-token.ts'
import { applyRoutePolicies } from './route-policy.ts'
import { registerTokenVerifier, type TokenVerifier, type VerifierOptions } from './token-verifier.ts'

export type { AuthUser } from './access-token.ts'
export { DEFAULT_ROUTE_AUTH } from './route-policy.ts'

declare module '@fastify/jwt' {
  interface FastifyJWT {
    // `null` until a hook or `fastify.authenticate` sets it (public and optional routes).
    user: AuthUser
  }
}

export interface AuthenticateOptions {
  /** Accept `?access_token=` (browsers cannot set headers on WebSocket/EventSource). Only /ws and /sse. */
  allowQueryToken?: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Verifies a token; resolves to its user or throws a 401 `AppError` with an RFC 6750 challenge. */
    verifyAccessToken: (token: string) => Promise<AuthUser>
    /** Finds the request's token, verifies it and sets `request.user`; throws 401 (missing/invalid) or 429. */
    authenticate: (request: FastifyRequest, opts?: AuthenticateOptions) => Promise<AuthUser>
  }
}

export type AuthPluginOptions = VerifierOptions

/**
 * The token a request presents, verified, with its failures counted against the client's budget. A
 * valid token always passes; an invalid one is a 401 while the budget lasts and a 429 after it.
 * Under budget every token gets the full check. Over budget a token must first look plausible (a
 * decode, no signature check): a flood of garbage, expired, wrong-algorithm or wrong-audience tokens
 * from a throttled address then costs a decode each, and only tokens built to pass every claim check
 * cost a signature check — which a valid token from the same address (a NAT) needs anyway.
 */
function createAuthenticate (verifier: TokenVerifier, throttle: AuthFailureThrottle) {
  return async function authenticate (request: FastifyRequest, opts: AuthenticateOptions = {}): Promise<AuthUser> {
    const credential = presentedCredential(request, opts.allowQueryToken === true)
    if (credential === undefined) {
      throw missingToken(queryToken(request) === undefined
        ? undefined
        : 'this route takes the access token in the Authorization header only (Bearer <token>), not in the query string')
    }
    const now = Date.now()
    const overBudget = throttle.retryAfterSec(request.ip, now) > 0
    try {
      const token = tokenOf(credential)
      if (overBudget && !verifier.plausible(token, now)) throw invalidToken('the access token cannot be valid (checked without its signature)')
      const user = await verifier.verify(token)
      request.user = user
      return user
    } catch (err) {
      // Anything but a refusal is a bug: the error handler answers it 500, uncounted.
      if (!(err instanceof AppError)) throw err
      request.log.debug({ reason: err.message }, 'access token rejected')
      if (throttle.record(request.ip, now)) {
        request.log.warn({ ip: request.ip, limit: throttle.limit }, 'too many invalid access tokens from one client; its invalid tokens get 429 for up to a minute')
      }
      if (overBudget) throw tooManyInvalidTokens(throttle.retryAfterSec(request.ip, now), throttle.limit)
      throw err
    }
  }
}

async function auth (fastify: FastifyInstance, options: AuthPluginOptions): Promise<void> {
  const verifier = await registerTokenVerifier(fastify, options)
  const authenticate = createAuthenticate(verifier, new AuthFailureThrottle(options.auth.failureLimit))
  fastify.decorate('verifyAccessToken', verifier.verify)
  fastify.decorate('authenticate', authenticate)
  fastify.addHook('onRoute', applyRoutePolicies(authenticate))
}

export default fp(auth, { name: 'keel-auth', dependencies: ['keel-errors'] })
