// GET /metrics (Prometheus text format 0.0.4) and the per-request histogram. Requests are
// labelled by the ROUTE PATTERN fastify matched ('/key/release'), never by the URL, so a
// caller cannot mint label values; unknown routes share the label 'unmatched'. Served with the
// API on loopback and, when SKR_METRICS_PORT is set, on the metrics listener the cluster can
// scrape (../metrics-listener.ts).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { PrometheusMetrics } from '../../observability/registry.ts'
import { errorResponses } from '../error-schemas.ts'

/** The route label of requests no route matched. */
export const UNMATCHED_ROUTE = 'unmatched'

/** Adds the request histogram hook (at the root, so unmatched requests count too). */
export function installRequestMetrics (app: FastifyInstance, metrics: PrometheusMetrics): void {
  app.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
    // A metrics failure must never affect the answer, which is already sent anyway.
    try {
      const route = request.is404 ? UNMATCHED_ROUTE : (request.routeOptions.url ?? UNMATCHED_ROUTE)
      metrics.observeRequest(request.method, route, reply.statusCode, reply.elapsedTime / 1000)
    } catch (err) {
      request.log.warn({ err }, 'could not record request metrics')
    }
    done()
  })
}

/** Declares GET /metrics. */
/** What GET /metrics needs of the registry. */
export type MetricsSource = Pick<PrometheusMetrics, 'render' | 'contentType'>

/**
 * `metrics`, rendered at most once per `ttlMs`: scrapes within that window get the same text.
 * For a listener that faces the cluster, so that a peer scraping in a loop costs one render per
 * window, not one per request, on the event loop key releases run on.
 */
export function cachedMetrics (metrics: MetricsSource, ttlMs: number, now: () => number = () => performance.now()): MetricsSource {
  let cached: { at: number, text: Promise<string> } | null = null
  return {
    get contentType () { return metrics.contentType },
    async render () {
      const t = now()
      if (cached === null || t - cached.at >= ttlMs) {
        const text = metrics.render()
        cached = { at: t, text }
        // A failed render is not kept.
        text.catch(() => { if (cached?.text === text) cached = null })
      }
      return await cached.text
    }
  }
}

export function registerMetricsRoute (app: FastifyInstance, metrics: MetricsSource): void {
  app.get('/metrics', {
    schema: {
      summary: 'Prometheus metrics',
      operationId: 'getMetrics',
      description: 'Requests by route and status, upstream latency by service and status, cache hits and misses, pool depth, ' +
        'the attestation backend, key release outcomes, load shedding, and process metrics; all prefixed skr_. Never shed.',
      tags: ['observability'],
      response: {
        200: {
          description: 'Prometheus text exposition format, version 0.0.4',
          content: { 'text/plain': { schema: { type: 'string' } } }
        },
        ...errorResponses
      }
    }
  }, async (_request, reply) => {
    const text = await metrics.render()
    return await reply.type(metrics.contentType).send(text)
  })
}
