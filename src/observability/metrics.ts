// The metrics seam for domain code. Domain modules (upstream clients, caches, the key pool, the
// attestation and release services) are handed a `Metrics` and call it; they never import
// prom-client. The Prometheus implementation lives in ./registry.ts and is created once per
// process by the composition root; tests and callers that do not care get `noopMetrics`.
//
// Label values are closed vocabularies on purpose: a key name, vault host or MAA endpoint as a
// label would leak deployment details to whoever scrapes /metrics and make cardinality
// unbounded. The implementation enforces this again (see sanitiseLabel in ./registry.ts).
import { isSidecarError, type ErrorCode } from '../errors.ts'

/** The upstreams skr calls (the same names as src/http/upstream.ts's UpstreamName). */
export type UpstreamService = 'maa' | 'akv' | 'imds' | 'thim' | 'kds' | 'azcache' | 'entra'

/** An upstream call's outcome: the final HTTP status ('200', '403', ...), or 'error' / 'timeout' when there was none. */
export type UpstreamStatus = string

/**
 * Caches skr keeps; free-form for new caches, but always a fixed identifier, never data.
 * Recorded by: 'aad_token' identity/token-source.ts, 'attestation' skr/attestation-cache.ts,
 * 'signer_chain' akv/signer-chain-cache.ts, 'vcek_chain' collateral/store.ts, 'maa_keys'
 * maa/jwks-cache.ts. All follow one rule: a lookup served a fresh value is a hit; one that fetched,
 * refreshed, found its entry expired, or joined a fetch already under way is a miss; a
 * programming error (TypeError) records nothing. docs/troubleshooting.md lists the series for
 * operators: keep it in step.
 */
export type CacheName = 'aad_token' | 'vcek_chain' | 'maa_keys' | 'attestation' | 'signer_chain' | (string & {})

/** How one key release ended. */
export type ReleaseOutcome = 'released' | 'denied' | 'error'

/** What domain code records. Every method is cheap, synchronous and never throws. */
export interface Metrics {
  /** One finished upstream call (after retries): which service, final status, wall time in seconds. */
  observeUpstream (service: UpstreamService, status: UpstreamStatus, seconds: number): void
  /** One cache lookup: served from the cache (hit) or had to fetch (miss). */
  cacheResult (cache: CacheName, hit: boolean): void
  /** The current number of ready items in a pool (e.g. pre-generated wrapping keys). */
  setPoolDepth (pool: string, depth: number): void
  /** The attestation backend in use ('tsm', 'sev-guest', 'sev', 'simulated'); called at start-up. */
  setAttestationBackend (backend: string, simulated: boolean): void
  /** One key release finished with this outcome. */
  releaseResult (outcome: ReleaseOutcome): void
}

/** A Metrics that records nothing: the default for domain modules and tests. */
export const noopMetrics: Metrics = Object.freeze({
  observeUpstream () {},
  cacheResult () {},
  setPoolDepth () {},
  setAttestationBackend () {},
  releaseResult () {}
})

// Codes that mean "the vault (or its policy), or skr's egress allow-list, said no" rather than "something broke".
const DENIED_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['ERR_KEY_RELEASE_DENIED', 'ERR_ACCESS_DENIED', 'ERR_KEY_NOT_FOUND', 'ERR_ENDPOINT_NOT_ALLOWED'])

/** Classifies a failed release: a refusal (by the vault, or of a host SKR_ALLOWED_HOSTS does not allow) is 'denied', anything else 'error'. */
export function releaseOutcomeOf (err: unknown): Exclude<ReleaseOutcome, 'released'> {
  return isSidecarError(err) && DENIED_CODES.has(err.code) ? 'denied' : 'error'
}

/** The status label for an upstream call that threw: 'timeout' for deadline errors, else 'error'. */
export function upstreamFailureStatus (err: unknown): 'timeout' | 'error' {
  return isSidecarError(err) && err.code === 'ERR_UPSTREAM_TIMEOUT' ? 'timeout' : 'error'
}
