// The UVM reference info: a COSE_Sign1 (RFC 9052 §4.2, CBOR tag 18) that Microsoft's signing
// service issues for each confidential-container utility VM image, binding its launch MEASUREMENT
// and guest SVN to the ContainerPlat feed. MAA checks it against the report (`Endorsements.Uvm`)
// and then issues x-ms-compliance-status "azure-compliant-uvm" (docs/sev-snp.md §4.5,
// docs/wire-protocols.md §1.3, §1.6).
//
// Limits, stated plainly: the RFC 3161 timestamp countersignature in the unprotected header is not
// verified here. MAA accepts endorsements whose signing leaf has long expired (the genuine vector's
// leaf ended 2024-01-03) because it checks the leaf against the time the signature was made; we do
// the same with the *signed* `signingtime` header, which a holder of an old leaf key could backdate,
// whereas the timestamp authority's countersignature could not be.
import { createHash, constants, verify as cryptoVerify, X509Certificate } from 'node:crypto'
import { decode, encode } from 'cborg'
import type { DecodeOptions } from 'cborg'
import { UvmEndorsementInvalid } from '../errors.ts'

/** What an endorsement says, from its payload and protected header. */
export interface UvmEndorsement {
  /** The payload JSON object as signed. */
  payload: Record<string, unknown>
  /** payload["x-ms-sevsnpvm-launchmeasurement"], lowercase hex; null when absent. */
  launchMeasurement: string | null
  /** payload["x-ms-sevsnpvm-guestsvn"] (a decimal string in Microsoft's feed); null when absent. */
  guestSvn: string | null
  /** Protected header `feed` (e.g. "ContainerPlat-AMD-UVM"). */
  feed: string | null
  /** Protected header `iss` (a did:x509 naming the root and the required EKU). */
  issuer: string | null
  /** Protected header `signingtime`, seconds since the epoch. */
  signingTime: number | null
}

/** Options of verifyUvmReferenceInfo: the clock and the pinned roots. */
export interface VerifyUvmOptions {
  now?: Date
  /** SHA-256 fingerprints (X509Certificate.fingerprint256) of the accepted chain roots; default Microsoft's. */
  trustedRootFingerprints?: readonly string[]
}

/** "Microsoft Supply Chain RSA Root CA 2022", the root of the genuine ContainerPlat chain (self-signed, to 2047). */
export const MICROSOFT_SUPPLY_CHAIN_ROOT_FINGERPRINT =
  '23:FF:E2:B8:BD:B9:A1:71:15:15:D4:CF:FD:A0:4B:C7:F7:93:D5:13:C7:6C:24:3F:10:20:50:7D:86:69:B7:DB'

const MAX_SIZE = 1024 * 1024
const TAG_COSE_SIGN1 = 18
const TAG_EPOCH_TIME = 1
const HDR_ALG = 1
const HDR_X5CHAIN = 33
const HDR_X5T = 34
const SHA256_ALG = -16
// RFC 8230 §2: PS256/PS384/PS512, salt length = hash length.
const PSS_ALGS: ReadonlyMap<number, { hash: string, saltLength: number }> = new Map([
  [-37, { hash: 'sha256', saltLength: 32 }],
  [-38, { hash: 'sha384', saltLength: 48 }],
  [-39, { hash: 'sha512', saltLength: 64 }]
])

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

function invalid (check: string, message: string, cause?: unknown): UvmEndorsementInvalid {
  return new UvmEndorsementInvalid(`UVM reference info: ${message}`, { details: { check }, ...(cause === undefined ? {} : { cause }) })
}

interface CoseSign1 { protectedBytes: Uint8Array, protectedHeader: Map<unknown, unknown>, payload: Uint8Array, signature: Uint8Array }

function decodeCbor (bytes: Uint8Array, what: string, tags: DecodeOptions['tags']): unknown {
  try {
    return decode(bytes, { ...STRICT, tags })
  } catch (err) {
    throw invalid('cbor', `${what} is not valid (strict) CBOR`, err)
  }
}

