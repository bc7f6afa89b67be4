// The HTTP application: fastify configured for a local, security-sensitive API, with the
// reference's routes. buildApp never listens (see ./listen.ts), so tests drive it with
// app.inject() and the same instance can serve several listeners.
import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { isLoopbackHost, type Config } from '../config/config.ts'
import { NotFound, RequestInvalid, UnsupportedMediaType } from '../errors.ts'
import type { Logger } from '../log.ts'
import { createMetricsRegistry, type PrometheusMetrics } from '../observability/registry.ts'
import type { AttestationService, KeyReleaseService } from '../service/types.ts'
import { handleError } from './error-handler.ts'
import { createClientErrorHandler, trackResponses } from './client-error.ts'
import { nodeServerOptions } from './http-options.ts'
import { isClosing, lingerOnClose } from './lingering-close.ts'
import { registerBrowserGuard } from './plugins/browser-guard.ts'
import { installLifecycle } from './lifecycle.ts'
import { backpressureOptions, eventLoopDelayOf, registerBackpressure, type BackpressureOptions } from './plugins/backpressure.ts'
import { registerHealthRoutes, type IdentityStatus } from './plugins/health.ts'
import { lazySchemaController } from './plugins/lazy-schemas.ts'
import { installRequestMetrics, registerMetricsRoute } from './plugins/metrics.ts'
import { registerOpenApi, registerOpenApiRoute } from './plugins/openapi.ts'
import { registerAttestRoutes } from './routes/attest.ts'
import { registerKeyReleaseRoute } from './routes/key-release.ts'
import { registerStatusRoute } from './routes/status.ts'
import { quietProbeLogging } from './request-logging.ts'
import { errorBodySchema } from './error-schemas.ts'

/** What the HTTP application needs: validated config and the two domain services. */
export interface AppDeps {
  config: Config
  attestation: AttestationService
  keyRelease: KeyReleaseService
  /** pino logger; the app logs through a child with `component: 'http'`. Silent when absent. */
  logger?: Logger
  /** The process's metrics registry (share it with the domain modules); a private one when absent. */
  metrics?: PrometheusMetrics
  /** Identity readiness for /readyz; the identity check is left out when absent. */
  identityStatus?: () => IdentityStatus
  /** Load-shedding limits; DEFAULT_BACKPRESSURE for anything not given. */
  backpressure?: Partial<BackpressureOptions>
}

/** Largest request body accepted (bytes); larger bodies answer 413. */
export const BODY_LIMIT = 1024 * 1024

const MAX_ECHO = 100

// The reference (gin's ShouldBindJSON) reads the body as JSON whatever the Content-Type, and its
// own examples post with `curl -d`, which sends application/x-www-form-urlencoded. So skr parses
// JSON bodies sent as application/json, as curl's form default, or with no Content-Type at all,
// and refuses every other declared type (text/plain, multipart, XML, ...) with 415.
const JSON_BODY_TYPES = new Set(['application/json', 'application/x-www-form-urlencoded', ''])

function mediaTypeOf (header: string | undefined): string {
  return (header ?? '').split(';')[0]?.trim().toLowerCase() ?? ''
}

// Runs before the body is read, so a body of another type never reaches a parser or route, and
// an unknown route still answers 404 rather than 415.
function requireJsonForPost (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void): void {
  if (request.method === 'POST' && !request.is404 && !JSON_BODY_TYPES.has(mediaTypeOf(request.headers['content-type']))) {
    done(new UnsupportedMediaType('content-type must be application/json'))
    return
  }
  done()
}

// An answer sent before the request's body was read (413, 415, a refusal in onRequest) is the
// connection's last: the rest of that body cannot be told apart from a next request, and the
// client is likely still uploading, so closing at once would reset the connection under it.
// Such a socket closes lingeringly (./lingering-close.ts), and nothing it sends after the answer
// reaches a route (refuseOnClosingSocket).
function lingerIfBodyUnread (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: Error | null, payload?: unknown) => void): void {
  if (!request.raw.complete) {
    if (!reply.raw.headersSent) reply.header('connection', 'close')
    lingerOnClose(request.raw.socket)
  }
  done(null, payload)
}

// A request parsed from a socket whose last answer was already given (pipelined behind an early
// refusal): it does no work; the socket is closed.
function refuseOnClosingSocket (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void): void {
  if (isClosing(request.raw.socket)) {
    request.raw.socket.destroy()
    done(new RequestInvalid('request after the connection\'s last answer'))
    return
  }
  done()
}

function notFound (request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const path = (request.url.split('?')[0] ?? '').slice(0, MAX_ECHO)
  return handleError(new NotFound(`no route ${request.method} ${path}`), request, reply)
}

