// The target of a release request (./akv.ts): the attestation token, verified under a key of an
// authority the key's policy names, and the wrapping key its x-ms-runtime carries.
import { createPublicKey, X509Certificate } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose'
import { sameAuthority } from '../akv/release-policy-evaluate.ts'
import { isObject } from '../text/untrusted.ts'

/** An issuer's token signing key by kid (./akv-issuer-keys.ts), or null. */
export type IssuerKeys = (authority: string, kid: string) => Promise<KeyObject | null>

/** Verifies a release target (RS256, exp/nbf at `now`, its issuer one of `authorities`): its issuer and claims, or null. */
export type TargetVerifier = (token: string, authorities: string[]) => Promise<{ issuer: string, claims: Record<string, unknown> } | null>

/** The target verifier over an issuer's keys. */
export function createTargetVerifier (issuerKeys: IssuerKeys, now: () => Date): TargetVerifier {
  return async (token, authorities) => {
    let kid: unknown
    let iss: unknown
    try {
      const header = decodeProtectedHeader(token)
      if (header.alg !== 'RS256') return null
      kid = header.kid
      iss = decodeJwt(token).iss
    } catch {
      return null
    }
    if (typeof kid !== 'string' || typeof iss !== 'string') return null
    // Keys come from the authority the policy names, never from a URL the token chose.
    const authority = authorities.find((a) => sameAuthority(a, iss))
    if (authority === undefined) return null
    const key = await issuerKeys(authority, kid)
    if (key === null) return null
    try {
      const { payload } = await jwtVerify(token, key, { algorithms: ['RS256'], currentDate: now(), requiredClaims: ['exp', 'iss'] })
      return sameAuthority(authority, String(payload.iss)) ? { issuer: String(payload.iss), claims: { ...payload } } : null
    } catch {
      return null
    }
  }
}

/** The first RSA JWK in x-ms-runtime.keys with a kid that may encrypt (docs/protocols.md#wrapping-key-selection). */
export function wrappingKeyOf (claims: Record<string, unknown>): { kid: string, key: KeyObject } | null {
  const runtime = claims['x-ms-runtime']
  const keys = isObject(runtime) ? runtime['keys'] : undefined
  if (!Array.isArray(keys)) return null
  for (const jwk of keys) {
    if (!isObject(jwk) || jwk['kty'] !== 'RSA' || typeof jwk['kid'] !== 'string' || jwk['kid'] === '') continue
    const ops = jwk['key_ops']
    if (!((Array.isArray(ops) && ops.includes('encrypt')) || jwk['use'] === 'enc')) continue
    try {
      const x5c = jwk['x5c']
      if (typeof jwk['n'] === 'string' && typeof jwk['e'] === 'string') {
        return { kid: jwk['kid'], key: createPublicKey({ key: { kty: 'RSA', n: jwk['n'], e: jwk['e'] }, format: 'jwk' }) }
      }
      if (Array.isArray(x5c) && typeof x5c[0] === 'string') {
        return { kid: jwk['kid'], key: new X509Certificate(Buffer.from(x5c[0], 'base64')).publicKey }
      }
    } catch {
      // an unusable key is not a suitable one: keep looking
    }
  }
  return null
}
