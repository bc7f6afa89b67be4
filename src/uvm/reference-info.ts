// The UVM reference info: a COSE_Sign1 (RFC 9052 §4.2, CBOR tag 18) that Microsoft's signing
// service issues for each confidential-container utility VM image, binding its launch MEASUREMENT
// and SVN to the ContainerPlat feed. MAA checks it against the report (`Endorsements.Uvm`) and then
// issues x-ms-compliance-status "azure-compliant-uvm" (docs/uvm-endorsement.md). ACI has shipped it
// in two layouts, both read here into one typed result:
//   json-payload (until 2025): text-keyed protected-header entries `iss`, `feed`, `signingtime`,
//     content type application/json, and a JSON payload {x-ms-sevsnpvm-guestsvn,
//     x-ms-sevsnpvm-launchmeasurement}.
//   cwt-claims (since 2026): a CWT-claims protected header (label 15, RFC 9597) with iss (1),
//     sub (2) = the feed, iat (6) and "svn"; a COSE hash envelope (RFC 9995: payload-hash-alg 258 =
//     SHA-384, preimage content type 259) whose payload is the raw 48-byte launch measurement; and
//     the transparency service's receipt in the unprotected header (394, transparency-receipt.ts).
//
// Limits, stated plainly: the RFC 3161 timestamp countersignature of the older layout is not
// verified. MAA accepts endorsements whose signing leaf has long expired (the genuine vectors' leaves
// ended 2024-01-03 and 2026-05-15) because it checks the leaf against the time the signature was
// made; we do the same with the *signed* signing time, which a holder of an old leaf key could
// backdate, whereas a timestamp authority's countersignature or a receipt's ledger entry could not.
import { createHash, X509Certificate } from 'node:crypto'
import { algorithmOf, CWT, decodeCoseSign1, HEADER, invalid, signatureVerifies, toBeSigned, type CoseSign1 } from './cose-sign1.ts'
import { checkReceipts, receiptCount, type ReceiptStatus, type TransparencyKey } from './transparency-receipt.ts'

/** Which of the two shipped layouts an endorsement uses (see the header comment). */
export type UvmEndorsementLayout = 'json-payload' | 'cwt-claims'

/** One certificate of the signer's x5chain, leaf first. */
export interface UvmSignerCert { subject: string, fingerprint256: string, validFrom: string, validTo: string }

/** What an endorsement says, from its payload and protected header, whichever the layout. */
export interface UvmEndorsement {
  layout: UvmEndorsementLayout
  /** The payload JSON object as signed (json-payload layout); null in the cwt-claims layout. */
  payload: Record<string, unknown> | null
  /** The endorsed launch MEASUREMENT, lowercase hex (96 digits); null when absent. */
  launchMeasurement: string | null
  /** The UVM's SVN as a decimal string (the older layout writes it as a string, the newer as an integer); null when absent. */
  guestSvn: string | null
  /** The feed (e.g. "ContainerPlat-AMD-UVM"): `feed`, or the CWT subject. */
  feed: string | null
  /** The issuer (a did:x509 naming the root and the required EKU): `iss`, or the CWT issuer. */
  issuer: string | null
  /** Signing time, seconds since the epoch: `signingtime`, or the CWT iat. */
  signingTime: number | null
  /** The x5chain, leaf first (empty when the header has none). */
  signerChain: UvmSignerCert[]
  /** How many transparency receipts the message carries (0 in the older layout). */
  receipts: number
}

/** A verified endorsement and the outcome of its receipt checks. */
export interface VerifiedUvmEndorsement extends UvmEndorsement { receipt: ReceiptStatus }

/** Options of verifyUvmReferenceInfo: the clock and the pinned roots. */
export interface VerifyUvmOptions {
  now?: Date
  /** SHA-256 fingerprints (X509Certificate.fingerprint256) of the accepted chain roots; default Microsoft's. */
  trustedRootFingerprints?: readonly string[]
  /** Keys of the transparency services whose receipts are trusted; default Microsoft's pinned keys. */
  transparencyKeys?: readonly TransparencyKey[]
}

