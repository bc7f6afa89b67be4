// The released key, from the sidecar's `{"key": "<JWK as a JSON string>"}` (the reference's
// doubly-encoded shape) to a node:crypto KeyObject. Errors name the step and the kty, never
// any key member: the JWK is the secret the whole system exists to protect.
import { createPrivateKey, createSecretKey, type JsonWebKey, type KeyObject } from 'node:crypto'
import { CLIENT_ERROR_CODES, SkrClientError } from './errors.ts'

/** A released key: the JWK as the sidecar sent it, and the same key as a KeyObject. */
export interface ReleasedKey {
  /** The JWK (private members included). Do not log it. */
  readonly jwk: JsonWebKey
  /** `secret` for oct keys, `private` for RSA and EC keys. */
  readonly key: KeyObject
}

function invalid (step: string): SkrClientError {
  return new SkrClientError(`released key invalid: ${step}`, { code: CLIENT_ERROR_CODES.keyInvalid, status: 200, requestId: null })
}

function isRecord (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

const BASE64URL = /^[A-Za-z0-9_-]+$/

/**
 * Imports a released JWK: `oct` → a secret KeyObject; `RSA`/`EC` with private members → a
 * private KeyObject. A vault's `-HSM` suffix is accepted (the sidecar already strips it).
 * A public-only JWK is refused: a release always carries the private key.
 */
export function jwkToKeyObject (jwk: JsonWebKey): KeyObject {
  const kty = typeof jwk.kty === 'string' ? jwk.kty.replace(/-HSM$/, '') : ''
  if (kty === 'oct') {
    if (typeof jwk.k !== 'string' || !BASE64URL.test(jwk.k)) throw invalid('oct key without a base64url "k"')
    return createSecretKey(Buffer.from(jwk.k, 'base64url'))
  }
  if (kty !== 'RSA' && kty !== 'EC') throw invalid('unsupported kty (want oct, RSA or EC)')
  if (typeof jwk.d !== 'string') throw invalid(`${kty} key without its private member "d"`)
  try {
    return createPrivateKey({ key: { ...jwk, kty }, format: 'jwk' })
  } catch {
    throw invalid(`${kty} key could not be imported`)
  }
}

/** Parses the 200 body of POST /key/release (`{"key": "<JWK string>"}`; a JWK object is tolerated). */
export function parseReleasedKey (body: unknown): ReleasedKey {
  if (!isRecord(body)) throw invalid('body is not a JSON object')
  let jwk: unknown = body.key
  if (typeof jwk === 'string') {
    try {
      jwk = JSON.parse(jwk)
    } catch {
      throw invalid('"key" is not JSON')
    }
  }
  if (!isRecord(jwk)) throw invalid('"key" is not a JWK object')
  const parsed = jwk as JsonWebKey
  return { jwk: parsed, key: jwkToKeyObject(parsed) }
}
