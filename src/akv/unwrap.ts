// Unwraps released key material: ciphertext = RSA-OAEP(wrappingPub, KEK) ‖ AES-KWP(KEK, plaintext),
// the first part exactly one modulus long (docs/protocols.md#released-key-wrapping; SECDOCS byok-specification
// CKM_RSA_AES_KEY_WRAP). All primitives are node:crypto's; nothing here is hand-rolled.
import crypto from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { KeyUnwrapFailed } from '../errors.ts'
import { AES_KWP_IV, isReleaseEnc, kwpCipherFor, oaepHashOf } from './key-hsm.ts'
import type { ReleaseEnc } from './key-hsm.ts'

// RFC 5649 output is whole 64-bit blocks, at least two of them.
const KWP_MIN = 16

function fail (step: string, cause?: unknown): KeyUnwrapFailed {
  // The cause is an OpenSSL error string, never key bytes; it helps tell padding from tag errors.
  return new KeyUnwrapFailed(`key unwrap failed: ${step}`, { details: { step }, cause })
}

/** AES key unwrap with padding (RFC 5649) under a 16/24/32-byte KEK; KeyUnwrapFailed on any failure. */
export function aesKeyUnwrapPadded (kek: Buffer, wrapped: Buffer): Buffer {
  const cipher = kwpCipherFor(kek.length)
  if (cipher === undefined) throw fail('KEK size')
  if (wrapped.length < KWP_MIN || wrapped.length % 8 !== 0) throw fail('wrapped key length')
  let head: Buffer | undefined
  let tail: Buffer | undefined
  try {
    const decipher = crypto.createDecipheriv(cipher, kek, AES_KWP_IV)
    head = decipher.update(wrapped)
    tail = decipher.final()
    return Buffer.concat([head, tail])
  } catch (err) {
    throw fail('AES key unwrap integrity check', err)
  } finally {
    head?.fill(0)
    tail?.fill(0)
  }
}

/**
 * Unwraps a release ciphertext with the ephemeral RSA private key: RSA-OAEP (hash and MGF1 from
 * `enc`, empty label) recovers the KEK, then AES-KWP recovers the plaintext. The KEK is zeroed
 * before returning. Every failure is KeyUnwrapFailed naming the step, never any bytes.
 */
export function unwrapKeyHsm (ciphertext: Buffer, enc: ReleaseEnc, wrappingKey: KeyObject): Buffer {
  if (!Buffer.isBuffer(ciphertext)) throw new TypeError('unwrapKeyHsm: ciphertext must be a Buffer')
  if (!(wrappingKey instanceof crypto.KeyObject) || wrappingKey.type !== 'private' || wrappingKey.asymmetricKeyType !== 'rsa') {
    throw new TypeError('unwrapKeyHsm: wrappingKey must be an RSA private KeyObject')
  }
  if (!isReleaseEnc(enc)) throw fail('unsupported enc')
  const modulusBits = wrappingKey.asymmetricKeyDetails?.modulusLength
  if (modulusBits === undefined) throw new TypeError('unwrapKeyHsm: wrappingKey has no modulus length')
  const rsaLength = Math.ceil(modulusBits / 8)
  if (ciphertext.length < rsaLength + KWP_MIN) throw fail('ciphertext length')

  let kek: Buffer
  try {
    kek = crypto.privateDecrypt(
      { key: wrappingKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: oaepHashOf(enc) },
      ciphertext.subarray(0, rsaLength)
    )
  } catch (err) {
    throw fail('RSA-OAEP decryption', err)
  }
  try {
    return aesKeyUnwrapPadded(kek, ciphertext.subarray(rsaLength))
  } finally {
    kek.fill(0)
  }
}
