// The metrics listener (SKR_METRICS_PORT): GET /metrics, /livez and /readyz, and nothing else, on
// an address the cluster can reach (by default 0.0.0.0, so the pod IP), for Prometheus scrapes and
// kubelet httpGet probes. The key API stays on loopback (./listen.ts); this is a separate, minimal
// fastify app that cannot serve it: only these three routes are declared, everything else is 404.
//
// What it shares with the API: the metrics registry and the probes' logic (./plugins/metrics.ts,
// ./plugins/health.ts), the node:http timeouts (./http-options.ts), the parser-error handler
// (./client-error.ts) and the connection timers (createListenerGate). What it does not: the browser
// guard (its callers are Prometheus and the kubelet, from other hosts, under any Host name; it
// answers no browser anything a page could use), request metrics (skr_http_request_duration_seconds
// counts the API), and the API's connection cap. It has its own small cap, METRICS_MAX_CONNECTIONS:
// a flood of connections from anywhere in the cluster then takes this listener's slots, never the
// ones the app in the pod needs for key releases, and its descriptors come out of the reserve the
// API's derived cap leaves free (FD_RESERVE in ./connections.ts).
//
// Nothing here is secret: /metrics carries no key names, endpoints or tokens as label values
// (src/observability/registry.ts), and /readyz's problems name settings and states, never values.
import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Config } from '../config/config.ts'
import { NotFound } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { PrometheusMetrics } from '../observability/registry.ts'
import { createClientErrorHandler, trackResponses } from './client-error.ts'
import { errorBody, handleError } from './error-handler.ts'
import { nodeServerOptions } from './http-options.ts'
import { createListenerGate } from './listen.ts'
import { listenFailed } from '../listen/listen-error.ts'
import { registerHealthRoutes, type HealthDeps } from './plugins/health.ts'
import { lazySchemaController } from './plugins/lazy-schemas.ts'
import { registerMetricsRoute, cachedMetrics } from './plugins/metrics.ts'
import { startPressureMonitor } from './plugins/pressure-monitor.ts'
import { quietProbeLogging } from './request-logging.ts'
import { errorBodySchema } from './error-schemas.ts'

/** Connections the metrics listener keeps open at most (Prometheus keeps one per target; each kubelet probe opens one). */
export const METRICS_MAX_CONNECTIONS = 16

/** The routes served, all GET. */
export const METRICS_ROUTES: readonly string[] = ['/metrics', '/livez', '/readyz']

/** What the metrics listener serves from. */
export interface MetricsListenerDeps {
  /** Listener timeouts, the request deadline, and `metricsListener` (host and port). */
  config: Config
  /** Logs through a child with `component: 'metrics'`. */
  logger: Logger
  /** The sidecar's registry (the one the API and the domain modules record into). */
  metrics: PrometheusMetrics
  /**
   * The probes' inputs, as the API app's. `eventLoopDelayMs` may be left out (a gRPC-only sidecar
   * has no API app sampling it): the listener then samples the event loop itself.
   */
  health: Omit<HealthDeps, 'eventLoopDelayMs'> & { eventLoopDelayMs?: () => number }
}

/** The running metrics listener. */
export interface MetricsListening {
  /** `http://0.0.0.0:9464`, `http://[::]:9464`. */
  readonly address: string
  /** Stops accepting and closes every connection (scrapes and probes are short: nothing waits). */
  close (): Promise<void>
}

const MAX_ECHO = 100

/** How long one rendering of /metrics serves scrapes on this listener (ms). */
export const METRICS_RENDER_TTL_MS = 1_000

// Unknown paths are logged at debug only: this port faces the cluster, and a scanner's requests
// must not fill the log (the API logs its 404s at info; a caller there is in the pod).
function notFound (request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const path = (request.url.split('?')[0] ?? '').slice(0, MAX_ECHO)
  const err = new NotFound(`no route ${request.method} ${path} on the metrics listener (it serves GET ${METRICS_ROUTES.join(', ')})`)
  request.log.debug({ code: err.code }, err.message)
  return reply.code(err.statusCode).type('application/json; charset=utf-8').send(JSON.stringify(errorBody(err, String(request.id))))
}

/**
 * Builds the metrics app (never listens; tests use app.inject()). app.close() also stops the
 * event-loop sampler it runs when `health.eventLoopDelayMs` is not given.
 */
