// fastify logs every request twice at info ("incoming request", "request completed"). For the
// routes kubelet probes and Prometheus scrapes call every few seconds (/status through the exec
// probe `skr healthcheck`, /livez, /readyz, /metrics) that buried everything else in the log of a
// deployment at LogLevel=info, the level the examples in deploy/ use. Those two lines are written
// at debug for these routes instead: still there when someone debugs, never at info. What the routes
// log themselves, and failures (a 5xx, "request errored"), keep their levels; so does every other
// route, and a request no route matched on the API.
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify'

/** The probe and scrape routes whose per-request lines are written at debug, not info. */
export const QUIET_ROUTES: ReadonlySet<string> = new Set(['/status', '/livez', '/readyz', '/metrics'])

function isQuiet (request: FastifyRequest, routes: ReadonlySet<string> | 'all'): boolean {
  if (routes === 'all') return true
  return !request.is404 && routes.has(request.routeOptions.url ?? '')
}

/** fastify's LogController, with the per-request lines of `routes` (or of every request: 'all') at debug. */
class QuietProbeLogController extends LogController {
  readonly #routes: ReadonlySet<string> | 'all'

  constructor (routes: ReadonlySet<string> | 'all') {
    super()
    this.#routes = routes
  }

  override incomingRequest (request: FastifyRequest, reply: FastifyReply, metadata?: Record<string, unknown>): void {
    if (!isQuiet(request, this.#routes)) { super.incomingRequest(request, reply, metadata); return }
    request.log.debug({ req: request }, 'incoming request')
  }

  override requestCompleted (error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply, metadata?: Record<string, unknown>): void {
    // A failure stays at error level, as fastify logs it.
    if (error !== null && error !== undefined) { super.requestCompleted(error, request, reply, metadata); return }
    if (!isQuiet(request, this.#routes)) { super.requestCompleted(error, request, reply, metadata); return }
    reply.log.debug({ res: reply, responseTime: reply.elapsedTime }, 'request completed')
  }
}

/** The `logController` option of an app whose probe routes (QUIET_ROUTES; 'all': every request, for the metrics listener) log requests at debug. */
export function quietProbeLogging (routes: ReadonlySet<string> | 'all' = QUIET_ROUTES): LogController {
  return new QuietProbeLogController(routes)
}
