// Each route's `config.auth`, read once at registration and turned into the one onRequest hook the
// route needs: none (`false`), verify-if-sent (`'optional'`), or a valid token with the route's scopes
// (`{ scopes }`, and the default for a route that declares nothing).

import type { FastifyRequest, RouteOptions } from 'fastify'
import { routeHooks, type RouteAuth } from '../core/route-config.ts'
import { hasScopes, insufficientScope, type AuthUser } from './access-token.ts'
import { presentedCredential } from './presented-token.ts'

/**
 * What a route without `config.auth` gets: a valid token, no particular scope. Secure by default —
 * a forgotten declaration fails closed; public routes say `auth: false`.
 */
export const DEFAULT_ROUTE_AUTH: RouteAuth = { scopes: [] }

type Authenticate = (request: FastifyRequest) => Promise<AuthUser>
type AuthHook = (request: FastifyRequest) => Promise<void>

function isRouteAuth (value: unknown): value is RouteAuth {
  if (value === false || value === 'optional') return true
  const scopes = (value as { scopes?: unknown } | null)?.scopes
  return Array.isArray(scopes) && scopes.every((s) => typeof s === 'string' && s !== '' && !/[\s"\\]/.test(s))
}

/**
 * An onRoute hook that puts each route's auth hook first among its onRequest hooks: before the body is
 * read, and before the rate limiter (preParsing) keys the request by `request.user`.
 */
export function applyRoutePolicies (authenticate: Authenticate): (route: RouteOptions) => void {
  async function optionalToken (request: FastifyRequest): Promise<void> {
    if (presentedCredential(request, false) !== undefined) await authenticate(request)
  }
  function requireToken (scopes: readonly string[]): AuthHook {
    return async function requireAccessToken (request) {
      const user = await authenticate(request)
      if (scopes.length > 0 && !hasScopes(user, scopes)) throw insufficientScope(scopes)
    }
  }
  const anyValidToken = requireToken([])

  return (route) => {
    const declared = route.config?.auth
    const policy = declared === undefined ? DEFAULT_ROUTE_AUTH : declared
    if (!isRouteAuth(policy)) {
      throw new Error(`${String(route.method)} ${route.url}: config.auth must be false, 'optional' or { scopes: string[] } (scopes without spaces or quotes)`)
    }
    if (policy === false) return
    const hook = policy === 'optional' ? optionalToken : policy.scopes.length === 0 ? anyValidToken : requireToken([...policy.scopes])
    route.onRequest = [hook, ...routeHooks(route.onRequest)] as RouteOptions['onRequest']
  }
}
