// The vault's side of a release, for the AKV emulator and tests: the exact inverse of unwrap.ts
// (RSA-OAEP of a fresh AES-256 KEK, then RFC 5649 AES key wrap with padding; docs/protocols.md#released-key-wrapping).
import crypto from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { AES_KWP_IV, isReleaseEnc, kwpCipherFor, oaepHashOf } from './key-hsm.ts'
import type { ReleaseEnc } from './key-hsm.ts'

/** AES key wrap with padding (RFC 5649) of a non-empty plaintext under a 16/24/32-byte KEK. */
export function aesKeyWrapPadded (kek: Buffer, plaintext: Buffer): Buffer {
  const cipher = kwpCipherFor(kek.length)
  if (cipher === undefined) throw new TypeError('aesKeyWrapPadded: KEK must be 16, 24 or 32 bytes')
  if (plaintext.length === 0) throw new TypeError('aesKeyWrapPadded: plaintext must not be empty')
  const c = crypto.createCipheriv(cipher, kek, AES_KWP_IV)
  return Buffer.concat([c.update(plaintext), c.final()])
}

/** Wraps `plaintext` for a release: RSA-OAEP (hash per `enc`) of a random AES-256 KEK ‖ AES-KWP(KEK, plaintext). */
export function wrapForRelease (plaintext: Buffer, enc: ReleaseEnc, wrappingPublicKey: KeyObject): Buffer {
  if (!Buffer.isBuffer(plaintext) || plaintext.length === 0) throw new TypeError('wrapForRelease: plaintext must be a non-empty Buffer')
  if (!isReleaseEnc(enc)) throw new TypeError('wrapForRelease: enc is not a release wrapping algorithm')
  if (!(wrappingPublicKey instanceof crypto.KeyObject) || wrappingPublicKey.asymmetricKeyType !== 'rsa') {
    throw new TypeError('wrapForRelease: wrappingPublicKey must be an RSA KeyObject')
  }
  const kek = crypto.randomBytes(32)
  try {
    const encryptedKek = crypto.publicEncrypt(
      { key: wrappingPublicKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: oaepHashOf(enc) },
      kek
    )
    return Buffer.concat([encryptedKek, aesKeyWrapPadded(kek, plaintext)])
  } finally {
    kek.fill(0)
  }
}
