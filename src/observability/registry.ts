// The Prometheus side of skr's metrics: one prom-client Registry per sidecar (never the global
// one, so two sidecars in one process, as in the tests, do not collide), the domain `Metrics`
// implementation and the few HTTP-edge series the server records itself. Rendered in the text
// exposition format 0.0.4 by GET /metrics (src/server/plugins/metrics.ts).
//
// Start-up cost: prom-client's index loads every part of the library (cluster aggregation, the
// Pushgateway client, summaries, and the default process metrics with @opentelemetry/api: ~30 ms
// and ~50 files). The four classes used here are required from their own files instead (prom-client
// has no `exports` map, so its lib/ files are public paths), and the default process metrics are
// loaded and registered on the first render(), i.e. the first scrape of GET /metrics.
//
// The exposition passes `promtool check metrics` (Prometheus's own linter, client_golang's
// promlint): counters end in `_total` and nothing else does, names and labels are snake_case, units
// are base units (https://prometheus.io/docs/practices/naming/). Three of prom-client's default
// gauges break the `_total` rule and are not exported (see DROPPED_DEFAULT_METRICS). One label name
// means one thing on every series: `status` is an HTTP status (or `error`/`timeout` upstream) on both
// histograms. Counters whose label values form a known, closed set are created at 0 for each of them
// ("avoid missing metrics", https://prometheus.io/docs/practices/instrumentation/#avoid-missing-metrics),
// so `rate()` and alerts see a series from the first scrape instead of only after the first event.
// test/unit/observability/exposition.test.ts checks all of this, with and without promtool.
import type { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { CacheName, Metrics, ReleaseOutcome, UpstreamService, UpstreamStatus } from './metrics.ts'
import promParts from './prom-client-parts.cjs'

/** What the HTTP edge records (only src/server calls these). */
export interface HttpMetrics {
  /** One answered request: method, ROUTE PATTERN (never the URL), status code, seconds. */
  observeRequest (method: string, route: string, statusCode: number, seconds: number): void
  /** One request refused by load shedding ('in_flight', 'eventLoopDelay', 'heapUsedBytes', 'rssBytes', 'draining'). */
  shed (reason: string): void
  /** Releases and MAA attestations currently running. */
  setInFlight (count: number): void
  /** API connections open now, over all listeners. */
  setOpenConnections (count: number): void
  /** One connection closed at once because the connection cap was reached. */
  connectionDropped (): void
  /** One request refused before routing (malformed HTTP, headers too large, too slow), by skr error code. */
  clientError (code: string): void
}

/** How to build the registry. */
export interface MetricsRegistryOptions {
  /** Prefix of every series name, default 'skr_'. */
  prefix?: string
  /** Collect prom-client's process and Node.js metrics (CPU, memory, event loop lag, GC), default true. */
  defaultMetrics?: boolean
}

const prom = promParts.core()

/** Label for anything that is not a short identifier (a URL, a key name, a sentence). */
export const OTHER_LABEL = 'other'

/**
 * prom-client default metrics skr does not export: gauges named `*_total`, which Prometheus
 * reserves for counters (promtool: `non-counter metrics should not have "_total" suffix`). Each is
 * the sum of its per-type twin (`skr_nodejs_active_handles{type}` and so on), which stays:
 * `sum(skr_nodejs_active_handles)` gives the same number.
 */
export const DROPPED_DEFAULT_METRICS: readonly string[] = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']

/** The caches skr has today: each starts at 0 hits and 0 misses (src/observability/metrics.ts lists who records them). */
export const KNOWN_CACHES: readonly CacheName[] = ['aad_token', 'attestation', 'signer_chain', 'vcek_chain', 'maa_keys']

/** Every reason skr sheds a request for (skr_http_shed_total's `reason`), snake_cased. */
export const SHED_REASONS: readonly string[] = ['in_flight', 'destination', 'event_loop_delay', 'heap_used_bytes', 'rss_bytes', 'draining']

/** The codes of requests refused before routing (src/server/client-error.ts, clientErrorFor). */
export const CLIENT_ERROR_CODES: readonly string[] = ['ERR_REQUEST_INVALID', 'ERR_REQUEST_TIMEOUT', 'ERR_HEADERS_TOO_LARGE']

const RELEASE_OUTCOMES: readonly ReleaseOutcome[] = ['released', 'denied', 'error']

const IDENTIFIER = /^[a-z][a-z0-9_-]{0,31}$/
const HTTP_STATUS = /^[1-5]\d\d$/
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'])

/** Maps a would-be label value to itself when it is a short lowercase identifier, else 'other'. */
export function sanitiseLabel (value: string): string {
  return IDENTIFIER.test(value) ? value : OTHER_LABEL
}

function upstreamStatusLabel (status: string): string {
  return HTTP_STATUS.test(status) || status === 'error' || status === 'timeout' ? status : OTHER_LABEL
}

// Routes are fastify patterns ('/key/release'); anything else (a raw URL) must never become a label.
function routeLabel (route: string): string {
  return /^\/[a-z0-9/_.-]{0,63}$/.test(route) || route === 'unmatched' ? route : OTHER_LABEL
}

// Local API calls take milliseconds; upstream calls up to the 30 s whole-call deadline.
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
const UPSTREAM_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

/** The Prometheus registry with the domain and HTTP metrics skr exports. */
export class PrometheusMetrics implements Metrics, HttpMetrics {
  /** The prom-client registry (exposed for tests and for adding series). */
  readonly registry: Registry
  readonly #httpDuration: Histogram<'method' | 'route' | 'status'>
  readonly #shed: Counter<'reason'>
  readonly #inFlight: Gauge
  readonly #connections: Gauge
  readonly #dropped: Counter
  readonly #clientErrors: Counter<'code'>
  readonly #upstreamDuration: Histogram<'service' | 'status'>
  readonly #cache: Counter<'cache' | 'result'>
  readonly #poolDepth: Gauge<'pool'>
  readonly #backend: Gauge<'backend' | 'simulated'>
  readonly #releases: Counter<'outcome'>
  /** The prefix default metrics are still to be registered with; null once done (or when off). */
  #defaultMetricsPrefix: string | null

  constructor (options: MetricsRegistryOptions = {}) {
    const prefix = options.prefix ?? 'skr_'
    const { Registry, Counter, Gauge, Histogram } = prom
    this.registry = new Registry()
    const registers = [this.registry]
    this.#defaultMetricsPrefix = options.defaultMetrics === false ? null : prefix
    this.#httpDuration = new Histogram({
      name: `${prefix}http_request_duration_seconds`,
      help: 'HTTP API requests by method, route pattern and status code, and how long they took',
      // `status`, as on skr_upstream_request_duration_seconds (renamed from `status_code`: docs/compatibility.md).
      labelNames: ['method', 'route', 'status'],
      buckets: HTTP_BUCKETS,
      registers
    })
    this.#shed = new Counter({
      name: `${prefix}http_shed_total`,
      help: 'Requests refused with 503 by load shedding or shutdown, by reason',
      labelNames: ['reason'],
      registers
    })
    this.#inFlight = new Gauge({
      name: `${prefix}http_in_flight_releases`,
      help: 'Key releases and MAA attestations currently running (capped by the in-flight limit)',
      registers
    })
    this.#connections = new Gauge({
      name: `${prefix}http_connections_open`,
      help: 'API connections open now, over all HTTP listeners',
      registers
    })
    this.#dropped = new Counter({
      name: `${prefix}http_connections_dropped_total`,
      help: 'Connections closed at once because the connection cap (SKR_MAX_CONNECTIONS) was reached',
      registers
    })
    this.#clientErrors = new Counter({
      name: `${prefix}http_client_errors_total`,
      help: 'Requests refused before routing (malformed HTTP, headers too large, too slow), by error code',
      labelNames: ['code'],
      registers
    })
    this.#upstreamDuration = new Histogram({
      name: `${prefix}upstream_request_duration_seconds`,
      help: 'Calls to upstream services (after retries) by service and final status, and how long they took',
      labelNames: ['service', 'status'],
      buckets: UPSTREAM_BUCKETS,
      registers
    })
    this.#cache = new Counter({
      name: `${prefix}cache_lookups_total`,
      help: 'Cache lookups by cache and result (hit or miss)',
      labelNames: ['cache', 'result'],
      registers
    })
    this.#poolDepth = new Gauge({
      name: `${prefix}pool_depth`,
      help: 'Ready items in each pool',
      labelNames: ['pool'],
      registers
    })
    this.#backend = new Gauge({
      name: `${prefix}attestation_backend_info`,
      help: 'The attestation backend in use (value 1); simulated="true" means no hardware root of trust',
      labelNames: ['backend', 'simulated'],
      registers
    })
    this.#releases = new Counter({
      name: `${prefix}key_releases_total`,
      help: 'Key releases by outcome (released, denied by the vault or its policy, error)',
      labelNames: ['outcome'],
      registers
    })
    // Known label sets start at 0 (see the header).
    for (const outcome of RELEASE_OUTCOMES) this.#releases.inc({ outcome }, 0)
    for (const cache of KNOWN_CACHES) for (const result of ['hit', 'miss']) this.#cache.inc({ cache, result }, 0)
    for (const reason of SHED_REASONS) this.#shed.inc({ reason }, 0)
    for (const code of CLIENT_ERROR_CODES) this.#clientErrors.inc({ code }, 0)
  }

  /** The Content-Type of render()'s output: `text/plain; version=0.0.4; charset=utf-8`. */
  get contentType (): string {
    return this.registry.contentType
  }

  /** Every series in the Prometheus text format (the first call also registers the default process metrics). */
  async render (): Promise<string> {
    this.collectDefaultMetrics()
    return await this.registry.metrics()
  }

  /**
   * Registers prom-client's process and Node.js metrics (CPU, memory, event-loop lag, GC) unless
   * they are off or already registered. render() calls it; the lag and GC histograms count from then.
   */
  collectDefaultMetrics (): void {
    const prefix = this.#defaultMetricsPrefix
    if (prefix === null) return
    this.#defaultMetricsPrefix = null
    const collect = promParts.collectDefaultMetrics()
    collect({ register: this.registry, prefix })
    for (const name of DROPPED_DEFAULT_METRICS) this.registry.removeSingleMetric(`${prefix}${name}`)
  }

  observeRequest (method: string, route: string, statusCode: number, seconds: number): void {
    const labels = {
      method: METHODS.has(method) ? method : OTHER_LABEL,
      route: routeLabel(route),
      status: HTTP_STATUS.test(String(statusCode)) ? String(statusCode) : OTHER_LABEL
    }
    this.#httpDuration.observe(labels, seconds)
  }

  shed (reason: string): void {
    this.#shed.inc({ reason: sanitiseLabel(toSnake(reason)) })
  }

  setInFlight (count: number): void {
    this.#inFlight.set(count)
  }

  setOpenConnections (count: number): void {
    this.#connections.set(count)
  }

  connectionDropped (): void {
    this.#dropped.inc()
  }

  clientError (code: string): void {
    this.#clientErrors.inc({ code: /^ERR_[A-Z0-9_]{1,40}$/.test(code) ? code : OTHER_LABEL })
  }

  observeUpstream (service: UpstreamService, status: UpstreamStatus, seconds: number): void {
    if (!Number.isFinite(seconds) || seconds < 0) return
    this.#upstreamDuration.observe({ service: sanitiseLabel(service), status: upstreamStatusLabel(status) }, seconds)
  }

  cacheResult (cache: CacheName, hit: boolean): void {
    this.#cache.inc({ cache: sanitiseLabel(cache), result: hit ? 'hit' : 'miss' })
  }

  setPoolDepth (pool: string, depth: number): void {
    if (Number.isFinite(depth)) this.#poolDepth.set({ pool: sanitiseLabel(pool) }, depth)
  }

  setAttestationBackend (backend: string, simulated: boolean): void {
    // One backend at a time: a second call (a re-selection) replaces the first.
    this.#backend.reset()
    this.#backend.set({ backend: sanitiseLabel(backend), simulated: String(simulated) }, 1)
  }

  releaseResult (outcome: ReleaseOutcome): void {
    this.#releases.inc({ outcome: sanitiseLabel(outcome) })
  }
}

// The load-shedding sampler names its reasons in camelCase ('eventLoopDelay'); Prometheus labels read better snake_cased.
function toSnake (value: string): string {
  return value.replace(/[A-Z]/g, c => `_${c.toLowerCase()}`)
}

/** Creates the registry (with default process metrics unless turned off). */
export function createMetricsRegistry (options: MetricsRegistryOptions = {}): PrometheusMetrics {
  return new PrometheusMetrics(options)
}
