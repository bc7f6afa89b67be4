// MAA's token signing keys, from `GET {issuer}/certs` (docs/protocols.md#maa-signing-keys). MAA's JWKS
// entries carry kid, kty and an x5c chain but no n/e, so the key is the public key of the first
// x5c certificate. MAA rotates keys rarely; a token naming an unknown kid triggers one refetch, at
// most every 30 s per issuer, so a flood of forged kids cannot turn into a flood of fetches.
// Each lookup counts in the `maa_keys` cache metric: a key held and under an hour old is a hit;
// anything else is a miss (a fetch, a caller joining a fetch under way, an expired key, or an
// unknown kid inside the 30 s quiet period). Argument errors (TypeError) record nothing.
import { createPublicKey, X509Certificate } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { MaaTokenInvalid, UpstreamRejected, UpstreamResponseInvalid } from '../errors.ts'
import { isObject } from '../text/untrusted.ts'
import type { Upstream } from '../http/upstream.ts'
import { raceSignal } from '../util/single-flight.ts'

/** Resolves an issuer's signing key by kid. */
export interface JwksCache {
  keyFor: (issuer: string, kid: string, signal?: AbortSignal) => Promise<KeyObject>
}

/** The part of the metrics seam (observability/metrics.ts) the cache uses. */
export interface JwksCacheMetrics {
  cacheResult: (cache: string, hit: boolean) => void
}

/** Where keys come from, the clock that ages them, and where lookups are recorded. */
export interface JwksCacheOptions {
  upstream: Pick<Upstream, 'request'>
  now?: () => Date
  /** Records each lookup under the cache name 'maa_keys'; default none. */
  metrics?: JwksCacheMetrics
}

const KEY_TTL_MS = 60 * 60 * 1000
const REFETCH_MIN_MS = 30 * 1000
const MAX_ISSUERS = 64
const MAX_KEYS = 64

interface IssuerEntry {
  keys: Map<string, { key: KeyObject, at: number }>
  fetchedAt: number
  inflight: Promise<void> | null
}

// One malformed entry must not hide the good ones: it is skipped, not fatal.
function keyOf (jwk: Record<string, unknown>): KeyObject | null {
  try {
    const x5c = jwk.x5c
    if (Array.isArray(x5c) && typeof x5c[0] === 'string') {
      return new X509Certificate(Buffer.from(x5c[0], 'base64')).publicKey
    }
    if (jwk.kty === 'RSA' && typeof jwk.n === 'string' && typeof jwk.e === 'string') {
      return createPublicKey({ key: { kty: 'RSA', n: jwk.n, e: jwk.e }, format: 'jwk' })
    }
  } catch {
    // fall through: unusable entry
  }
  return null
}

/** Parses a JWKS body into kid → key; throws UpstreamResponseInvalid when it is not a JWKS. */
export function parseJwks (body: Buffer): Map<string, KeyObject> {
  let json: unknown
  try {
    json = JSON.parse(body.toString('utf8'))
  } catch (err) {
    throw new UpstreamResponseInvalid('maa /certs: body is not JSON', { cause: err, details: { upstream: 'maa' } })
  }
  if (!isObject(json) || !Array.isArray(json.keys)) {
    throw new UpstreamResponseInvalid('maa /certs: body is not a JWKS (no "keys" array)', { details: { upstream: 'maa' } })
  }
  const out = new Map<string, KeyObject>()
  for (const jwk of json.keys.slice(0, MAX_KEYS)) {
    if (!isObject(jwk) || typeof jwk.kid !== 'string' || jwk.kid === '') continue
    const key = keyOf(jwk)
    if (key !== null) out.set(jwk.kid, key)
  }
  return out
}

function certsUrl (issuer: string): string {
  return `${issuer.replace(/\/+$/, '')}/certs`
}

/** A per-issuer, per-kid cache of MAA signing keys (1 h), refetching on unknown kids at most every 30 s. */
export function createJwksCache (options: JwksCacheOptions): JwksCache {
  const { upstream } = options
  const now = options.now ?? (() => new Date())
  const issuers = new Map<string, IssuerEntry>()

  // The shared fetch carries no caller's signal: one caller giving up must not fail the others
  // waiting on it (the Upstream's own deadline bounds it). Each waiter races its own signal.
  const fetchInto = async (issuer: string, entry: IssuerEntry): Promise<void> => {
    const res = await upstream.request({ method: 'GET', url: certsUrl(issuer), headers: { accept: 'application/json' } })
    if (res.status !== 200) {
      throw new UpstreamRejected(`maa /certs answered HTTP ${res.status}, want 200`, { details: { upstream: 'maa', upstreamStatus: res.status } })
    }
    const keys = parseJwks(res.body)
    const at = now().getTime()
    // Only a successful fetch starts the 30 s quiet period: an outage must not look like "unknown kid".
    entry.fetchedAt = at
    for (const [kid, key] of keys) entry.keys.set(kid, { key, at })
  }

  const entryFor = (issuer: string): IssuerEntry => {
    let entry = issuers.get(issuer)
    if (entry === undefined) {
      // Issuers come from request bodies (maa_endpoint): bound the map, dropping the oldest.
      if (issuers.size >= MAX_ISSUERS) issuers.delete(issuers.keys().next().value as string)
      entry = { keys: new Map(), fetchedAt: Number.NEGATIVE_INFINITY, inflight: null }
      issuers.set(issuer, entry)
    }
    return entry
  }

  const fresh = (entry: IssuerEntry, kid: string): KeyObject | null => {
    const hit = entry.keys.get(kid)
    if (hit === undefined) return null
    if (now().getTime() - hit.at > KEY_TTL_MS) {
      entry.keys.delete(kid)
      return null
    }
    return hit.key
  }

  return {
    async keyFor (issuer: string, kid: string, signal?: AbortSignal): Promise<KeyObject> {
      if (typeof issuer !== 'string' || !issuer.startsWith('https://')) throw new TypeError('issuer must be an https:// URL')
      if (typeof kid !== 'string') throw new TypeError('kid must be a string')
      const entry = entryFor(issuer)
      const cached = fresh(entry, kid)
      options.metrics?.cacheResult('maa_keys', cached !== null)
      if (cached !== null) return cached
      if (entry.inflight === null && now().getTime() - entry.fetchedAt >= REFETCH_MIN_MS) {
        const work = fetchInto(issuer, entry).finally(() => { entry.inflight = null })
        // Waiters that gave up (aborted) leave nobody to observe a failure: never let it go unhandled.
        work.catch(() => {})
        entry.inflight = work
      }
      if (entry.inflight !== null) await raceSignal(entry.inflight, signal)
      const key = fresh(entry, kid)
      if (key === null) {
        throw new MaaTokenInvalid('MAA token signing key (kid) is not among the issuer\'s /certs keys', { details: { check: 'kid' } })
      }
      return key
    }
  }
}
