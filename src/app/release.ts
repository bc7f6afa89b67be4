// The composition root for key release, used by the serve command and the demo: the identity
// (workload identity on AKS, else managed identity), the AKV upstream and release client, the
// trusted roots for release signers, and the orchestrator, wired from the frozen Config. It also
// turns on the performance features (docs/security.md explains why they are safe): a wrapping-key
// pool, attestation reuse per MAA endpoint, coalescing of identical releases, a verified signer
// chain cache, and batch release.
import { pino } from 'pino'
import type { Config } from '../config/config.ts'
import { ConfigInvalid } from '../errors.ts'
import { createReleaseClient } from '../akv/release-client.ts'
import { createSignerChainCache } from '../akv/signer-chain-cache.ts'
import { DEFAULT_UPSTREAM_POLICY, type UpstreamName } from '../http/upstream.ts'
import { createIdentityTokenSource } from '../identity/token-source.ts'
import type { IdentityConfig, TokenSource } from '../identity/token-source.ts'
import type { Logger } from '../log.ts'
import type { AttestationService, KeyReleaseService } from '../service/types.ts'
import { createAttestationCache, DEFAULT_ATTESTATION_TTL_MS } from '../release/attestation-cache.ts'
import { createKeyPool, DEFAULT_KEY_POOL_SIZE } from '../release/key-pool.ts'
import { createKeyReleaseService } from '../release/key-release.ts'
import type { KeyReleaseHandle } from '../release/key-release.ts'
import { DEFAULT_MAX_BATCH } from '../release/batch.ts'
import { createTrust, type Trust } from './trust.ts'

/** Test hooks and extras for buildKeyRelease. */
export interface BuildKeyReleaseOptions {
  log?: Logger
  /** The process's trust and upstream factory (app/trust.ts); default: one built here from config, `extraCa` and `metrics`. */
  trust?: Trust
  /** Extra PEM roots (besides config.extraCaFile) for AKV and Entra TLS and for release signer chains; only without `trust`. */
  extraCa?: string[]
  /** Replaces the identity built from config (tests). */
  tokens?: TokenSource
  /** Seconds one wrapping key + MAA token serve releases per MAA endpoint (default config.performance.attestationTtlSeconds, else 300; 0: a new attestation per release, as the reference). */
  attestationTtlSeconds?: number
  /** Pre-generated wrapping keys (default config.performance.keyPoolSize, else 4; 0: generated when needed). */
  keyPoolSize?: number
  /** Most kids in one batch release (an embedding option, default and at most MAX_BATCH_KIDS of the route schema). */
  maxBatch?: number
  /**
   * Cache hit/miss (AAD tokens, attestation reuse, signer chains), pool depth and AKV upstream
   * recording (observability/metrics.ts's Metrics fits); default none.
   */
  metrics?: {
    cacheResult: (cache: string, hit: boolean) => void
    setPoolDepth: (pool: string, depth: number) => void
    observeUpstream?: (service: UpstreamName, status: string, seconds: number) => void
  }
  /**
   * Leave filling the wrapping-key pool to start() (default false: it fills at once). The sidecar
   * sets it and calls start() once it is listening, so RSA key generation does not compete with
   * start-up; a release before start() generates its own key and starts the pool.
   */
  deferWarmUp?: boolean
}

/** The service plus the resources it owns. */
export type BuiltKeyRelease = KeyReleaseService & Pick<KeyReleaseHandle, 'releaseMany'> & {
  /** Which identity provides AAD tokens ('managed identity', 'workload identity'), for /readyz. */
  identityKind: string
  /** Starts filling the wrapping-key pool when deferWarmUp left it empty; idempotent. */
  start: () => void
  close: () => Promise<void>
}

/** The default of BuildKeyReleaseOptions.attestationTtlSeconds. */
export const DEFAULT_ATTESTATION_TTL_SECONDS = DEFAULT_ATTESTATION_TTL_MS / 1000

function setting (value: number | undefined, fallback: number, name: string, min = 0): number {
  const n = value ?? fallback
  if (!Number.isInteger(n) || n < min) throw new ConfigInvalid(`${name} must be a whole number >= ${min}`, { details: { key: name } })
  return n
}

/** The identity settings of a configuration: workload identity needs all three AZURE_* values, as in the reference (pkg/msi). */
export function identityConfigOf (config: Config, extraCa: readonly string[] = []): IdentityConfig {
  const { azureClientId, azureTenantId, azureFederatedTokenFile, azureAuthorityHost } = config.env
  const workload = azureClientId !== null && azureTenantId !== null && azureFederatedTokenFile !== null
    ? { clientId: azureClientId, tenantId: azureTenantId, tokenFile: azureFederatedTokenFile }
    : null
  return {
    managedIdentityClientId: config.azure.identity.clientId ?? azureClientId,
    workload,
    authorityHost: azureAuthorityHost,
    extraCa
  }
}

