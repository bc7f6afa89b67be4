// The VCEK certificate collateral every source (THIM, AMD KDS, Azure cert cache, the UVM
// security context) yields, in one shape so the verifier does not care where it came from.

/** A VCEK, its ASK‖ARK chain and the TCB it was issued for. */
export interface VcekCollateral {
  /** The VCEK as one PEM CERTIFICATE block. */
  vcekPem: string
  /** The issuing chain as PEM blocks, ASK first, then ARK. */
  chainPem: string
  /** The TCB_VERSION u64 the VCEK was issued for (THIM `tcbm`, or the REPORTED_TCB asked for). */
  tcbm: bigint
  /** How long the source says the collateral may be cached, in seconds; null when it did not say. */
  cacheControlSeconds: number | null
  /** Where it came from, for logs and cache decisions. */
  source: 'thim' | 'kds' | 'azcache' | 'security-context'
}

const MAX_AGE = /(?:^|[,\s])max-age\s*=\s*"?(\d{1,10})"?/i

/** The max-age of a Cache-Control header in seconds; null when absent or unparseable. */
export function cacheControlMaxAge (header: string | string[] | undefined): number | null {
  const value = Array.isArray(header) ? header.join(',') : header
  if (value === undefined) return null
  const m = MAX_AGE.exec(value)
  return m === null ? null : Number(m[1])
}
