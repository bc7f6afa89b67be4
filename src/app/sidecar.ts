// The assembled sidecar: attestation + key release + HTTP listeners, built from one frozen
// Config. Shared by `skr serve`, the demo and the end-to-end tests, so they all run exactly
// the code that ships.
import type { Config } from '../config/config.ts'
import type { Logger } from '../log.ts'
import { buildAttestation } from './attestation.ts'
import { buildKeyRelease } from './release.ts'
import { createTrust } from './trust.ts'
import { buildApp } from '../server/app.ts'
import { closeGracefully, createListenerGate, listen, type Listening } from '../server/listen.ts'
// A type only (erased): gRPC's code is still loaded only when it is served.
import type { RunningGrpcServer } from '../grpc/server.ts'
import { eventLoopDelayOf } from '../server/plugins/backpressure.ts'
import type { MetricsListening } from '../server/metrics-listener.ts'
import { createMetricsRegistry } from '../observability/registry.ts'
import { instrumentKeyRelease } from '../service/instrumented-release.ts'
import type { AttestationService, KeyReleaseService } from '../service/types.ts'
import { createDestinationAdmission } from '../service/destination-admission.ts'
import { guardAttestation, guardKeyRelease } from '../service/egress-guard.ts'
import { allowedHostEntries } from '../http/allowed-hosts.ts'

export interface Sidecar {
  readonly addresses: readonly string[]
  /** The metrics listener (GET /metrics, /livez, /readyz only), e.g. `http://0.0.0.0:9464`; null when SKR_METRICS_PORT is unset. */
  readonly metricsAddress: string | null
  readonly attestationBackend: string | null
  readonly attestation: AttestationService
  readonly keyRelease: KeyReleaseService
  /** Stops accepting, lets in-flight requests finish within config.performance.shutdownGraceMs, then closes upstreams. */
  close (): Promise<void>
}

export interface SidecarOptions {
  log: Logger
  /** Extra trusted CA PEMs (the demo's local PKI), besides config.extraCaFile. */
  extraCa?: string[]
  /** Filesystem root for security-context discovery (tests). */
  root?: string
  /** Lines for a person while slow start-up work runs (the emulated AMD chain's first generation). */
  progress?: (message: string) => void
}

/**
 * Longest the background warm-up (wrapping-key pool, first VCEK chain fetch) waits
 * for the first request to be answered before it starts anyway.
 */
export const WARM_UP_DELAY_MS = 100