/** Which workload-identity variables are set and which missing, when some but not all are; else null. */
export function partialWorkloadIdentity (config: Config): { set: string[], missing: string[] } | null {
  const vars: Array<[string, string | null]> = [
    ['AZURE_CLIENT_ID', config.env.azureClientId],
    ['AZURE_TENANT_ID', config.env.azureTenantId],
    ['AZURE_FEDERATED_TOKEN_FILE', config.env.azureFederatedTokenFile]
  ]
  const set = vars.filter(([, v]) => v !== null).map(([k]) => k)
  // AZURE_CLIENT_ID alone is the documented way to pick a managed identity: not a partial setup.
  if (set.length === 0 || set.length === 3 || (set.length === 1 && set[0] === 'AZURE_CLIENT_ID')) return null
  return { set, missing: vars.filter(([, v]) => v === null).map(([k]) => k) }
}

/** Builds the key release service from config; throws ConfigInvalid for bad identity or CA settings. */
export async function buildKeyRelease (
  config: Config,
  attestation: AttestationService,
  options: BuildKeyReleaseOptions = {}
): Promise<BuiltKeyRelease> {
  const log = (options.log ?? pino({ level: 'silent' })).child({ component: 'skr' })
  const observeUpstream = options.metrics?.observeUpstream?.bind(options.metrics)
  // An unreadable or bad extra CA stops start-up here. Node's and the OS's roots (~150
  // certificates: tens of ms and ~5 MB) are parsed on the first release that needs them, once.
  const ownTrust = options.trust === undefined
  const trust = options.trust ?? await createTrust(config, {
    ...(options.extraCa === undefined ? {} : { extraCa: options.extraCa }),
    ...(observeUpstream === undefined ? {} : { observeUpstream })
  })
  const partial = partialWorkloadIdentity(config)
  if (partial !== null && options.tokens === undefined) {
    // A half-configured workload identity is nearly always a manifest mistake (an empty env var or a
    // missing service-account label); say so loudly instead of silently using the managed identity.
    log.warn({ set: partial.set, missing: partial.missing }, 'workload identity is only partly configured; using the managed identity instead')
  }
  // Every cache this build owns records hits and misses into the same Metrics (the AAD token
  // cache included); an injected token source (tests) brings its own.
  const metrics = options.metrics === undefined ? {} : { metrics: options.metrics }
  // Token requests follow the same proxy settings as every other upstream (IMDS always goes direct).
  // IMDS and Entra calls are made with the trust's clients too (identity/sdk-http-client.ts).
  const tokens = options.tokens ?? createIdentityTokenSource({ ...identityConfigOf(config, trust.extraCa), proxy: config.proxy, upstream: trust.upstream }, { log, ...metrics })
  // Each release call ends by the request's deadline, retries included (as MAA's: app/attestation.ts).
  const policy = { totalTimeoutMs: Math.max(1, Math.floor(Math.min(DEFAULT_UPSTREAM_POLICY.totalTimeoutMs, config.requestTimeoutMs))) }
  const upstream = trust.upstream('akv', policy)
  const release = createReleaseClient({ upstream, apiVersion: config.akv.apiVersion, enc: config.akv.enc, log })

  // An explicit option wins over the configuration (tests, embedders); both default as documented.
  const performance = config.performance as Partial<Config['performance']> | undefined
  const ttlSeconds = setting(options.attestationTtlSeconds ?? performance?.attestationTtlSeconds, DEFAULT_ATTESTATION_TTL_SECONDS, 'SKR_ATTESTATION_TTL_SECONDS')
  const poolSize = setting(options.keyPoolSize ?? performance?.keyPoolSize, DEFAULT_KEY_POOL_SIZE, 'SKR_KEY_POOL_SIZE')
  const maxBatch = setting(options.maxBatch, DEFAULT_MAX_BATCH, 'maxBatch', 1)
  const pool = createKeyPool({ size: poolSize, log, deferFill: options.deferWarmUp === true, ...metrics })
  const attestationCache = createAttestationCache({ attestation, wrappingKey: pool.take, ttlMs: ttlSeconds * 1000, log, ...metrics })
  const service = createKeyReleaseService({
    attestation,
    tokens,
    release,
    trustedRoots: trust.trustedRoots,
    enc: config.akv.enc,
    log,
    attestationCache,
    coalesce: true,
    signerCache: createSignerChainCache(metrics),
    maxBatch
  })
  log.info({
    identity: tokens.kind,
    akvApiVersion: config.akv.apiVersion,
    enc: config.akv.enc ?? 'default',
    attestationTtlSeconds: ttlSeconds,
    keyPoolSize: poolSize
  }, 'key release ready')
  return {
    release: service.release,
    releaseMany: service.releaseMany,
    identityKind: tokens.kind,
    start: pool.start,
    close: async () => {
      service.close()
      attestationCache.close()
      pool.close()
      // The AKV client is the trust's: closed with it, by whoever owns the trust.
      if (ownTrust) await trust.close()
    }
  }
}
