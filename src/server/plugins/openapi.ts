// GET /openapi.json: an OpenAPI 3 document generated (by @fastify/swagger, dynamic mode) from the
// same route schemas that validate requests and serialise answers, so it cannot drift from what
// the server does. docs/api.md is rendered from it (scripts/gen-api-doc.mjs) and a test keeps
// the two in step. No UI is served: the document is for tools and for `curl` on loopback.
//
// @fastify/swagger (with its YAML and JSON-schema resolver dependencies) is loaded when the
// document is first asked for, not at start-up: the app only records its routes as they are
// declared, and the first GET /openapi.json replays them, schemas and all, into a scratch fastify
// instance with @fastify/swagger registered, whose document is then served (and kept).
import { readFileSync } from 'node:fs'
import type { SwaggerOptions } from '@fastify/swagger'
import type { FastifyInstance, RouteOptions } from 'fastify'
import { packagePath } from '../../package-root.ts'
import { errorResponses } from '../error-schemas.ts'
import { lazySchemaController } from './lazy-schemas.ts'

/** The OpenAPI version skr documents itself with. */
export const OPENAPI_VERSION = '3.0.3'

/** A loose view of the generated document (enough for tests and the markdown renderer). */
export interface OpenApiDocument {
  openapi: string
  info: { title: string; version: string; description?: string; license?: { name: string; url?: string } }
  servers?: Array<{ url: string; description?: string; variables?: Record<string, { default: string; description?: string }> }>
  paths: Record<string, Record<string, unknown>>
  components?: { schemas?: Record<string, unknown> }
  tags?: Array<{ name: string; description?: string }>
}

const DESCRIPTION = 'The HTTP API of skr, a drop-in replacement for the Azure confidential-containers secure key release ' +
  'sidecar (microsoft/confidential-sidecar-containers cmd/skr). The five reference routes keep their paths, field names ' +
  'and encodings; every error is an ErrorBody whose code is listed in docs/errors.md. skr listens on loopback only.'

const TAGS = [
  { name: 'reference', description: 'The routes of the reference sidecar, wire-compatible' },
  { name: 'probes', description: 'Liveness and readiness for Kubernetes/ACI probes (skr healthcheck)' },
  { name: 'observability', description: 'Metrics and this document' }
]

// The server, as a template: the API is on the pod's loopback at `Port` (default 8080), and its
// host is SKR_HOST (default localhost, bound as 127.0.0.1 and ::1). A literal http://localhost:8080
// would be right only for the defaults.
const SERVERS = [{
  url: 'http://{host}:{port}',
  description: 'the sidecar on the pod\'s loopback, reachable only from inside the pod',
  variables: {
    host: { default: 'localhost', description: 'SKR_HOST (default localhost, bound as 127.0.0.1 and ::1)' },
    port: { default: '8080', description: 'Port, the reference\'s variable (default 8080)' }
  }
}]

function readPackageJson (): { version?: unknown, license?: unknown } {
  try {
    // src/server/plugins and dist/server/plugins are both three levels below the package root.
    return JSON.parse(readFileSync(packagePath('package.json'), 'utf8')) as { version?: unknown, license?: unknown }
  } catch {
    return {}
  }
}

/** skr's version from package.json ('0.0.0' when it cannot be read). */
export function packageVersion (): string {
  const { version } = readPackageJson()
  return typeof version === 'string' ? version : '0.0.0'
}

/** skr's licence from package.json (an SPDX identifier), with its SPDX page; null when it cannot be read. */
export function packageLicense (): { name: string, url: string } | null {
  const { license } = readPackageJson()
  return typeof license === 'string' && /^[A-Za-z0-9.+-]{1,64}$/.test(license) ? { name: license, url: `https://spdx.org/licenses/${license}.html` } : null
}

function swaggerOptions (version: string): SwaggerOptions {
  const license = packageLicense()
  return {
    openapi: {
      openapi: OPENAPI_VERSION,
      info: { title: 'skr', version, description: DESCRIPTION, ...(license === null ? {} : { license }) },
      servers: SERVERS,
      // No authentication: the API is reachable only from inside the pod (loopback, or the Unix
      // socket's file mode); the callers' own Entra token, when they send one, is a body field.
      security: [],
      tags: TAGS
    },
    // Shared schemas become components named after their $id (ErrorBody), not def-0.
    refResolver: {
      buildLocalReference: (json: { $id?: unknown }, _baseUri: unknown, _fragment: unknown, i: number) =>
        typeof json.$id === 'string' ? json.$id : `def-${i}`
    }
  }
}

/** The routes an app declared, as its OpenAPI document needs them. */
interface RouteRecord {
  method: RouteOptions['method']
  url: string
  schema: RouteOptions['schema']
  config: RouteOptions['config']
}

/** What registerOpenApi recorded, for registerOpenApiRoute. */
export interface OpenApiState {
  readonly version: string
  readonly routes: RouteRecord[]
}

/**
 * Starts recording the app's routes for its OpenAPI document. Must run before any route is
 * declared (the record is kept by an onRoute hook), so buildApp declares every route in a plugin
 * registered after this.
 */
export function registerOpenApi (app: FastifyInstance, version: string = packageVersion()): OpenApiState {
  const state: OpenApiState = { version, routes: [] }
  app.addHook('onRoute', (route) => {
    // fastify adds a HEAD route for every GET; @fastify/swagger leaves those out, and the
    // replay below gets them again from its own GETs.
    if (route.method === 'HEAD') return
    state.routes.push({ method: route.method, url: route.url, schema: route.schema, config: route.config })
  })
  return state
}

/** Builds the document: the recorded routes and the shared schemas, replayed under @fastify/swagger. */
async function buildDocument (state: OpenApiState, sharedSchemas: Record<string, unknown>): Promise<string> {
  const [{ default: Fastify }, { default: swagger }] = await Promise.all([import('fastify'), import('@fastify/swagger')])
  const scratch = Fastify({ logger: false, schemaController: lazySchemaController() })
  try {
    for (const schema of Object.values(sharedSchemas)) scratch.addSchema(schema)
    await scratch.register(swagger, swaggerOptions(state.version))
    const handler = async (): Promise<null> => null
    for (const route of state.routes) {
      scratch.route({ method: route.method, url: route.url, handler, ...(route.schema === undefined ? {} : { schema: route.schema }), ...(route.config === undefined ? {} : { config: route.config }) })
    }
    await scratch.ready()
    return JSON.stringify(scratch.swagger())
  } finally {
    await scratch.close()
  }
}

/** Declares GET /openapi.json (inside the routes plugin, so the document lists it too). */
export function registerOpenApiRoute (api: FastifyInstance, state: OpenApiState): void {
  let cached: Promise<string> | null = null
  api.get('/openapi.json', {
    schema: {
      summary: 'This OpenAPI document',
      operationId: 'getOpenApiDocument',
      tags: ['observability'],
      response: {
        200: { description: 'OpenAPI 3 document', content: { 'application/json': { schema: { type: 'object' } } } },
        ...errorResponses
      }
    }
  }, async (_request, reply) => {
    // A string is sent as is: the document is serialised once, not through a response schema.
    cached ??= buildDocument(state, api.getSchemas())
    let body: string
    try {
      body = await cached
    } catch (err) {
      cached = null
      throw err
    }
    return await reply.type('application/json; charset=utf-8').send(body)
  })
}
