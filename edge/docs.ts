// API documentation: an OpenAPI 3.1 document built by @fastify/swagger from the routes' TypeBox schemas,
// served at /docs/json (and /docs/yaml), and its UI (@fastify/swagger-ui) at /docs. It documents the
// routes registered after it, so app.ts registers it before the routes (and before auth: it is public).
// Everything a route does not write in its schema is derived from what it declares to the edge plugins
// (edge/openapi-operation.ts): `security` from `config.auth`, and its error responses, conditional
// parameters and response headers from its policies, so the document cannot drift from them.

import fp from 'fastify-plugin'
import swagger, { type SwaggerTransform, type SwaggerTransformObject } from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import pkg from '../package.json' with { type: 'json' }
import { addReferencedComponents } from './openapi-components.ts'
import { documentOperation, routeFacts, type Operation, type RouteFacts } from './openapi-operation.ts'

export const DOCS_PREFIX = '/docs'
const BEARER = 'bearerAuth'
// The route's facts travel from `transform` to `transformObject` on its operation under this key
// (@fastify/swagger copies `x-` keys of a schema onto the operation); `transformObject` removes it.
const FACTS = 'x-keel-route'
const OPERATION_METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'])

/** `auth: false` → no security; `'optional'` → token or none; otherwise a bearer token with the route's scopes. */
const documentRoute: SwaggerTransform = ({ schema, url, route }) => {
  const facts = routeFacts(route)
  const auth = facts.auth
  const security: Array<Record<string, string[]>> = auth === false ? [] : auth === 'optional' ? [{}, { [BEARER]: [] }] : [{ [BEARER]: auth.scopes }]
  return { schema: { ...schema, security, [FACTS]: facts }, url }
}

/** What `completeDocument` reads of the document @fastify/swagger built. */
interface OpenApiDocument {
  paths?: Record<string, Record<string, unknown>>
  components?: Parameters<typeof addReferencedComponents>[1]
}

/** Completes every operation from its route's facts, then adds the shared components they point at. */
function completeDocument (document: OpenApiDocument): OpenApiDocument {
  const paths = document.paths ?? {}
  for (const [path, item] of Object.entries(paths)) {
    for (const [method, shared] of Object.entries(item)) {
      if (!OPERATION_METHODS.has(method)) continue
      // A route with several methods shares one operation object among them: each gets its own copy.
      const op = structuredClone(shared) as Operation & { [FACTS]?: RouteFacts }
      const facts = op[FACTS]
      delete op[FACTS]
      if (facts !== undefined) documentOperation(op, method, path, facts)
      item[method] = op
    }
  }
  document.components ??= {}
  addReferencedComponents(paths, document.components)
  return document
}

export default fp(async function docs (fastify) {
  await fastify.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: `${pkg.name} API`, version: pkg.version, description: pkg.description },
      // Relative: the document describes the server that serves it, whatever its address.
      servers: [{ url: '/', description: 'This server' }],
      components: {
        securitySchemes: {
          [BEARER]: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'An access token: `npm run token -- --sub ID --scope a,b`' }
        }
      }
    },
    transform: documentRoute,
    transformObject: (built) => ('openapiObject' in built ? completeDocument(built.openapiObject as OpenApiDocument) : built.swaggerObject) as ReturnType<SwaggerTransformObject>
  })
  await fastify.register(swaggerUi, {
    routePrefix: DOCS_PREFIX,
    uiConfig: { deepLinking: true },
    // edge/security-headers.ts gives every route under DOCS_PREFIX the UI's Content-Security-Policy.
    staticCSP: false
  })
}, { name: 'keel-docs' })