export function buildMetricsApp (deps: MetricsListenerDeps): FastifyInstance {
  const log = deps.logger.child({ component: 'metrics' })
  const listener = deps.config.listener
  const app: FastifyInstance = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    // Every route here is a probe or a scrape: their request lines are debug, never info.
    logController: quietProbeLogging('all'),
    // GET only: nothing here reads a body.
    bodyLimit: 1024,
    // HEAD and every other method are 404 like unknown paths: exactly three GET routes are served.
    exposeHeadRoutes: false,
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    http: nodeServerOptions(listener),
    requestTimeout: listener.receiveTimeoutMs,
    keepAliveTimeout: listener.keepAliveTimeoutMs,
    clientErrorHandler: createClientErrorHandler({ log, responseStarted: trackResponses.started }),
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    schemaController: lazySchemaController(),
    // /readyz says "shutting down" itself (HealthDeps.lifecycle); a scrape in flight at close is cut.
    return503OnClosing: false,
    forceCloseConnections: true,
    frameworkErrors: (err, request, reply) => { handleError(err, request, reply) }
  })
  trackResponses.attach(app.server)
  // Nothing here reads a body: anything but GET is a 404 before a body could be read or parsed,
  // and a GET's body is never parsed (Node discards it).
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, _payload, done) => { done(null) })
  app.addHook('onRequest', (request, reply, done) => {
    if (request.method !== 'GET') { notFound(request, reply); return }
    done()
  })
  app.setErrorHandler(handleError)
  app.setNotFoundHandler(notFound)
  app.addSchema(errorBodySchema)

  let eventLoopDelayMs = deps.health.eventLoopDelayMs
  if (eventLoopDelayMs === undefined) {
    const monitor = startPressureMonitor({ sampleIntervalMs: 0 })
    app.addHook('onClose', (_instance, done) => { monitor.stop(); done() })
    eventLoopDelayMs = () => monitor.current.eventLoopDelay
  }
  registerHealthRoutes(app, { ...deps.health, eventLoopDelayMs })
  registerMetricsRoute(app, cachedMetrics(deps.metrics, METRICS_RENDER_TTL_MS))
  return app
}

function httpAddress (host: string, port: number): string {
  return host.includes(':') ? `http://[${host}]:${port}` : `http://${host}:${port}`
}

/**
 * Starts the metrics listener on config.metricsListener.
 * @throws TypeError when the config has no metrics listener; ListenFailed (./listen-error.ts) when it cannot bind
 */
export async function startMetricsListener (deps: MetricsListenerDeps): Promise<MetricsListening> {
  const settings = deps.config.metricsListener
  if (settings === null) throw new TypeError('startMetricsListener: config.metricsListener is null (SKR_METRICS_PORT is not set)')
  const app = buildMetricsApp(deps)
  const log = deps.logger.child({ component: 'metrics' })
  // The API's timers and hardening, with this listener's own cap. The gate's "connection cap" line
  // would name SKR_MAX_CONNECTIONS as the source of this fixed cap: only its warnings are kept.
  const gateLevel = log.levelVal > log.levels.values.warn! ? log.level : 'warn'
  const gate = createListenerGate({ ...deps.config, listener: { ...deps.config.listener, maxConnections: METRICS_MAX_CONNECTIONS } }, log.child({}, { level: gateLevel }))
  gate.attach(app.server)
  const host = settings.host.toLowerCase() === 'localhost' ? '127.0.0.1' : settings.host.replace(/^\[|\]$/g, '')
  try {
    await app.listen({ host, port: settings.port })
  } catch (err) {
    await app.close().catch(() => {})
    throw listenFailed(err, { host, port: settings.port, portSetting: 'SKR_METRICS_PORT / --metrics-port', hostSetting: 'SKR_METRICS_HOST', what: 'metrics listener' })
  }
  // An accept() failure once listening (EMFILE) is emitted as 'error': logged, never fatal.
  app.server.on('error', (err: NodeJS.ErrnoException) => { log.error({ code: err.code }, 'metrics listener error; still serving the connections it has') })
  const bound = app.server.address()
  const address = httpAddress(host, typeof bound === 'object' && bound !== null ? bound.port : settings.port)
  log.info({ address, routes: METRICS_ROUTES, maxConnections: METRICS_MAX_CONNECTIONS }, 'skr metrics listener listening (metrics and probes only; the key API stays on loopback)')
  return {
    address,
    async close () {
      await app.close()
      gate.destroyAll()
    }
  }
}