/** "Microsoft Supply Chain RSA Root CA 2022", the root of the genuine ContainerPlat chain (self-signed, to 2047). */
export const MICROSOFT_SUPPLY_CHAIN_ROOT_FINGERPRINT =
  '23:FF:E2:B8:BD:B9:A1:71:15:15:D4:CF:FD:A0:4B:C7:F7:93:D5:13:C7:6C:24:3F:10:20:50:7D:86:69:B7:DB'

const SHA384 = -43
const MAX_EPOCH_SECONDS = 8_640_000_000_000
const SHA256 = -16
const MEASUREMENT_SIZE = 48

function optionalText (map: Map<unknown, unknown>, key: unknown, what: string): string | null {
  const value = map.get(key)
  if (value === undefined) return null
  if (typeof value !== 'string') throw invalid('header', `${what} is not a text string`)
  return value
}

function optionalTime (map: Map<unknown, unknown>, key: unknown, what: string): number | null {
  const value = map.get(key)
  if (value === undefined) return null
  // Within what a Date can hold (±8.64e12 s is its range in ms / 1000), so every reader can show it.
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > MAX_EPOCH_SECONDS) {
    throw invalid('header', `${what} is not an epoch time in seconds (0..${MAX_EPOCH_SECONDS})`)
  }
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

function svnText (value: unknown, what: string): string | null {
  if (value === undefined) return null
  if (typeof value === 'string' && /^\d{1,10}$/.test(value)) return value
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return String(value)
  throw invalid('payload', `${what} is not a non-negative integer`)
}

function jsonLayout (cose: CoseSign1, payload: Uint8Array): Omit<UvmEndorsement, 'signerChain' | 'receipts'> {
  const json = payloadObject(payload)
  const measurement = json['x-ms-sevsnpvm-launchmeasurement']
  if (measurement !== undefined && (typeof measurement !== 'string' || !/^[0-9a-fA-F]{96}$/.test(measurement))) {
    throw invalid('payload', 'launch measurement is not 96 hex digits')
  }
  return {
    layout: 'json-payload',
    payload: json,
    launchMeasurement: measurement?.toLowerCase() ?? null,
    guestSvn: svnText(json['x-ms-sevsnpvm-guestsvn'], 'payload "x-ms-sevsnpvm-guestsvn"'),
    feed: optionalText(cose.protectedHeader, 'feed', 'protected header "feed"'),
    issuer: optionalText(cose.protectedHeader, 'iss', 'protected header "iss"'),
    signingTime: optionalTime(cose.protectedHeader, 'signingtime', 'protected header "signingtime"')
  }
}

function cwtLayout (cose: CoseSign1, claims: Map<unknown, unknown>, payload: Uint8Array): Omit<UvmEndorsement, 'signerChain' | 'receipts'> {
  // Two issuers or feeds in one header would let two readers disagree on who signed what.
  if (['iss', 'feed', 'signingtime'].some((key) => cose.protectedHeader.has(key))) {
    throw invalid('header', 'protected header has both CWT claims (15) and text "iss"/"feed"/"signingtime" entries')
  }
  const hashAlg = cose.protectedHeader.get(HEADER.payloadHashAlg)
  if (hashAlg !== SHA384) throw invalid('payload', `payload-hash-alg (258) is ${String(hashAlg)}, want -43 (SHA-384): the payload is not a launch measurement`)
  if (payload.length !== MEASUREMENT_SIZE) throw invalid('payload', `payload is ${payload.length} bytes, want the ${MEASUREMENT_SIZE}-byte launch measurement`)
  return {
    layout: 'cwt-claims',
    payload: null,
    launchMeasurement: Buffer.from(payload).toString('hex'),
    guestSvn: svnText(claims.get('svn'), 'CWT claim "svn"'),
    feed: optionalText(claims, CWT.sub, 'CWT subject (the feed)'),
    issuer: optionalText(claims, CWT.iss, 'CWT issuer'),
    signingTime: optionalTime(claims, CWT.iat, 'CWT iat')
  }
}

