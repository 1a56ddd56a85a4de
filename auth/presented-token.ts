// Where a request carries its access token: the Authorization header (`Bearer <token>`), or — only
// where the route allows it, for browsers' WebSocket and EventSource — the `access_token` query
// parameter. Reads the credential; never judges the token itself.

import type { FastifyRequest } from 'fastify'
import { invalidToken } from './access-token.ts'

// `Bearer` + one b64token (the token68 form of HTTP authentication).
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i

/** What the client sent, unparsed: the header and, where allowed, the query parameter. */
export interface Credential { header?: string, query?: unknown }

/** The `access_token` query parameter as the query parser decoded it (whatever the encoding of its name). */
export function queryToken (request: FastifyRequest): unknown {
  return (request.query as Record<string, unknown> | undefined)?.access_token
}

/** The credential the client presented, if any. */
export function presentedCredential (request: FastifyRequest, allowQueryToken: boolean): Credential | undefined {
  const header = request.headers.authorization
  const query = allowQueryToken ? queryToken(request) : undefined
  return header === undefined && query === undefined ? undefined : { header, query }
}

/** The token inside the credential; a 401 `invalid_token` when it is not one well-formed token. */
export function tokenOf (credential: Credential): string {
  if (credential.header !== undefined && credential.query !== undefined) {
    throw invalidToken('send the access token once: in the Authorization header or in access_token, not both')
  }
  if (credential.header !== undefined) {
    const match = BEARER.exec(credential.header)
    if (match === null) throw invalidToken('the Authorization header must be "Bearer <token>"')
    return match[1]!
  }
  if (typeof credential.query !== 'string') throw invalidToken('access_token must be given once')
  return credential.query
}
