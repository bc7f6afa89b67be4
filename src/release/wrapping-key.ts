// The ephemeral RSA wrapping key of one release, and the JWK set that carries its public half as
// MAA runtime data. The vault wraps the released key to "the first RSA key with a kid whose
// key_ops contains encrypt" in x-ms-runtime.keys (docs/protocols.md#wrapping-key-selection), so the set holds exactly
// that key, in the reference's bytes: {"keys":[{"e","key_ops":["encrypt"],"kid","kty","n"}]}
// with members sorted, kid = RFC 7638 SHA-256 thumbprint (reference pkg/common/crypto.go
// GenerateJWKSet; its vector is in test/unit/skr/wrapping-key.test.ts). The bytes matter:
// REPORT_DATA is their SHA-256.
import { createPublicKey, generateKeyPair } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { calculateJwkThumbprint } from 'jose'

/** A fresh wrapping key: the private half (never leaves the release), the JWKS bytes, and its kid. */
export interface WrappingKey {
  privateKey: KeyObject
  /** The exact JSON bytes sent as MAA runtime data. */
  jwks: Buffer
  /** The RFC 7638 thumbprint (b64url SHA-256) naming the key in the JWKS and in key_hsm. */
  kid: string
}

/** The modulus size the reference uses (pkg/common/akv.go RSASize). */
export const WRAPPING_KEY_BITS = 2048

/** The JWKS bytes and thumbprint kid for an RSA public (or private) key, in the reference's shape. */
export async function wrappingJwks (key: KeyObject): Promise<{ jwks: Buffer, kid: string }> {
  if (key.asymmetricKeyType !== 'rsa') throw new TypeError('wrappingJwks: key must be an RSA key')
  // Exporting the public half guarantees no private member can reach the JWKS.
  const pub = key.type === 'private' ? createPublicKey(key) : key
  const { n, e } = pub.export({ format: 'jwk' })
  if (typeof n !== 'string' || typeof e !== 'string') throw new TypeError('wrappingJwks: key has no RSA modulus/exponent')
  const kid = await calculateJwkThumbprint({ kty: 'RSA', n, e }, 'sha256')
  // Member order is fixed by this literal: e, key_ops, kid, kty, n (sorted, as Go's jwx emits them).
  const jwk = { e, key_ops: ['encrypt'], kid, kty: 'RSA', n }
  return { jwks: Buffer.from(JSON.stringify({ keys: [jwk] }), 'utf8'), kid }
}

/** Generates an RSA-2048 (e = 65537) wrapping key off the event loop and builds its JWKS. */
export async function createWrappingKey (): Promise<WrappingKey> {
  const privateKey = await new Promise<KeyObject>((resolve, reject) => {
    generateKeyPair('rsa', { modulusLength: WRAPPING_KEY_BITS, publicExponent: 0x10001 }, (err, _pub, priv) => {
      if (err !== null) reject(err)
      else resolve(priv)
    })
  })
  const { jwks, kid } = await wrappingJwks(privateKey)
  return { privateKey, jwks, kid }
}
