// COSE_Sign1 (RFC 9052 §4.2) as Microsoft's UVM endorsements and their transparency receipts use
// it: strict CBOR decoding, the Sig_structure both signatures cover, and the signature algorithms
// they use (RSA-PSS for the statement, ECDSA for the receipt). Pure: bytes in, values out.
import { constants, verify as cryptoVerify, type KeyObject } from 'node:crypto'
import { decode, encode, Tagged } from 'cborg'
import type { DecodeOptions } from 'cborg'
import { UvmEndorsementInvalid } from '../errors.ts'

/** Header labels (IANA "COSE Header Parameters"), the ones skr reads. */
export const HEADER = {
  alg: 1,
  contentType: 3,
  kid: 4,
  /** RFC 9597: CWT claims in a COSE header. */
  cwtClaims: 15,
  /** RFC 9360: the signer's certificate chain, leaf first. */
  x5chain: 33,
  x5t: 34,
  /** RFC 9995 (COSE hash envelope): the payload is a hash of a preimage made with this algorithm. */
  payloadHashAlg: 258,
  preimageContentType: 259,
  /** COSE Receipts (draft-ietf-cose-merkle-tree-proofs): receipts in a statement's unprotected header. */
  receipts: 394,
  verifiableDataStructure: 395,
  verifiableDataProofs: 396
} as const

/** CWT claim keys (RFC 8392 §3.1) inside HEADER.cwtClaims. */
export const CWT = { iss: 1, sub: 2, iat: 6 } as const

export const TAG_COSE_SIGN1 = 18
const TAG_EPOCH_TIME = 1
const MAX_SIZE = 1024 * 1024

/** A decoded COSE_Sign1; `payload` is null when detached. */
export interface CoseSign1 {
  protectedBytes: Uint8Array
  protectedHeader: Map<unknown, unknown>
  unprotectedHeader: Map<unknown, unknown>
  payload: Uint8Array | null
  signature: Uint8Array
}

// Strict CBOR: minimal integer encodings, no indefinite lengths, no undefined/NaN/Infinity, no
// duplicate keys (which would let two readers see different headers). Maps keep integer keys.
const STRICT: DecodeOptions = {
  strict: true,
  allowIndefinite: false,
  allowUndefined: false,
  allowInfinity: false,
  allowNaN: false,
  useMaps: true,
  rejectDuplicateMapKeys: true
}

/** An UvmEndorsementInvalid whose details.check names the check that failed. */
export function invalid (check: string, message: string, cause?: unknown): UvmEndorsementInvalid {
  return new UvmEndorsementInvalid(`UVM reference info: ${message}`, { details: { check }, ...(cause === undefined ? {} : { cause }) })
}

/** Strict CBOR decoding; epoch-time tags (1) decode to their number. */
export function decodeCbor (bytes: Uint8Array, what: string, check = 'cbor'): unknown {
  const tags: DecodeOptions['tags'] = []
  tags[TAG_EPOCH_TIME] = (inner) => inner()
  try {
    return decode(bytes, { ...STRICT, tags })
  } catch (err) {
    throw invalid(check, `${what} is not valid (strict) CBOR`, err)
  }
}

/**
 * Decodes a COSE_Sign1, tagged or not (RFC 9052 §2 allows the untagged form where the type is known
 * from context). `check` is the details.check of the errors (e.g. 'receipt' inside a receipt).
 */
