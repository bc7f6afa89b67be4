// The composition root for attestation, used by the serve command and the demo: the security
// context, the backend, the VCEK chain source and cache, the upstream clients (routed by the
// Config's egress-proxy settings) and the MAA client, wired from the frozen Config. A machine
// without SEV-SNP still gets a service: its calls fail with ERR_SNP_DEVICE_UNAVAILABLE and
// status() says why, so the server starts and /status answers.
import { pino } from 'pino'
import { AMD_ARK_FINGERPRINTS } from '../certs/amd-roots.ts'
import type { EmulatedAmdChain } from '../simulated/emulated-chain.ts'
import { loadOrCreateEmulatedChain } from '../simulated/emulated-chain-cache.ts'
import type { Config } from '../config/config.ts'
import { isSidecarError, type SidecarError } from '../errors.ts'
import { DEFAULT_UPSTREAM_POLICY, type Upstream, type UpstreamName } from '../http/upstream.ts'
import type { Logger } from '../log.ts'
import { createMaaClient } from '../maa/client.ts'
import type { QuoteProvider } from '../snp/provider.ts'
import { selectQuoteProvider } from '../snp/select.ts'
import { createSimulatedProvider } from '../simulated/provider.ts'
import { securityContextEnv } from '../config/security-context-env.ts'
import { emptySecurityContext, loadSecurityContext, type SecurityContext } from '../uvm/security-context.ts'
import { createAttestationService, type AttestationServiceHandle } from '../attest/attestation-service.ts'
import { collateralFetcher } from '../collateral/source.ts'
import { createCollateralStore } from '../collateral/store.ts'
import { createTrust, type Trust } from './trust.ts'

/** Test hooks for buildAttestation. */
export interface BuildAttestationOptions {
  log?: Logger
  /** Filesystem root for security-context discovery (tests); default '/'. */
  root?: string
  /** The process's trust and upstream factory (app/trust.ts); default: one built here from config, `extraCa` and `metrics`. */
  trust?: Trust
  /** Extra PEM roots for every upstream, besides config.extraCaFile (tests point upstreams at local doubles); only without `trust`. */
  extraCa?: string[]
  /**
   * Upstream call outcomes and latency, and the lookups of the VCEK chain store ('vcek_chain') and
   * of the MAA signing-key cache ('maa_keys') (observability/metrics.ts's Metrics fits); default none.
   */
  metrics?: {
    observeUpstream: (service: UpstreamName, status: string, seconds: number) => void
    cacheResult: (cache: string, hit: boolean) => void
  }
  /**
   * Leave the start-up chain fetch to start() (default false: it begins at once). The sidecar sets
   * it and calls start() once it is listening, so the fetch does not compete with start-up.
   */
  deferWarmUp?: boolean
  /** Lines for a person while the emulated AMD chain is generated (simulated attestation, first run: seconds). */
  progress?: (message: string) => void
}

/** Everything built; the caller owns the upstreams (close them on shutdown) and calls service.close(). */
export interface BuiltAttestation {
  service: AttestationServiceHandle
  /** The selected backend; null when none is usable (then service calls fail with ERR_SNP_DEVICE_UNAVAILABLE). */
  provider: QuoteProvider | null
  securityContext: SecurityContext
  simulatedChain: EmulatedAmdChain | null
  upstreams: Record<'thim' | 'kds' | 'azcache' | 'maa', Upstream>
  /** Settles (never rejects) when the start-up chain fetch is over (with deferWarmUp: once start() ran it); the server need not wait for it. */
  ready: Promise<void>
  /** Begins the start-up chain fetch unless it has begun (see deferWarmUp); resolves as `ready` does. */
  start: () => Promise<void>
}

const MAA_USER_AGENT = 'ConfidentialSkrContainer'