/** Builds and starts everything; the returned close() tears it down in order. */
export async function startSidecar (config: Config, options: SidecarOptions): Promise<Sidecar> {
  const metrics = createMetricsRegistry()
  // One trust for the process: the extra CA read and checked once, and every upstream client
  // (THIM, KDS, AzCache, MAA, AKV, IMDS, Entra) made with its roots, proxy routing and metrics.
  const trust = await createTrust(config, { ...(options.extraCa === undefined ? {} : { extraCa: options.extraCa }), observeUpstream: metrics.observeUpstream.bind(metrics) })
  // Warm-up work is deferred (deferWarmUp) until the sidecar serves: see warmUp below.
  const attestation = await buildAttestation(config, {
    log: options.log,
    trust,
    metrics,
    deferWarmUp: true,
    ...(options.root === undefined ? {} : { root: options.root }),
    ...(options.progress === undefined ? {} : { progress: options.progress })
  })
  metrics.setAttestationBackend(attestation.provider?.backend ?? 'none', attestation.provider?.simulated ?? false)
  const built = await buildKeyRelease(config, attestation.service, { log: options.log, trust, metrics, deferWarmUp: true })
  const p = config.performance
  // The trust boundary, for every transport: hosts a caller names must be allowed, and each
  // destination gets at most its share of the in-flight capacity (service/egress-guard.ts).
  const guard = {
    allowedHosts: config.allowedHosts,
    admission: createDestinationAdmission({ limit: p.maxInFlightPerDestination, totalLimit: p.maxInFlight, onShed: (reason) => { metrics.shed(reason) } })
  }
  if (config.allowedHosts.any) {
    options.log.warn('SKR_ALLOWED_HOSTS is *: callers may name ANY host as maa_endpoint or akv_endpoint, and skr will send that host its vault access token and MAA token (the reference\'s behaviour)')
  } else {
    options.log.info({ allowedHosts: allowedHostEntries(config.allowedHosts), source: config.allowedHosts.source }, 'egress allow-list for caller-named endpoints')
  }
  const attestationService = guardAttestation(attestation.service, guard)
  // One instrumented service for every transport, so each release (and each key of a batch) counts once in the metrics.
  const keyRelease = instrumentKeyRelease(guardKeyRelease(built, guard), metrics)
  let closing: Promise<void> | null = null

  // Generating the pool's RSA keys takes both cores of a small VM for a while, and the chain fetch
  // loads the HTTP client: started while the process is still starting, they delay the first
  // answer (the readiness probe's). So they start once the first request has been answered (on
  // the next turn of the event loop after it arrived), or WARM_UP_DELAY_MS after the listeners are
  // up, whichever comes first; a release arriving before then starts what it needs itself.
  let warmUpTimer: ReturnType<typeof setTimeout> | undefined = undefined
  let warmedUp = false
  const warmUp = (): void => {
    clearTimeout(warmUpTimer)
    if (warmedUp || closing !== null) return
    warmedUp = true
    built.start()
    void attestation.start()
  }
  const onFirstRequest = (): void => { setImmediate(warmUp) }

  const identityStatus = (): { configured: boolean, kind: string } => ({ configured: true, kind: built.identityKind })

  // The reference serves HTTP or gRPC on Port; skr can also serve both (gRPC on grpcPort).
  const app = config.serverType === 'grpc'
    ? null
    : buildApp({
      config,
      attestation: attestationService,
      keyRelease,
      logger: options.log,
      metrics,
      identityStatus,
      backpressure: { maxInFlightReleases: p.maxInFlight, maxEventLoopDelayMs: p.maxEventLoopDelayMs, maxHeapUsedBytes: p.maxHeapUsedBytes, maxRssBytes: p.maxRssBytes }
    })
  app?.server.once('request', onFirstRequest)
  // One connection gate for every listener, HTTP and gRPC: one count under one cap.
  const gate = createListenerGate(config, options.log, metrics)
  let http: Listening | null = null
  let grpc: RunningGrpcServer | null = null
  let metricsListener: MetricsListening | null = null
  try {
    http = app === null ? null : await listen(app, config, options.log, { gate })
    // gRPC (and its protobuf machinery) is loaded only when it is served.
    grpc = config.serverType === 'http'
      ? null
      : await (await import('../grpc/server.ts')).startGrpcServer({ config, attestation: attestationService, keyRelease, logger: options.log, gate })
    // The metrics listener (SKR_METRICS_PORT) last, so its /readyz is never up before the API.
    metricsListener = config.metricsListener === null
      ? null
      : await (await import('../server/metrics-listener.ts')).startMetricsListener({
        config,
        logger: options.log,
        metrics,
        health: {
          attestation: attestationService,
          identityStatus,
          // Not ready from the moment shutdown begins, like the API's /readyz.
          lifecycle: { get draining () { return closing !== null } },
          ...(app === null ? {} : { eventLoopDelayMs: () => eventLoopDelayOf(app) }),
          maxEventLoopDelayMs: p.maxEventLoopDelayMs
        }
      })
  } catch (err) {
    // A listener that did open (HTTP, when the gRPC port is taken) would keep the process alive
    // after the start-up error, and an in-process caller would leak it: close what was built.
    await http?.close()
    await grpc?.close(0)
    attestation.service.close()
    await built.close()
    await trust.close()
    throw err
  }
  if (!warmedUp) warmUpTimer = setTimeout(warmUp, WARM_UP_DELAY_MS)
  return {
    addresses: [...(http?.addresses ?? []), ...(grpc === null ? [] : [`grpc://${grpc.address}`])],
    metricsAddress: metricsListener?.address ?? null,
    attestationBackend: attestation.provider?.backend ?? null,
    attestation: attestationService,
    keyRelease,
    async close () {
      // Idempotent: SIGTERM and SIGINT (or a test and a signal) may both ask.
      closing ??= (async () => {
        clearTimeout(warmUpTimer)
        app?.server.removeListener('request', onFirstRequest)
        const [httpClosed] = await Promise.all([
          http === null ? null : closeGracefully(http, { graceMs: p.shutdownGraceMs }),
          grpc?.close(p.shutdownGraceMs)
        ])
        if (httpClosed?.stopped === true) options.log.warn({ graceMs: p.shutdownGraceMs }, 'shutdown grace period over: requests still waiting were answered 503 ERR_SHUTTING_DOWN')
        if (httpClosed?.forced === true) options.log.warn({ graceMs: p.shutdownGraceMs }, 'connections still open after the shutdown answers were cut off')
        // Closed after the API: meanwhile its /readyz answered 503 "shutting down" and Prometheus kept scraping.
        await metricsListener?.close()
        attestation.service.close()
        await built.close()
        await trust.close()
      })()
      await closing
    }
  }
}