export function decodeCoseSign1 (bytes: Uint8Array, what: string, check?: string): CoseSign1 {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`${what} must be a Buffer or Uint8Array`)
  if (bytes.length === 0 || bytes.length > MAX_SIZE) throw invalid(check ?? 'size', `${what}: size ${bytes.length} bytes, want 1..${MAX_SIZE}`)
  const tags: DecodeOptions['tags'] = []
  tags[TAG_COSE_SIGN1] = (inner) => ({ coseSign1: inner() })
  let outer: unknown
  try {
    outer = decode(bytes, { ...STRICT, tags })
  } catch (err) {
    throw invalid(check ?? 'cbor', `${what} is not valid (strict) CBOR`, err)
  }
  if (typeof outer === 'object' && outer !== null && 'coseSign1' in outer) outer = outer.coseSign1
  const structure = check ?? 'structure'
  if (!Array.isArray(outer) || outer.length !== 4) throw invalid(structure, `${what}: want a COSE_Sign1 array of 4 items`)
  const [protectedBytes, unprotectedHeader, payload, signature] = outer as unknown[]
  if (!(protectedBytes instanceof Uint8Array) || protectedBytes.length === 0) throw invalid(structure, `${what}: protected header is not a non-empty byte string`)
  if (!(unprotectedHeader instanceof Map)) throw invalid(structure, `${what}: unprotected header is not a map`)
  if (!(payload instanceof Uint8Array) && payload !== null) throw invalid(structure, `${what}: payload is neither a byte string nor nil`)
  if (!(signature instanceof Uint8Array) || signature.length === 0) throw invalid(structure, `${what}: signature is not a non-empty byte string`)
  const protectedHeader = decodeCbor(protectedBytes, `${what} protected header`, check)
  if (!(protectedHeader instanceof Map)) throw invalid(structure, `${what}: protected header is not a map`)
  return { protectedBytes, protectedHeader, unprotectedHeader, payload, signature }
}

/** RFC 9052 §4.4: Sig_structure ["Signature1", protected, external_aad = h'', payload]. */
export function toBeSigned (protectedBytes: Uint8Array, payload: Uint8Array): Uint8Array {
  return encode(['Signature1', protectedBytes, new Uint8Array(0), payload])
}

/**
 * The message as first signed: tag 18 over [protected, {}, payload, signature]. A transparency
 * service registers a statement with an empty unprotected header and then adds its receipts there,
 * so this is the byte string a receipt's leaf commits to (checked against the genuine statement
 * in test/fixtures/vectors/scitt-ccf-ledger).
 */
export function withoutUnprotected (cose: CoseSign1): Uint8Array {
  return encode(new Tagged(TAG_COSE_SIGN1, [cose.protectedBytes, new Map(), cose.payload, cose.signature]))
}

interface Algorithm { name: string, kind: 'pss' | 'ecdsa', hash: string, saltLength?: number }

// RFC 8230 §2 (PS256/384/512: salt length = hash length) and RFC 9053 §2.1 (ES256/384/512).
const ALGORITHMS: ReadonlyMap<number, Algorithm> = new Map([
  [-37, { name: 'PS256', kind: 'pss', hash: 'sha256', saltLength: 32 }],
  [-38, { name: 'PS384', kind: 'pss', hash: 'sha384', saltLength: 48 }],
  [-39, { name: 'PS512', kind: 'pss', hash: 'sha512', saltLength: 64 }],
  [-7, { name: 'ES256', kind: 'ecdsa', hash: 'sha256' }],
  [-35, { name: 'ES384', kind: 'ecdsa', hash: 'sha384' }],
  [-36, { name: 'ES512', kind: 'ecdsa', hash: 'sha512' }]
])

/** The protected `alg` when it is one of `kind`'s algorithms; otherwise the error names what was found. */
export function algorithmOf (header: Map<unknown, unknown>, kind: Algorithm['kind'], what: string, check = 'alg'): Algorithm {
  const alg = header.get(HEADER.alg)
  const found = typeof alg === 'number' ? ALGORITHMS.get(alg) : undefined
  if (found === undefined || found.kind !== kind) {
    const want = [...ALGORITHMS.values()].filter((a) => a.kind === kind).map((a) => a.name).join(', ')
    throw invalid(check, `${what}: protected header alg ${String(alg)} is not one of ${want}`)
  }
  return found
}

/** Whether `signature` (COSE form: r‖s for ECDSA) over `message` verifies under `key`; never throws. */
export function signatureVerifies (alg: Algorithm, key: KeyObject, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    return alg.kind === 'pss'
      ? cryptoVerify(alg.hash, message, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: alg.saltLength ?? 0 }, signature)
      : cryptoVerify(alg.hash, message, { key, dsaEncoding: 'ieee-p1363' }, signature)
  } catch {
    return false
  }
}