/** Builds the attestation service from config; throws only for configuration errors, never for a missing device. */
export async function buildAttestation (config: Config, options: BuildAttestationOptions = {}): Promise<BuiltAttestation> {
  const rootLog = options.log ?? pino({ level: 'silent' })
  const log = rootLog.child({ component: 'attest' })
  const startupProblems: string[] = []
  // A configuration error (an unreadable or bad extra CA) first, before anything is created or opened.
  const trust = options.trust ?? await createTrust(config, {
    ...(options.extraCa === undefined ? {} : { extraCa: options.extraCa }),
    ...(options.metrics === undefined ? {} : { observeUpstream: options.metrics.observeUpstream.bind(options.metrics) })
  })

  // The reference carries on when the UVM_* information is unreadable; so do we, but say so.
  let securityContext = emptySecurityContext()
  try {
    securityContext = await loadSecurityContext({ env: securityContextEnv(config), ...(options.root === undefined ? {} : { root: options.root }) })
  } catch (err) {
    if (!isSidecarError(err)) throw err
    startupProblems.push(`security context unusable: ${err.message}`)
    log.error({ err: err.message }, 'the UVM security context cannot be used; continuing without it')
  }
  log.info({ dir: securityContext.dir, ...securityContext.sources }, 'UVM security context loaded')

  let simulatedChain: EmulatedAmdChain | null = null
  if (config.attestation === 'simulated') {
    simulatedChain = await loadOrCreateEmulatedChain({
      ...(config.simulated.cacheDir === null ? {} : { cacheDir: config.simulated.cacheDir }),
      ...(config.simulated.vcekKeyPem === null ? {} : { vcekKeyPem: config.simulated.vcekKeyPem }),
      ...(config.simulated.certChainPem === null ? {} : { certChainPem: config.simulated.certChainPem }),
      ...(options.progress === undefined ? {} : { progress: options.progress })
    })
    log.warn({ arkFingerprint: simulatedChain.arkFingerprint },
      'attestation is SIMULATED: reports are signed by an emulated AMD chain that skr trusts; there is no hardware root of trust and keys released this way are not protected')
  }

  const chain = simulatedChain
  let provider: QuoteProvider | null = null
  let providerError: SidecarError | undefined
  try {
    const selected = await selectQuoteProvider({
      mode: config.attestation,
      tsmRoot: config.tsmRoot,
      factories: chain === null
        ? {}
        : { simulated: async () => createSimulatedProvider({ chain, ...(securityContext.securityPolicy === null ? {} : { securityPolicy: securityContext.securityPolicy }) }) }
    })
    provider = selected.provider
    log.info({ backend: provider.backend, tried: selected.tried.join('; ') }, 'attestation backend selected')
  } catch (err) {
    if (!isSidecarError(err)) throw err
    providerError = err
    log.error({ code: err.code, err: err.message }, 'no attestation backend: attestation requests will fail until skr runs where one is available')
  }

  const metrics = options.metrics === undefined ? {} : { metrics: options.metrics }
  // The upstreams come from the trust (app/trust.ts): its CA roots, and the proxy settings loadConfig
  // parsed from the environment skr was started with, not process.env. MAA is called on behalf of a request: its whole call (retries included) ends by the request's
  // deadline, so an attestation a caller gave up on cannot keep a socket to a hung MAA past it
  // (the attestation cache lets shared fills outlive the request that started them).
  const maaPolicy = { totalTimeoutMs: Math.max(1, Math.floor(Math.min(DEFAULT_UPSTREAM_POLICY.totalTimeoutMs, config.requestTimeoutMs))) }
  const upstreams = { thim: trust.upstream('thim'), kds: trust.upstream('kds'), azcache: trust.upstream('azcache'), maa: trust.upstream('maa', maaPolicy) }

  // In simulated mode the host's chain (if any) is for a real chip and can never endorse the
  // emulated reports; skip it rather than fail the first verification.
  const initial = chain === null ? securityContext.hostAmdCert : null
  const store = createCollateralStore({
    initial,
    fetch: collateralFetcher({ certcache: config.azure.certcache, upstreams, simulatedChain: chain, log: rootLog }),
    forceMismatch: config.allowTestingMismatchedTcb,
    log: rootLog,
    ...metrics
  })

  const trustedArkFingerprints = [
    ...Object.values(AMD_ARK_FINGERPRINTS),
    ...config.trustedArkFingerprints,
    ...(chain === null ? [] : [chain.arkFingerprint])
  ]
  const maa = createMaaClient({
    upstream: upstreams.maa,
    apiVersion: config.maa.apiVersion,
    userAgent: config.azure.maaconfig.userAgent ?? MAA_USER_AGENT,
    verifyToken: config.maa.verifyToken,
    ...metrics
  })

  const service = createAttestationService({
    provider,
    ...(providerError === undefined ? {} : { providerError }),
    collateral: store,
    securityContext,
    maa,
    verifyReports: true,
    trustedArkFingerprints,
    startupProblems,
    log: rootLog
  })
  // Never awaited by the server: a slow or absent IMDS must not hold it up; requests share this fetch.
  const needsWarmUp = initial === null && provider !== null
  let started: Promise<void> | null = null
  let settle = (): void => {}
  const ready = new Promise<void>(resolve => { settle = resolve })
  const start = async (): Promise<void> => {
    started ??= (needsWarmUp ? service.warmUp() : Promise.resolve()).then(settle)
    await ready
  }
  if (options.deferWarmUp !== true) void start()
  return { service, provider, securityContext, simulatedChain, upstreams, ready, start }
}