/** Builds the fastify application with every route registered; it never listens. */
export function buildApp (deps: AppDeps): FastifyInstance {
  const loggerOption = deps.logger === undefined
    ? { logger: false as const }
    : { loggerInstance: deps.logger.child({ component: 'http' }) as FastifyBaseLogger }
  const listener = deps.config.listener
  const metrics = deps.metrics ?? createMetricsRegistry()
  const clientErrorHandler = createClientErrorHandler({
    ...(deps.logger === undefined ? {} : { log: deps.logger.child({ component: 'http' }) }),
    onClientError: (code) => { metrics.clientError(code) },
    responseStarted: trackResponses.started
  })
  const app: FastifyInstance = Fastify({
    ...loggerOption,
    // Probes and scrapes log their requests at debug, not twice at info every few seconds (./request-logging.ts).
    logController: quietProbeLogging(),
    bodyLimit: BODY_LIMIT,
    genReqId: () => randomUUID(),
    // Never trust a caller-supplied request id: log correlation must not be spoofable.
    requestIdHeader: false,
    // Node's server options (./http-options.ts); fastify applies requestTimeout and
    // keepAliveTimeout from its own options over them, so they are repeated here.
    http: nodeServerOptions(listener),
    requestTimeout: listener.receiveTimeoutMs,
    keepAliveTimeout: listener.keepAliveTimeoutMs,
    // Parser failures in skr's error shape, never logging the raw request (./client-error.ts).
    clientErrorHandler,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    ajv: {
      customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false, allowUnionTypes: true }
    },
    // Ajv and fast-json-stringify with the options above, but each route's functions are compiled
    // on its first request rather than all at start-up (./plugins/lazy-schemas.ts).
    schemaController: lazySchemaController(),
    // Requests arriving during close are refused by ./lifecycle.ts in skr's error shape
    // (ERR_SHUTTING_DOWN), and /readyz still answers "shutting down"; fastify's own 503 would do neither.
    return503OnClosing: false,
    // 'idle' lets in-flight releases finish on shutdown (each is bounded by requestTimeoutMs)
    // while idle keep-alive sockets are closed at once.
    forceCloseConnections: 'idle',
    frameworkErrors: (err, request, reply) => { handleError(err, request, reply) }
  })
  const limits = backpressureOptions(deps.backpressure)
  trackResponses.attach(app.server)

  // fastify parses text/plain by default; only JSON may reach a route. Form-typed and untyped
  // bodies (see JSON_BODY_TYPES) go through fastify's own JSON parser, with its poisoning guards.
  app.removeContentTypeParser('text/plain')
  const defaultJsonParser = app.getDefaultJsonParser('error', 'error')
  // An unknown route's body is never parsed: it answers 404 whatever it carries.
  const jsonParser: typeof defaultJsonParser = (request, body, done) => {
    if (request.is404) { done(null, undefined); return }
    defaultJsonParser(request, body, done)
  }
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, jsonParser)
  app.addContentTypeParser('*', { parseAs: 'string' }, jsonParser)
  // First of all hooks: nothing runs for a request on a closing connection, and a browser's
  // request is refused before anything else looks at it.
  app.addHook('onRequest', refuseOnClosingSocket)
  registerBrowserGuard(app, { serverNames: listener.serverNames, nonLoopbackListener: !isLoopbackHost(deps.config.host) })
  app.addHook('onRequest', requireJsonForPost)
  app.addHook('onSend', lingerIfBodyUnread)
  app.setErrorHandler(handleError)
  app.setNotFoundHandler(notFound)
  app.addSchema(errorBodySchema)
  const lifecycle = installLifecycle(app, () => { metrics.shed('draining') })
  installRequestMetrics(app, metrics)
  registerBackpressure(app, limits, metrics)
  const openApi = registerOpenApi(app)

  // Routes are declared in a plugin loaded after the OpenAPI route collector and the load-shedding hooks, so
  // the OpenAPI document sees every route and every route gets the load-shedding hook.
  app.register(async (api) => {
    registerStatusRoute(api, deps.attestation)
    registerAttestRoutes(api, deps.config, deps.attestation)
    registerKeyReleaseRoute(api, deps.config, deps.keyRelease)
    registerHealthRoutes(api, {
      attestation: deps.attestation,
      lifecycle,
      eventLoopDelayMs: () => eventLoopDelayOf(app),
      maxEventLoopDelayMs: limits.maxEventLoopDelayMs,
      ...(deps.identityStatus === undefined ? {} : { identityStatus: deps.identityStatus })
    })
    registerMetricsRoute(api, metrics)
    registerOpenApiRoute(api, openApi)
  })
  return app
}
