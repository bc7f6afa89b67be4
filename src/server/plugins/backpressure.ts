// Load shedding at the HTTP edge, answered in skr's error shape (503 ERR_OVERLOADED with
// Retry-After) rather than fastify's or under-pressure's own bodies:
// - an in-flight cap on the routes that call upstreams (key release, MAA attestation), so a
//   burst cannot queue unbounded work against MAA/AKV quotas or the attestation device;
// - @fastify/under-pressure for event-loop delay, heap and RSS, sampled in the background.
// Probes and scrapes (/status, /livez, /readyz, /metrics, /openapi.json) are never shed: a
// sidecar that is busy is not dead, and restarting it would only lose the work in flight.
import underPressure from '@fastify/under-pressure'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Overloaded } from '../../errors.ts'
import { DRAIN_EXEMPT_ROUTES } from '../lifecycle.ts'
import type { HttpMetrics } from '../../observability/registry.ts'

/** Limits of the edge, with units in the names. 0 turns a pressure check off. */
export interface BackpressureOptions {
  /** Releases plus MAA attestations running at once; one more answers 503. */
  maxInFlightReleases: number
  /** Mean event-loop delay (ms) over one sample above which requests are shed. */
  maxEventLoopDelayMs: number
  /** V8 heap in use above which requests are shed (0: off; RSS is the better signal). */
  maxHeapUsedBytes: number
  /** Resident set size above which requests are shed. */
  maxRssBytes: number
  /** How often under-pressure samples the event loop and memory (ms). */
  sampleIntervalMs: number
  /** The Retry-After (seconds) of a shed request. */
  retryAfterSeconds: number
}

/** 64 in flight, 1 s event-loop delay, heap check off, 512 MiB RSS, 1 s samples, Retry-After 1. */
export const DEFAULT_BACKPRESSURE: Readonly<BackpressureOptions> = Object.freeze({
  maxInFlightReleases: 64,
  maxEventLoopDelayMs: 1000,
  maxHeapUsedBytes: 0,
  maxRssBytes: 512 * 1024 * 1024,
  sampleIntervalMs: 1000,
  retryAfterSeconds: 1
})

/** Routes counted against maxInFlightReleases (they hold upstream calls open). */
export const IN_FLIGHT_ROUTES: ReadonlySet<string> = new Set(['/key/release', '/attest/maa'])

/** Routes under-pressure never sheds: the probes and observability routes, which draining exempts too. */
export const PRESSURE_EXEMPT_ROUTES: ReadonlySet<string> = DRAIN_EXEMPT_ROUTES

/** Merges partial options over the defaults; throws TypeError for a negative or non-finite value. */
export function backpressureOptions (partial: Partial<BackpressureOptions> = {}): BackpressureOptions {
  const merged: BackpressureOptions = { ...DEFAULT_BACKPRESSURE }
  for (const [key, value] of Object.entries(partial) as Array<[keyof BackpressureOptions, number | undefined]>) {
    if (value === undefined) continue
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new TypeError(`backpressure option ${key} must be a non-negative number, got ${String(value)}`)
    }
    merged[key] = value
  }
  if (merged.maxInFlightReleases < 1) throw new TypeError('backpressure option maxInFlightReleases must be at least 1')
  return merged
}

/** The in-flight counter, readable for tests and metrics. */
export interface InFlight {
  readonly count: number
}

function overloaded (reason: string, options: BackpressureOptions, details: Record<string, number> = {}): Overloaded {
  return new Overloaded(`request shed: ${reason}`, { details: { reason, retryAfterSeconds: options.retryAfterSeconds, ...details } })
}

// Counts a request from onRequest until its response ends or its socket closes, whichever comes
// first (both fire for most requests; leaving `counted` makes the decrement happen once).
function installInFlightLimit (app: FastifyInstance, options: BackpressureOptions, metrics: HttpMetrics): InFlight {
  let count = 0
  const counted = new WeakSet<FastifyRequest>()
  const release = (request: FastifyRequest): void => {
    if (!counted.delete(request)) return
    count--
    metrics.setInFlight(count)
  }

  app.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => {
    if (!IN_FLIGHT_ROUTES.has(request.routeOptions.url ?? '')) { done(); return }
    if (count >= options.maxInFlightReleases) {
      metrics.shed('in_flight')
      done(overloaded('in_flight', options, { limit: options.maxInFlightReleases }))
      return
    }
    count++
    counted.add(request)
    metrics.setInFlight(count)
    reply.raw.once('close', () => { release(request) })
    done()
  })
  app.addHook('onResponse', (request: FastifyRequest, _reply: FastifyReply, done: () => void) => {
    release(request)
    done()
  })
  return { get count () { return count } }
}

/**
 * Installs the in-flight cap (synchronously) and registers under-pressure (loaded with the
 * app's other plugins). Returns the in-flight counter.
 */
export function registerBackpressure (app: FastifyInstance, partial: Partial<BackpressureOptions>, metrics: HttpMetrics): InFlight {
  const options = backpressureOptions(partial)
  const inFlight = installInFlightLimit(app, options, metrics)
  app.register(underPressure, {
    maxEventLoopDelay: options.maxEventLoopDelayMs,
    maxHeapUsedBytes: options.maxHeapUsedBytes,
    maxRssBytes: options.maxRssBytes,
    sampleInterval: options.sampleIntervalMs,
    retryAfter: options.retryAfterSeconds,
    // Rejecting hands the error to skr's error handler (our body and Retry-After); resolving lets the request through.
    pressureHandler: async (request, _reply, type, value) => {
      if (PRESSURE_EXEMPT_ROUTES.has(request.routeOptions.url ?? '')) return
      metrics.shed(type)
      throw overloaded(type, options, value === undefined ? {} : { value: Math.round(value) })
    }
  })
  return inFlight
}

/** Event-loop delay as under-pressure last sampled it (ms), and the configured ceiling (0: unchecked). */
export function eventLoopDelayOf (app: FastifyInstance): number {
  // memoryUsage is decorated when under-pressure loads; before that nothing was sampled.
  return typeof app.memoryUsage === 'function' ? app.memoryUsage().eventLoopDelay : 0
}