function decodeCose (bytes: Uint8Array): CoseSign1 {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('UVM reference info must be a Buffer or Uint8Array')
  if (bytes.length === 0 || bytes.length > MAX_SIZE) throw invalid('size', `size ${bytes.length} bytes, want 1..${MAX_SIZE}`)
  // Untagged COSE_Sign1 is allowed where the type is known from context (RFC 9052 §2).
  let outer = decodeCbor(bytes, 'COSE_Sign1', { [TAG_COSE_SIGN1]: (inner) => ({ coseSign1: inner() }) })
  if (typeof outer === 'object' && outer !== null && 'coseSign1' in outer) outer = outer.coseSign1
  if (!Array.isArray(outer) || outer.length !== 4) throw invalid('structure', 'want a COSE_Sign1 array of 4 items')
  const [protectedBytes, unprotected, payload, signature] = outer as unknown[]
  if (!(protectedBytes instanceof Uint8Array) || protectedBytes.length === 0) throw invalid('structure', 'protected header is not a non-empty byte string')
  if (!(unprotected instanceof Map)) throw invalid('structure', 'unprotected header is not a map')
  if (!(payload instanceof Uint8Array)) throw invalid('structure', 'payload is not an attached byte string')
  if (!(signature instanceof Uint8Array) || signature.length === 0) throw invalid('structure', 'signature is not a non-empty byte string')
  const protectedHeader = decodeCbor(protectedBytes, 'protected header', { [TAG_EPOCH_TIME]: (inner) => inner() })
  if (!(protectedHeader instanceof Map)) throw invalid('structure', 'protected header is not a map')
  return { protectedBytes, protectedHeader, payload, signature }
}

function optionalString (header: Map<unknown, unknown>, key: string): string | null {
  const value = header.get(key)
  if (value === undefined) return null
  if (typeof value !== 'string') throw invalid('header', `protected header "${key}" is not a text string`)
  return value
}

function payloadObject (payload: Uint8Array): Record<string, unknown> {
  let json: unknown
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload))
  } catch (err) {
    throw invalid('payload', 'payload is not UTF-8 JSON', err)
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw invalid('payload', 'payload is not a JSON object')
  return json as Record<string, unknown>
}

function claimText (payload: Record<string, unknown>, key: string): string | null {
  const value = payload[key]
  if (value === undefined) return null
  if (typeof value === 'string') return value
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value)
  throw invalid('payload', `payload "${key}" is not a string`)
}

function endorsementOf (cose: CoseSign1): UvmEndorsement {
  const payload = payloadObject(cose.payload)
  const measurement = claimText(payload, 'x-ms-sevsnpvm-launchmeasurement')
  if (measurement !== null && !/^[0-9a-fA-F]{96}$/.test(measurement)) throw invalid('payload', 'launch measurement is not 96 hex digits')
  const signingTime = cose.protectedHeader.get('signingtime')
  if (signingTime !== undefined && (typeof signingTime !== 'number' || !Number.isSafeInteger(signingTime))) {
    throw invalid('header', 'protected header "signingtime" is not an integer epoch time')
  }
  return {
    payload,
    launchMeasurement: measurement?.toLowerCase() ?? null,
    guestSvn: claimText(payload, 'x-ms-sevsnpvm-guestsvn'),
    feed: optionalString(cose.protectedHeader, 'feed'),
    issuer: optionalString(cose.protectedHeader, 'iss'),
    signingTime: signingTime ?? null
  }
}

/** Decodes a COSE_Sign1 UVM endorsement without verifying it; throws UvmEndorsementInvalid when malformed. */
export function parseUvmReferenceInfo (cose: Uint8Array): UvmEndorsement {
  return endorsementOf(decodeCose(cose))
}

function chainOf (header: Map<unknown, unknown>): X509Certificate[] {
  const raw = header.get(HDR_X5CHAIN)
  // RFC 9360 §2: one certificate is a bare bstr, several an array, leaf first.
  const ders = raw instanceof Uint8Array ? [raw] : raw
  if (!Array.isArray(ders) || ders.length === 0 || !ders.every((d) => d instanceof Uint8Array)) {
    throw invalid('x5chain', 'protected header has no x5chain (33) of DER certificates')
  }
  return (ders as Uint8Array[]).map((der, i) => {
    try {
      return new X509Certificate(der)
    } catch (err) {
      throw invalid('x5chain', `x5chain certificate ${i} is not DER X.509`, err)
    }
  })
}

function signedBy (cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey)
  } catch {
    return false
  }
}

const normalize = (fp: string): string => fp.replace(/[\s:]/g, '').toUpperCase()
const within = (cert: X509Certificate, at: Date): boolean => at >= new Date(cert.validFrom) && at <= new Date(cert.validTo)

