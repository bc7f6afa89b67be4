// Load shedding at the HTTP edge, answered in skr's error shape (503 ERR_OVERLOADED with
// Retry-After) rather than fastify's own body:
// - an in-flight cap on the routes that call upstreams (key release, MAA attestation), so a
//   burst cannot queue unbounded work against MAA/AKV quotas or the attestation device;
// - event-loop delay, heap and RSS, sampled in the background by ./pressure-monitor.ts. That
//   sampler replaces @fastify/under-pressure, whose timer threw EMFILE out of
//   process.memoryUsage() and killed the process when the file limit ran out; ours keeps the
//   last good value instead.
// Probes and scrapes (/status, /livez, /readyz, /metrics, /openapi.json) are never shed: a
// sidecar that is busy is not dead, and restarting it would only lose the work in flight.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Overloaded } from '../../errors.ts'
import { DRAIN_EXEMPT_ROUTES } from '../lifecycle.ts'
import type { HttpMetrics } from '../../observability/registry.ts'
import { startPressureMonitor, type PressureMonitor, type PressureMonitorOptions, type PressureReading } from './pressure-monitor.ts'

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
  /** How often the event loop and memory are sampled (ms; 0: the default of 1000). */
  sampleIntervalMs: number
  /** The Retry-After (seconds) of a shed request. */
  retryAfterSeconds: number
}

/** 256 in flight, 1 s event-loop delay, heap check off, 512 MiB RSS, 1 s samples, Retry-After 1. */
export const DEFAULT_BACKPRESSURE: Readonly<BackpressureOptions> = Object.freeze({
  maxInFlightReleases: 256,
  maxEventLoopDelayMs: 1000,
  maxHeapUsedBytes: 0,
  maxRssBytes: 512 * 1024 * 1024,
  sampleIntervalMs: 1000,
  retryAfterSeconds: 1
})

/** Routes counted against maxInFlightReleases (they hold upstream calls open). */
export const IN_FLIGHT_ROUTES: ReadonlySet<string> = new Set(['/key/release', '/attest/maa'])

/** Routes the pressure check never sheds: the probes and observability routes, which draining exempts too. */
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

/** Readers of the sampler, injectable so tests can drive pressure without loading the machine. */
export type PressureReaders = Pick<PressureMonitorOptions, 'readRss' | 'readHeapUsed' | 'histogram'>

// The sampler of each app, for eventLoopDelayOf (/livez) and tests; set while the app is ready.
const monitors = new WeakMap<FastifyInstance, PressureMonitor>()

// Which reading is over its ceiling, checked in under-pressure's order; undefined when none is.
function overCeiling (sample: Readonly<Record<PressureReading, number>>, options: BackpressureOptions): PressureReading | undefined {
  if (options.maxEventLoopDelayMs > 0 && sample.eventLoopDelay > options.maxEventLoopDelayMs) return 'eventLoopDelay'
  if (options.maxHeapUsedBytes > 0 && sample.heapUsedBytes > options.maxHeapUsedBytes) return 'heapUsedBytes'
  if (options.maxRssBytes > 0 && sample.rssBytes > options.maxRssBytes) return 'rssBytes'
  return undefined
}

// Samples from onReady to onClose, and sheds non-exempt requests while a reading is over its ceiling.
function installPressureCheck (app: FastifyInstance, options: BackpressureOptions, metrics: HttpMetrics, readers: PressureReaders): void {
  app.addHook('onReady', (done: (err?: Error) => void) => {
    monitors.get(app)?.stop()
    monitors.set(app, startPressureMonitor({
      ...readers,
      sampleIntervalMs: options.sampleIntervalMs,
      // Logged once per run of failures, not once per sample: under EMFILE that would be every second.
      onReadError: (reading, err, consecutive) => {
        if (consecutive === 1) app.log.warn({ reading, err }, 'pressure sample failed; keeping the last good value')
      },
      onReadRecovered: (reading, failed) => { app.log.info({ reading, failed }, 'pressure sample recovered') }
    }))
    done()
  })
  app.addHook('onClose', (_instance: FastifyInstance, done: () => void) => {
    monitors.get(app)?.stop()
    monitors.delete(app)
    done()
  })
  if (options.maxEventLoopDelayMs === 0 && options.maxHeapUsedBytes === 0 && options.maxRssBytes === 0) return

  app.addHook('onRequest', (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) => {
    const monitor = monitors.get(app)
    if (monitor === undefined || PRESSURE_EXEMPT_ROUTES.has(request.routeOptions.url ?? '')) { done(); return }
    const sample = monitor.current
    const reason = overCeiling(sample, options)
    if (reason === undefined) { done(); return }
    metrics.shed(reason)
    done(overloaded(reason, options, { value: Math.round(sample[reason]) }))
  })
}

/**
 * Installs the in-flight cap and the pressure check (both synchronously; sampling starts when
 * the app is ready and stops when it closes). Returns the in-flight counter.
 * @param readers test seam: replaces the sampler's readers (RSS, heap, event-loop histogram)
 */
export function registerBackpressure (app: FastifyInstance, partial: Partial<BackpressureOptions>, metrics: HttpMetrics, readers: PressureReaders = {}): InFlight {
  const options = backpressureOptions(partial)
  const inFlight = installInFlightLimit(app, options, metrics)
  installPressureCheck(app, options, metrics, readers)
  return inFlight
}

/** The running sampler of `app`, or undefined before ready and after close. */
export function pressureMonitorOf (app: FastifyInstance): PressureMonitor | undefined {
  return monitors.get(app)
}

/** Event-loop delay as last sampled (ms); 0 before the first sample and when not running. */
export function eventLoopDelayOf (app: FastifyInstance): number {
  return monitors.get(app)?.current.eventLoopDelay ?? 0
}
