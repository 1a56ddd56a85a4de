// API documentation: an OpenAPI 3.1 document built by @fastify/swagger from the routes' TypeBox schemas,
// served at /docs/json (and /docs/yaml), and its UI (@fastify/swagger-ui) at /docs. It documents the
// routes registered after it, so app.ts registers it before the routes (and before auth: it is public).
// Each operation's `security` comes from its route's `config.auth`, so the docs cannot drift from it.

import fp from 'fastify-plugin'
import swagger, { type SwaggerTransform } from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import pkg from '../package.json' with { type: 'json' }
import { DEFAULT_ROUTE_AUTH } from '../auth/plugin.ts'

export const DOCS_PREFIX = '/docs'
const BEARER = 'bearerAuth'

/** `auth: false` → no security; `'optional'` → token or none; otherwise a bearer token with the route's scopes. */
const documentAuth: SwaggerTransform = ({ schema, url, route }) => {
  const auth = route.config?.auth ?? DEFAULT_ROUTE_AUTH
  if (auth === false) return { schema: { ...schema, security: [] }, url }
  const security: Array<Record<string, string[]>> = auth === 'optional' ? [{}, { [BEARER]: [] }] : [{ [BEARER]: auth.scopes }]
  return { schema: { ...schema, security }, url }
}

export default fp(async function docs (fastify) {
  await fastify.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: `${pkg.name} API`, version: pkg.version, description: pkg.description },
      components: {
        securitySchemes: {
          [BEARER]: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'An access token: `npm run token -- --sub ID --scope a,b`' }
        }
      }
    },
    transform: documentAuth
  })
  await fastify.register(swaggerUi, {
    routePrefix: DOCS_PREFIX,
    uiConfig: { deepLinking: true },
    // edge/security-headers.ts gives every route under DOCS_PREFIX the UI's Content-Security-Policy.
    staticCSP: false
  })
}, { name: 'keel-docs' })
