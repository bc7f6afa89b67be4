// How the AKV emulator finds an attestation issuer's token signing keys: as Key Vault does, from
// the authority's OpenID metadata, cached for a few minutes.
import type { KeyObject } from 'node:crypto'
import type { Upstream } from '../http/upstream.ts'
import { parseJwks } from '../maa/jwks-cache.ts'
import { isObject } from '../text/untrusted.ts'

const ISSUER_KEYS_TTL_MS = 5 * 60 * 1000

/** Resolves an attestation issuer's signing keys the way Key Vault does: {authority}/.well-known/openid-configuration → jwks_uri. */
export function createIssuerKeys (upstream: Upstream, now: () => Date): (authority: string, kid: string) => Promise<KeyObject | null> {
  const cache = new Map<string, { keys: Map<string, KeyObject>, at: number }>()
  const getJson = async (url: string): Promise<Buffer | null> => {
    const res = await upstream.request({ method: 'GET', url, headers: { accept: 'application/json' }, retry: false })
    return res.status === 200 ? res.body : null
  }
  const fetchKeys = async (authority: string): Promise<Map<string, KeyObject> | null> => {
    const meta = await getJson(`${authority.replace(/\/+$/, '')}/.well-known/openid-configuration`)
    const doc: unknown = meta === null ? null : JSON.parse(meta.toString('utf8'))
    const jwksUri = isObject(doc) ? doc['jwks_uri'] : undefined
    if (typeof jwksUri !== 'string' || !jwksUri.startsWith('https://')) return null
    const jwks = await getJson(jwksUri)
    return jwks === null ? null : parseJwks(jwks)
  }
  return async (authority, kid) => {
    const hit = cache.get(authority)
    const fresh = hit !== undefined && now().getTime() - hit.at < ISSUER_KEYS_TTL_MS
    if (fresh && hit.keys.has(kid)) return hit.keys.get(kid) ?? null
    try {
      const keys = await fetchKeys(authority)
      if (keys === null) return null
      if (cache.size >= 64) cache.clear()
      cache.set(authority, { keys, at: now().getTime() })
      return keys.get(kid) ?? null
    } catch {
      return null // unreachable, not JSON, not a JWKS: the statement cannot be verified
    }
  }
}