function signerChainOf (header: Map<unknown, unknown>): UvmSignerCert[] {
  if (!header.has(HEADER.x5chain)) return []
  return chainOf(header).map((c) => ({ subject: c.subject.replace(/\n/g, ', '), fingerprint256: c.fingerprint256, validFrom: c.validFrom, validTo: c.validTo }))
}

function endorsementOf (cose: CoseSign1): UvmEndorsement {
  if (cose.payload === null) throw invalid('payload', 'payload is detached; an endorsement carries its payload')
  const claims = cose.protectedHeader.get(HEADER.cwtClaims)
  if (claims !== undefined && !(claims instanceof Map)) throw invalid('header', 'CWT claims header (15) is not a map')
  const fields = claims === undefined ? jsonLayout(cose, cose.payload) : cwtLayout(cose, claims, cose.payload)
  return { ...fields, signerChain: signerChainOf(cose.protectedHeader), receipts: receiptCount(cose) }
}

const decodeEndorsement = (bytes: Uint8Array): CoseSign1 => decodeCoseSign1(bytes, 'endorsement')

/** Decodes a COSE_Sign1 UVM endorsement of either layout without verifying it; throws UvmEndorsementInvalid when malformed. */
export function parseUvmReferenceInfo (cose: Uint8Array): UvmEndorsement {
  return endorsementOf(decodeEndorsement(cose))
}

function chainOf (header: Map<unknown, unknown>): X509Certificate[] {
  const raw = header.get(HEADER.x5chain)
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
  const x5t = header.get(HEADER.x5t)
  if (x5t === undefined) return
  if (!Array.isArray(x5t) || x5t.length !== 2 || x5t[0] !== SHA256 || !(x5t[1] instanceof Uint8Array)) {
    throw invalid('x5t', 'protected header x5t (34) is not [-16 (SHA-256), bstr]')
  }
  if (!createHash('sha256').update(leaf.raw).digest().equals(x5t[1])) throw invalid('x5t', 'x5t does not match the signing certificate')
}

/**
 * Verifies a COSE_Sign1 UVM endorsement of either layout: strict CBOR, a PSS alg, the signature
 * over Sig_structure ["Signature1", protected, h'', payload] with the x5chain leaf key, x5t, each
 * x5chain link up to a pinned root, the did:x509 issuer, validity (CAs at `now`, the leaf at its
 * signing time), and every transparency receipt it carries (transparency-receipt.ts). Throws
 * UvmEndorsementInvalid (details.check names the failed check); a receipt under a key skr does
 * not know is not an error but `receipt.status: 'unknown-key'`.
 */
export function verifyUvmReferenceInfo (cose: Uint8Array, options: VerifyUvmOptions = {}): VerifiedUvmEndorsement {
  const decoded = decodeEndorsement(cose)
  const endorsement = endorsementOf(decoded)
  const header = decoded.protectedHeader
  const alg = algorithmOf(header, 'pss', 'endorsement')
  const chain = chainOf(header)
  const leaf = chain[0] as X509Certificate
  checkThumbprint(header, leaf)
  if (!signatureVerifies(alg, leaf.publicKey, toBeSigned(decoded.protectedBytes, decoded.payload as Uint8Array), decoded.signature)) {
    throw invalid('signature', 'COSE signature does not verify under the x5chain leaf key')
  }
  checkChain(chain, endorsement, options)
  checkIssuerDid(chain, endorsement.issuer)
  const receipt = checkReceipts(decoded, options.transparencyKeys)
  return { ...endorsement, receipt }
}
