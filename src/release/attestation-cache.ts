// Attestation reuse: per MAA endpoint, one wrapping key and the MAA token that binds its public
// half serve every release for a bounded time, instead of a new key, report and MAA round trip
// per release as the reference does. Why this is safe inside the TEE is argued in
// docs/security.md ("Attestation reuse"); in short, the private key never leaves this process's
// (encrypted) memory, the token only says "this TEE holds this key", and every release is still
// judged by the vault's policy.
//
// - An entry lives until min(obtained + ttl, token exp − margin): never past the token's own life.
// - Refresh-ahead: the first use after `refreshAhead` of an entry's life starts ONE background
//   attestation that replaces it, so steady traffic never waits on MAA. It is triggered by use,
//   not by a timer: an idle sidecar does no background attestations. If that refresh fails, the
//   entry serves until it expires and the next miss attests in the foreground (and can fail).
// - Misses are single-flight: concurrent releases for one endpoint share one attestation; a
//   failure reaches every waiter and nothing is cached.
// - ttl 0 disables reuse: every acquire makes a new key, report and token with the caller's own
//   signal, exactly the reference's behaviour.
// Keys, tokens and JWKS stay in this module's memory only: never logged, never persisted.
import { decodeJwt } from 'jose'
import type { Logger } from '../log.ts'
import type { AttestationService } from '../service/types.ts'
import { createSingleFlight } from '../util/single-flight.ts'
import { runStep } from './steps.ts'
import type { WrappingKey } from './wrapping-key.ts'

/** The part of the metrics seam (observability/metrics.ts) the cache uses. */
export interface CacheMetrics {
  cacheResult: (cache: string, hit: boolean) => void
}

/** One attestation: a wrapping key and the MAA token whose runtime data is its JWKS. */
export interface AttestationEntry {
  /** Normalised host[:port] the token is from. */
  readonly maaEndpoint: string
  readonly wrapping: WrappingKey
  readonly token: string
  /** When it was obtained (ms since the epoch). */
  readonly obtainedAt: number
  /** Last moment (ms) it may be handed out; equal to obtainedAt when it may not be reused at all. */
  readonly expiresAt: number
  /**
   * Releases ("akv|kid") the vault already refused under this entry's token, so a later refusal
   * under it is taken as the policy's answer, not as a stale token (see key-release.ts). Bounded.
   */
  readonly refused: Set<string>
}

/** What acquire() hands out. */
export interface AttestationLease {
  readonly entry: AttestationEntry
  /** False when the entry was attested for this call (or joined an attestation in flight). */
  readonly reused: boolean
}

/** The cache's dependencies and settings. */
export interface AttestationCacheOptions {
  attestation: Pick<AttestationService, 'maaToken'>
  /** Where wrapping keys come from (a KeyPool's take, or createWrappingKey). */
  wrappingKey: (signal?: AbortSignal) => Promise<WrappingKey>
  /** How long an entry may be reused, in ms (default 300 000); 0: never (the reference's behaviour). */
  ttlMs?: number
  /** Stop using a token this long before its `exp`, in ms (default 60 000). */
  marginMs?: number
  /** Fraction of an entry's life after which a use triggers a background refresh (default 0.8). */
  refreshAhead?: number
  /** Most MAA endpoints remembered at once (default 16; the least recently attested is dropped). */
  maxEndpoints?: number
  now?: () => Date
  metrics?: CacheMetrics
  log?: Logger
}

/** Attestations to hand out, per MAA endpoint. */
export interface AttestationCache {
  /** Whether entries are reused at all (ttl > 0). */
  readonly reuses: boolean
  /** A current entry, or a new attestation (shared with concurrent callers). Errors carry their step. */
  acquire: (maaEndpoint: string, signal?: AbortSignal) => Promise<AttestationLease>
  /** Forgets `entry` if it is still the current one for its endpoint (a later acquire re-attests). */
  invalidate: (entry: AttestationEntry) => void
  /** Entries held now. */
  size: () => number
  /** Drops every entry and aborts attestations in flight. */
  close: () => void
}

/** Defaults: reuse for 5 minutes, never within a minute of the token's expiry. */
export const DEFAULT_ATTESTATION_TTL_MS = 300_000
export const DEFAULT_ATTESTATION_MARGIN_MS = 60_000
const MAX_REFUSED = 64

interface Slot {
  entry: AttestationEntry
  refreshAt: number
  refreshing: boolean
}

/** The token's `exp` in ms, or null when it has none (then it is never reused). */
function expiryOf (token: string): number | null {
  try {
    const { exp } = decodeJwt(token)
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : null
  } catch {
    return null
  }
}

function nonNegative (value: number | undefined, fallback: number, name: string): number {
  const n = value ?? fallback
  if (!Number.isFinite(n) || n < 0) throw new TypeError(`createAttestationCache: ${name} must be a number >= 0`)
  return n
}

