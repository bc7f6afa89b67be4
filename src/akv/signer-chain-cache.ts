// Remembers release-JWS signer chains that already verified, so the next release signed by the
// same vault certificate skips parsing x5c, building the path to a trusted root (a signature
// check per link) and the validity/CA/EKU checks. Only the chain is remembered: the signature
// over each JWS, the host name and the request binding are still checked on every release
// (release-jws.ts), so a tampered JWS under a known x5c is still refused.
//
// Keyed by the SHA-256 of the x5c DER list (length-prefixed, so no two lists collide by
// concatenation). An entry expires at the earliest notAfter on its path and at most `maxAgeMs`
// after it was verified; the cache is bounded (least recently used dropped first) and emptied
// whenever the set of trusted roots changes (a reload must not keep a chain to a removed root).
import { createHash } from 'node:crypto'
import type { X509Certificate } from 'node:crypto'
import type { RootStore } from './root-store.ts'

/** The part of the metrics seam (observability/metrics.ts) the cache uses. */
export interface ChainCacheMetrics {
  cacheResult: (cache: string, hit: boolean) => void
}

/** Cache settings; every member is optional. */
export interface SignerChainCacheOptions {
  /** Chains kept (default 64). */
  maxEntries?: number
  /** Longest an entry is trusted without re-verification, in ms (default 1 h). */
  maxAgeMs?: number
  metrics?: ChainCacheMetrics
}

/** Verified signer chains by x5c content. */
export interface SignerChainCache {
  /**
   * The signer (x5c[0]) of a chain that verified under `roots` and is valid at `now`: from the
   * cache, or from `verify` (which parses, builds and checks the path, leaf first, and throws on
   * failure; failures are not cached).
   */
  signerFor: (x5cDer: readonly Buffer[], roots: RootStore, now: Date, verify: () => readonly X509Certificate[]) => X509Certificate
  size: () => number
  clear: () => void
}

interface Entry {
  signer: X509Certificate
  /** Latest notBefore on the path (ms): a clock set back before it must re-verify. */
  validFrom: number
  /** min(earliest notAfter on the path, verified + maxAge) (ms). */
  expiresAt: number
}

/** The cache key of an x5c list: SHA-256 over each certificate's length and DER. */
export function x5cFingerprint (x5cDer: readonly Buffer[]): string {
  const h = createHash('sha256')
  const length = Buffer.alloc(4)
  for (const der of x5cDer) {
    length.writeUInt32BE(der.length)
    h.update(length).update(der)
  }
  return h.digest('hex')
}

/** Creates an empty cache. */
export function createSignerChainCache (options: SignerChainCacheOptions = {}): SignerChainCache {
  const maxEntries = options.maxEntries ?? 64
  const maxAgeMs = options.maxAgeMs ?? 60 * 60 * 1000
  if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new TypeError('createSignerChainCache: maxEntries must be an integer >= 1')
  if (!Number.isFinite(maxAgeMs) || maxAgeMs < 0) throw new TypeError('createSignerChainCache: maxAgeMs must be a number >= 0')
  const entries = new Map<string, Entry>()
  let rootsSeen: RootStore | null = null

  return {
    signerFor (x5cDer, roots, now, verify) {
      // The roots are compared by identity: the composition root hands the same store to every
      // release (release-jws.ts gives the same array the same store), so a different one means a
      // different (reloaded) trust store.
      if (roots !== rootsSeen) {
        entries.clear()
        rootsSeen = roots
      }
      const key = x5cFingerprint(x5cDer)
      const t = now.getTime()
      const hit = entries.get(key)
      if (hit !== undefined && t >= hit.validFrom && t < hit.expiresAt) {
        // Re-inserting keeps the Map in least-recently-used order.
        entries.delete(key)
        entries.set(key, hit)
        options.metrics?.cacheResult('signer_chain', true)
        return hit.signer
      }
      if (hit !== undefined) entries.delete(key)
      options.metrics?.cacheResult('signer_chain', false)
      const path = verify()
      const signer = path[0]
      if (signer === undefined) throw new TypeError('signerFor: verify returned an empty path')
      const validFrom = Math.max(...path.map((c) => c.validFromDate.getTime()))
      const expiresAt = Math.min(t + maxAgeMs, ...path.map((c) => c.validToDate.getTime()))
      if (expiresAt > t) {
        entries.set(key, { signer, validFrom, expiresAt })
        for (const old of entries.keys()) {
          if (entries.size <= maxEntries) break
          entries.delete(old)
        }
      }
      return signer
    },
    size: () => entries.size,
    clear: () => { entries.clear() }
  }
}
