// The assembled sidecar: attestation + key release + HTTP listeners, built from one frozen
// Config. Shared by `skr serve`, the demo and the end-to-end tests, so they all run exactly
// the code that ships.
import type { Config } from './config.ts'
import type { Logger } from './log.ts'
import { buildAttestation } from './attest/build.ts'
import { buildKeyRelease } from './skr/build.ts'
import { buildApp } from './server/app.ts'
import { closeGracefully, listen } from './server/listen.ts'
import { createMetricsRegistry } from './observability/registry.ts'
import { instrumentKeyRelease } from './observability/metrics.ts'
import type { AttestationService, KeyReleaseService } from './service/types.ts'

export interface Sidecar {
  readonly addresses: readonly string[]
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
}

/** Builds and starts everything; the returned close() tears it down in order. */
export async function startSidecar (config: Config, options: SidecarOptions): Promise<Sidecar> {
  // Both builds add config.extraCaFile to these themselves (config/extra-ca.ts).
  const extraCa = options.extraCa ?? []
  const metrics = createMetricsRegistry()
  const attestation = await buildAttestation(config, { log: options.log, extraCa, metrics, ...(options.root === undefined ? {} : { root: options.root }) })
  metrics.setAttestationBackend(attestation.provider?.backend ?? 'none', attestation.provider?.simulated ?? false)
  const built = await buildKeyRelease(config, attestation.service, { log: options.log, extraCa, metrics })
  // One instrumented service for every transport, so each release counts once in the metrics.
  const keyRelease = instrumentKeyRelease(built, metrics)
  const p = config.performance
  // The reference serves HTTP or gRPC on Port; skr can also serve both (gRPC on grpcPort).
  const http = config.serverType === 'grpc'
    ? null
    : await listen(buildApp({
      config,
      attestation: attestation.service,
      keyRelease,
      logger: options.log,
      metrics,
      identityStatus: () => ({ configured: true, kind: built.identityKind }),
      backpressure: { maxInFlightReleases: p.maxInFlight, maxEventLoopDelayMs: p.maxEventLoopDelayMs, maxHeapUsedBytes: p.maxHeapUsedBytes, maxRssBytes: p.maxRssBytes }
    }), config, options.log)
  // gRPC (and its protobuf machinery) is loaded only when it is served.
  const grpc = config.serverType === 'http'
    ? null
    : await (await import('./grpc/server.ts')).startGrpcServer({ config, attestation: attestation.service, keyRelease, logger: options.log })
  let closing: Promise<void> | null = null
  return {
    addresses: [...(http?.addresses ?? []), ...(grpc === null ? [] : [`grpc://${grpc.address}`])],
    attestationBackend: attestation.provider?.backend ?? null,
    attestation: attestation.service,
    keyRelease,
    async close () {
      // Idempotent: SIGTERM and SIGINT (or a test and a signal) may both ask.
      closing ??= (async () => {
        const [httpClosed] = await Promise.all([
          http === null ? null : closeGracefully(http, { graceMs: p.shutdownGraceMs }),
          grpc?.close(p.shutdownGraceMs)
        ])
        if (httpClosed?.forced === true) options.log.warn({ graceMs: p.shutdownGraceMs }, 'shutdown grace period over: in-flight requests were cut off')
        attestation.service.close()
        await built.close()
        await Promise.allSettled(Object.values(attestation.upstreams).map(async u => { await u.close() }))
      })()
      await closing
    }
  }
}