/** Creates the cache; with ttlMs 0 it only attests, one new key and token per call. */
export function createAttestationCache (options: AttestationCacheOptions): AttestationCache {
  const { attestation, wrappingKey } = options
  const ttlMs = nonNegative(options.ttlMs, DEFAULT_ATTESTATION_TTL_MS, 'ttlMs')
  const marginMs = nonNegative(options.marginMs, DEFAULT_ATTESTATION_MARGIN_MS, 'marginMs')
  const refreshAhead = nonNegative(options.refreshAhead, 0.8, 'refreshAhead')
  const maxEndpoints = Math.max(1, Math.floor(nonNegative(options.maxEndpoints, 16, 'maxEndpoints')))
  const now = options.now ?? (() => new Date())
  const slots = new Map<string, Slot>()
  // A cache fill: it must survive its only waiter giving up (deadline, disconnect), or the wrapping
  // key it took and the attestation it started are wasted and the next request starts over.
  const flights = createSingleFlight<AttestationEntry>({ abortAbandoned: false })
  let closed = false

  async function attest (maaEndpoint: string, signal: AbortSignal | undefined): Promise<AttestationEntry> {
    const wrapping = await runStep('wrapping key', signal, async () => await wrappingKey(signal))
    const token = await runStep('attestation', signal, async () => await attestation.maaToken(maaEndpoint, wrapping.jwks, signal))
    const obtainedAt = now().getTime()
    const exp = expiryOf(token)
    const expiresAt = ttlMs === 0 || exp === null ? obtainedAt : Math.max(obtainedAt, Math.min(obtainedAt + ttlMs, exp - marginMs))
    return { maaEndpoint, wrapping, token, obtainedAt, expiresAt, refused: new Set() }
  }

  function store (entry: AttestationEntry): void {
    const life = entry.expiresAt - entry.obtainedAt
    if (life <= 0) {
      options.log?.debug({ maa: entry.maaEndpoint }, 'MAA token has no exp or expires within the margin: used for this release only')
      return
    }
    slots.delete(entry.maaEndpoint)
    slots.set(entry.maaEndpoint, { entry, refreshAt: entry.obtainedAt + life * refreshAhead, refreshing: false })
    // Callers choose the endpoint: bound what they can make us hold.
    for (const key of slots.keys()) {
      if (slots.size <= maxEndpoints) break
      slots.delete(key)
    }
    options.log?.debug({ maa: entry.maaEndpoint, wrappingKid: entry.wrapping.kid, expiresAt: new Date(entry.expiresAt).toISOString() }, 'attestation cached')
  }

  async function fetchShared (maaEndpoint: string, signal: AbortSignal): Promise<AttestationEntry> {
    const entry = await attest(maaEndpoint, signal)
    if (!closed) store(entry)
    return entry
  }

  function refresh (slot: Slot): void {
    slot.refreshing = true
    const { maaEndpoint } = slot.entry
    options.log?.debug({ maa: maaEndpoint }, 'attestation nearing the end of its reuse: refreshing in the background')
    flights.background(maaEndpoint, async (signal) => await fetchShared(maaEndpoint, signal)).catch((err: unknown) => {
      // The current entry stays usable until it expires; the next miss attests in the foreground.
      options.log?.warn({ maa: maaEndpoint, code: (err as { code?: unknown }).code, err: err instanceof Error ? err.message : String(err) },
        'background attestation refresh failed')
    })
  }

  return {
    reuses: ttlMs > 0,

    async acquire (maaEndpoint, signal) {
      if (ttlMs === 0 || closed) {
        // The reference's behaviour: everything is this request's own, under its own signal.
        return { entry: await attest(maaEndpoint, signal), reused: false }
      }
      const slot = slots.get(maaEndpoint)
      const t = now().getTime()
      if (slot !== undefined && t < slot.entry.expiresAt) {
        options.metrics?.cacheResult('attestation', true)
        if (t >= slot.refreshAt && !slot.refreshing) refresh(slot)
        return { entry: slot.entry, reused: true }
      }
      options.metrics?.cacheResult('attestation', false)
      if (slot !== undefined) slots.delete(maaEndpoint)
      const entry = await flights.run(maaEndpoint, async (s) => await fetchShared(maaEndpoint, s), signal)
      return { entry, reused: false }
    },

    invalidate (entry) {
      if (slots.get(entry.maaEndpoint)?.entry === entry) slots.delete(entry.maaEndpoint)
    },

    size: () => slots.size,

    close () {
      closed = true
      slots.clear()
      flights.close(new Error('attestation cache closed'))
    }
  }
}

/** Records that the vault refused `release` under `entry`'s token (bounded; oldest forgotten first). */
export function noteRefusal (entry: AttestationEntry, release: string): void {
  entry.refused.add(release)
  if (entry.refused.size > MAX_REFUSED) {
    const oldest = entry.refused.values().next()
    if (oldest.done !== true) entry.refused.delete(oldest.value)
  }
}
