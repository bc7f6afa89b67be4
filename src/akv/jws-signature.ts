// The signature check of a compact JWS (RFC 7515 §5.2 steps 8-9, algorithms of RFC 7518 §3),
// synchronously through node:crypto. A release answer's signature is checked on every warm
// release; WebCrypto (which jose uses) would run each RSA verify on the libuv thread pool, a
// cross-thread round trip that costs more than the 2048-bit verify itself (~0.1 ms vs ~0.04 ms
// measured). Key-type, curve and size rules follow RFC 7518: an algorithm is only accepted with
// the key it names, so a header cannot steer an RSA key into an EC check or the reverse.
import { constants, verify, type KeyObject } from 'node:crypto'

interface AlgSpec {
  hash: 'sha256' | 'sha384' | 'sha512'
  kind: 'rsa' | 'rsa-pss' | 'ec'
  /** EC only: the curve the algorithm names. */
  curve?: 'prime256v1' | 'secp384r1' | 'secp521r1'
}

const ALGS: Readonly<Record<string, AlgSpec>> = Object.freeze({
  RS256: { hash: 'sha256', kind: 'rsa' },
  RS384: { hash: 'sha384', kind: 'rsa' },
  RS512: { hash: 'sha512', kind: 'rsa' },
  PS256: { hash: 'sha256', kind: 'rsa-pss' },
  PS384: { hash: 'sha384', kind: 'rsa-pss' },
  PS512: { hash: 'sha512', kind: 'rsa-pss' },
  ES256: { hash: 'sha256', kind: 'ec', curve: 'prime256v1' },
  ES384: { hash: 'sha384', kind: 'ec', curve: 'secp384r1' },
  ES512: { hash: 'sha512', kind: 'ec', curve: 'secp521r1' }
})

const HASH_BYTES = { sha256: 32, sha384: 48, sha512: 64 } as const

/** RFC 7518 §3.3/§3.5: RSA keys of 2048 bits or more. */
const MIN_RSA_BITS = 2048

/** The algorithms this module can check (callers narrow it with their own allow-list). */
export const JWS_SIGNATURE_ALGS: readonly string[] = Object.freeze(Object.keys(ALGS))

function keyFits (spec: AlgSpec, key: KeyObject): boolean {
  if (key.type !== 'public') return false
  const details = key.asymmetricKeyDetails
  if (spec.kind === 'ec') return key.asymmetricKeyType === 'ec' && details?.namedCurve === spec.curve
  // An RSA-PSS-only key (id-RSASSA-PSS) may sign PS* but never RS*, and only when the hash its
  // parameters fix (OpenSSL then applies them) is the algorithm's for the digest and MGF1 both
  // (RFC 7518 §3.5): a key restricted to MGF1-SHA1 would otherwise verify a PS256 that is not one.
  if (key.asymmetricKeyType === 'rsa-pss' && [details?.hashAlgorithm, details?.mgf1HashAlgorithm].some(h => h !== undefined && h !== spec.hash)) return false
  const rsa = key.asymmetricKeyType === 'rsa' || (spec.kind === 'rsa-pss' && key.asymmetricKeyType === 'rsa-pss')
  return rsa && (details?.modulusLength ?? 0) >= MIN_RSA_BITS
}

/**
 * True when `signature` (the decoded third segment) is `alg`'s signature over `signingInput`
 * (ASCII of "<header b64url>.<payload b64url>") by `key`. False for an unknown alg, a key that
 * does not fit it, or a wrong signature; never throws for malformed signatures.
 */
export function verifyJwsSignature (alg: string, signingInput: Buffer, signature: Buffer, key: KeyObject): boolean {
  const spec = Object.hasOwn(ALGS, alg) ? ALGS[alg] : undefined
  if (spec === undefined || !keyFits(spec, key)) return false
  try {
    if (spec.kind === 'ec') return verify(spec.hash, signingInput, { key, dsaEncoding: 'ieee-p1363' }, signature)
    if (spec.kind === 'rsa-pss') {
      return verify(spec.hash, signingInput, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: HASH_BYTES[spec.hash] }, signature)
    }
    return verify(spec.hash, signingInput, { key, padding: constants.RSA_PKCS1_PADDING }, signature)
  } catch {
    return false // e.g. a signature of the wrong length for the key
  }
}