function checkChain (chain: X509Certificate[], endorsement: UvmEndorsement, options: VerifyUvmOptions): void {
  const now = options.now ?? new Date()
  const trusted = new Set((options.trustedRootFingerprints ?? [MICROSOFT_SUPPLY_CHAIN_ROOT_FINGERPRINT]).map(normalize))
  const root = chain[chain.length - 1] as X509Certificate
  if (!trusted.has(normalize(root.fingerprint256))) throw invalid('root', 'x5chain root is not a trusted signing root')
  if (!signedBy(root, root)) throw invalid('chain', 'x5chain root is not self-signed')
  for (let i = 0; i + 1 < chain.length; i++) {
    const cert = chain[i] as X509Certificate
    const issuer = chain[i + 1] as X509Certificate
    if (issuer.ca !== true) throw invalid('chain', `x5chain certificate ${i + 1} is not a CA`)
    if (!signedBy(cert, issuer)) throw invalid('chain', `x5chain certificate ${i} is not signed by certificate ${i + 1}`)
  }
  // CAs must still be valid; the leaf at the time it signed (see the header comment).
  for (let i = 1; i < chain.length; i++) {
    if (!within(chain[i] as X509Certificate, now)) throw invalid('validity', `x5chain certificate ${i} is not valid at ${now.toISOString()}`)
  }
  const leaf = chain[0] as X509Certificate
  const signedAt = endorsement.signingTime === null ? now : new Date(endorsement.signingTime * 1000)
  if (!within(leaf, signedAt)) throw invalid('validity', `signing certificate is not valid at the signing time ${signedAt.toISOString()}`)
}

// did:x509:0:sha256:<b64url SHA-256 of a CA in the chain>::eku:<OID> (DID x509 method, as the feed uses it).
function checkIssuerDid (chain: X509Certificate[], issuer: string | null): void {
  if (issuer === null) throw invalid('iss', 'protected header has no "iss"')
  const match = /^did:x509:0:sha256:([A-Za-z0-9_-]{43})::eku:([0-9.]+)$/.exec(issuer)
  if (match === null) throw invalid('iss', 'protected header "iss" is not a did:x509 with a sha256 CA and an EKU policy')
  const [, caHash = '', eku = ''] = match
  const named = chain.slice(1).some((cert) => createHash('sha256').update(cert.raw).digest('base64url') === caHash)
  if (!named) throw invalid('iss', '"iss" names no CA certificate of the x5chain')
  const leaf = chain[0] as X509Certificate
  if (!(leaf.keyUsage ?? []).includes(eku)) throw invalid('iss', 'signing certificate lacks the EKU that "iss" requires')
}

function checkThumbprint (header: Map<unknown, unknown>, leaf: X509Certificate): void {
  const x5t = header.get(HDR_X5T)
  if (x5t === undefined) return
  if (!Array.isArray(x5t) || x5t.length !== 2 || x5t[0] !== SHA256_ALG || !(x5t[1] instanceof Uint8Array)) {
    throw invalid('x5t', 'protected header x5t (34) is not [-16 (SHA-256), bstr]')
  }
  if (!createHash('sha256').update(leaf.raw).digest().equals(x5t[1])) throw invalid('x5t', 'x5t does not match the signing certificate')
}

/**
 * Verifies a COSE_Sign1 UVM endorsement: strict CBOR, a PSS alg, the signature over
 * Sig_structure ["Signature1", protected, h'', payload] with the x5chain leaf key, x5t, each
 * x5chain link up to a pinned root, the did:x509 issuer, and validity (CAs at `now`, the leaf at
 * its signing time). Throws UvmEndorsementInvalid (details.check names the failed check).
 */
export function verifyUvmReferenceInfo (cose: Uint8Array, options: VerifyUvmOptions = {}): UvmEndorsement {
  const decoded = decodeCose(cose)
  const endorsement = endorsementOf(decoded)
  const header = decoded.protectedHeader
  const alg = header.get(HDR_ALG)
  const pss = typeof alg === 'number' ? PSS_ALGS.get(alg) : undefined
  if (pss === undefined) throw invalid('alg', `protected header alg ${String(alg)} is not PS256, PS384 or PS512`)
  const chain = chainOf(header)
  const leaf = chain[0] as X509Certificate
  checkThumbprint(header, leaf)
  const toBeSigned = encode(['Signature1', decoded.protectedBytes, new Uint8Array(0), decoded.payload])
  let ok: boolean
  try {
    ok = cryptoVerify(pss.hash, toBeSigned,
      { key: leaf.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: pss.saltLength }, decoded.signature)
  } catch {
    ok = false
  }
  if (!ok) throw invalid('signature', 'COSE signature does not verify under the x5chain leaf key')
  checkChain(chain, endorsement, options)
  checkIssuerDid(chain, endorsement.issuer)
  return endorsement
}
