// The `key_hsm` envelope a vault puts in a release response, and the names of the wrapping
// algorithms it may use. docs/protocols.md#released-key-wrapping: key_hsm = unpadded b64url of
// {"schema_version":"1.0","header":{"kid","alg":"dir","enc"},"ciphertext":"<unpadded b64url>"}.
import { decodeBase64Url } from '../encoding/base64.ts'
import { KeyUnwrapFailed } from '../errors.ts'
import { isObject } from '../text/untrusted.ts'

/** A wrapping algorithm a vault may use for a release (the request's `enc`). */
export type ReleaseEnc = 'CKM_RSA_AES_KEY_WRAP' | 'RSA_AES_KEY_WRAP_256' | 'RSA_AES_KEY_WRAP_384'

/** Every supported `enc`, the default (what the vault uses when none is sent) first. */
export const RELEASE_ENCS: readonly ReleaseEnc[] = Object.freeze([
  'CKM_RSA_AES_KEY_WRAP', 'RSA_AES_KEY_WRAP_256', 'RSA_AES_KEY_WRAP_384'
])

/** True when `value` names a supported release wrapping algorithm. */
export function isReleaseEnc (value: unknown): value is ReleaseEnc {
  return typeof value === 'string' && (RELEASE_ENCS as readonly string[]).includes(value)
}

const OAEP_HASH: Readonly<Record<ReleaseEnc, 'sha1' | 'sha256' | 'sha384'>> = Object.freeze({
  CKM_RSA_AES_KEY_WRAP: 'sha1',
  RSA_AES_KEY_WRAP_256: 'sha256',
  RSA_AES_KEY_WRAP_384: 'sha384'
})

/** The RSA-OAEP (and MGF1) hash of a release `enc`, as a node:crypto digest name (docs/protocols.md#released-key-wrapping). */
export function oaepHashOf (enc: ReleaseEnc): 'sha1' | 'sha256' | 'sha384' {
  return OAEP_HASH[enc]
}

/** RFC 5649 §3 alternative initial value: node:crypto takes it as the IV of `id-aes*-wrap-pad`. */
export const AES_KWP_IV: Buffer = Buffer.from('a65959a6', 'hex')

const KWP_CIPHER: Readonly<Record<number, string>> = Object.freeze({
  16: 'id-aes128-wrap-pad',
  24: 'id-aes192-wrap-pad',
  32: 'id-aes256-wrap-pad'
})

/** The node:crypto AES-KWP cipher for a KEK of `kekLength` bytes, or undefined for a size AES lacks. */
export function kwpCipherFor (kekLength: number): string | undefined {
  return KWP_CIPHER[kekLength]
}

/** The decoded `key_hsm` envelope. Only `ciphertext` drives the unwrap; the header is informational. */
export interface KeyHsmEnvelope {
  schemaVersion: string
  kid: string
  alg: string
  enc: string
  ciphertext: Buffer
}

function fail (step: string): KeyUnwrapFailed {
  return new KeyUnwrapFailed(`key_hsm envelope malformed: ${step}`, { details: { step } })
}

function optionalString (obj: Record<string, unknown>, name: string, step: string): string {
  const value = obj[name]
  if (value === undefined) return ''
  if (typeof value !== 'string') throw fail(step)
  return value
}

/**
 * Parses a `key_hsm` string. The reference sidecar reads only `ciphertext` (its header is an
 * untyped interface{}), so absent header members become '' rather than errors; members of the
 * wrong type, bad b64url, bad JSON or an empty ciphertext are KeyUnwrapFailed.
 */
export function parseKeyHsm (keyHsm: string): KeyHsmEnvelope {
  if (typeof keyHsm !== 'string' || keyHsm === '') throw fail('key_hsm')
  const json = decodeBase64Url(keyHsm)
  if (json === null) throw fail('key_hsm base64url')
  let doc: unknown
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json))
  } catch {
    throw fail('key_hsm JSON')
  }
  if (!isObject(doc)) throw fail('key_hsm JSON')
  const schemaVersion = optionalString(doc, 'schema_version', 'schema_version')
  const header = doc['header'] ?? {}
  if (!isObject(header)) throw fail('header')
  const ciphertextText = doc['ciphertext']
  if (typeof ciphertextText !== 'string' || ciphertextText === '') throw fail('ciphertext')
  const ciphertext = decodeBase64Url(ciphertextText)
  if (ciphertext === null || ciphertext.length === 0) throw fail('ciphertext base64url')
  return {
    schemaVersion,
    kid: optionalString(header, 'kid', 'header.kid'),
    alg: optionalString(header, 'alg', 'header.alg'),
    enc: optionalString(header, 'enc', 'header.enc'),
    ciphertext
  }
}

/** Builds a `key_hsm` string as a vault does (unpadded b64url, `alg: "dir"`); for the emulator and tests. */
export function buildKeyHsm (env: { kid: string, enc: ReleaseEnc, ciphertext: Buffer }): string {
  if (!isReleaseEnc(env.enc)) throw new TypeError('buildKeyHsm: enc is not a release wrapping algorithm')
  if (!Buffer.isBuffer(env.ciphertext) || env.ciphertext.length === 0) throw new TypeError('buildKeyHsm: ciphertext must be a non-empty Buffer')
  const doc = {
    schema_version: '1.0',
    header: { kid: env.kid, alg: 'dir', enc: env.enc },
    ciphertext: env.ciphertext.toString('base64url')
  }
  return Buffer.from(JSON.stringify(doc), 'utf8').toString('base64url')
}
