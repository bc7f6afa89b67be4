// GET /metrics (Prometheus text format 0.0.4) and the per-request histogram. Requests are
// labelled by the ROUTE PATTERN fastify matched ('/key/release'), never by the URL, so a
// caller cannot mint label values; unknown routes share the label 'unmatched'. Served with the
// API on loopback and, when SKR_METRICS_PORT is set, on the metrics listener the cluster can
// scrape (../metrics-listener.ts).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { PrometheusMetrics } from '../../observability/registry.ts'
import { errorResponses } from '../schemas.ts'

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
export function registerMetricsRoute (app: FastifyInstance, metrics: PrometheusMetrics): void {
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
