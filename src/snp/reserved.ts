// The reserved byte ranges of ATTESTATION_REPORT and what skr does with them (docs/snp-report.md).
//
// Signed reserved bytes (0x000..0x29F) are never a reason to refuse a report: the report VERSION
// names the layout, and AMD has so far added fields only by turning reserved bytes into fields
// (CPUID_* in v3, the mitigation vectors in v5; v4's additions are under embargo). A non-zero byte
// there is firmware's, covered by the signature, so it is kept in `unknownBytes` for policy to judge
// and for `skr report`/`skr verify` to show, as virtee/sev does (its decoder skips these bytes)
// rather than as go-sev-guest's ReportToProto does (it refuses them, `mbz`).
//
// The signature area (0x2A0..0x49F) is another matter. For SIGNATURE_ALGO 1 its layout is fixed
// by the spec's ECDSA P-384 signature format: R and S as 48-byte integers zero-extended to 72
// little-endian bytes, the rest reserved. Those bytes are not signed, so a non-zero byte cannot be a
// newer field of a genuine report: either R or S is out of range (ECDSA requires r, s < n, and
// n < 2^384) or someone changed bytes after signing. parseReport refuses them (ReportInvalid). For
// any other SIGNATURE_ALGO the area is opaque and only kept.
import { ReportInvalid } from '../errors.ts'
import type { GuestPolicy, PlatformInfo, SignerInfo } from './report-fields.ts'

/** A reserved byte range holding at least one non-zero byte; `bytes` is a copy of the whole range. */
export interface UnknownBytes {
  offset: number
  bytes: Buffer
  /** True when the range is covered by the signature (below 0x2A0). */
  signed: boolean
}

/** [start, end) of a reserved range, and its name in messages. */
export type ByteRange = readonly [start: number, end: number, name: string]

/** The signature algorithm whose format skr knows: ECDSA P-384 with SHA-384. */
export const ECDSA_P384_SHA384 = 1

/** Reserved ranges inside the signed bytes, per VERSION (2..5) (go-sev-guest ReportToProto's mbz list). */
export function signedReservedRanges (version: number): readonly ByteRange[] {
  return [
    [0x04c, 0x050, 'reserved bytes'],
    // v2: 0x188..0x19F reserved; v3 turned 0x188..0x18A into CPUID_FAM_ID, CPUID_MOD_ID, CPUID_STEP.
    [version >= 3 ? 0x18b : 0x188, 0x1a0, 'reserved bytes'],
    [0x1eb, 0x1ec, 'reserved bytes'],
    [0x1ef, 0x1f0, 'reserved bytes'],
    // v5 turned 0x1F8..0x207 into LAUNCH_MIT_VECTOR and CURRENT_MIT_VECTOR. v4 (embargoed) may
    // use some of 0x1F8..0x29F too: whatever it sets there shows up as unknown bytes.
    [version >= 5 ? 0x208 : 0x1f8, 0x2a0, 'reserved bytes']
  ]
}

/** The zero padding of SIGNATURE_ALGO 1's signature: R and S above 48 bytes, and the tail. */
export const ECDSA_PADDING: readonly ByteRange[] = [
  [0x2d0, 0x2e8, 'signature R upper bytes'],
  [0x318, 0x330, 'signature S upper bytes'],
  [0x330, 0x4a0, 'reserved bytes']
]

const hex3 = (n: number): string => `0x${n.toString(16).toUpperCase().padStart(3, '0')}`

/** The ranges that may appear in `unknownBytes` for this VERSION and SIGNATURE_ALGO. */
export function keptRanges (version: number, signatureAlgo: number): readonly ByteRange[] {
  return signatureAlgo === ECDSA_P384_SHA384 ? signedReservedRanges(version) : [...signedReservedRanges(version), ...ECDSA_PADDING]
}

/** Every kept reserved range of `raw` that holds a non-zero byte. */
export function findUnknownBytes (raw: Buffer, version: number, signatureAlgo: number): UnknownBytes[] {
  const out: UnknownBytes[] = []
  for (const [start, end] of keptRanges(version, signatureAlgo)) {
    const range = raw.subarray(start, end)
    if (range.some((b) => b !== 0)) out.push({ offset: start, bytes: Buffer.from(range), signed: end <= 0x2a0 })
  }
  return out
}

/**
 * For SIGNATURE_ALGO 1, throws ReportInvalid naming the first non-zero padding byte (see the
 * header comment: these bytes are unsigned, and the format makes them zero).
 */
export function checkSignatureFormat (raw: Uint8Array, signatureAlgo: number): void {
  if (signatureAlgo !== ECDSA_P384_SHA384) return
  for (const [start, end, name] of ECDSA_PADDING) {
    for (let i = start; i < end; i++) {
      const b = raw[i] ?? 0
      if (b === 0) continue
      throw new ReportInvalid(
        `report ${name} ${hex3(start)}..${hex3(end)} has 0x${b.toString(16).padStart(2, '0')} at ${hex3(i)}, want all zero ` +
        '(SNP ABI 56860 ECDSA P-384 SHA-384 signature format: R and S are 48-byte values zero-extended to 72 bytes, the rest reserved; these bytes are not signed)',
        { details: { field: name, offset: i } })
    }
  }
}

/** What unknownFields reads. */
export interface UnknownSource {
  signatureAlgo: number
  policy: Pick<GuestPolicy, 'unknownBits'>
  platformInfo: Pick<PlatformInfo, 'unknownBits'>
  signerInfo: Pick<SignerInfo, 'unknownBits' | 'signingKey' | 'signingKeyValue'>
  unknownBytes: readonly UnknownBytes[]
}

/**
 * One line per field, bit or byte range of the report that the ABI revision skr follows does not
 * define (empty for a report that uses none): what `skr report` and `skr verify` show.
 */
export function unknownFields (report: UnknownSource): string[] {
  const out: string[] = []
  const hex = (n: bigint | number): string => `0x${n.toString(16)}`
  if (report.policy.unknownBits !== 0n) out.push(`POLICY reserved bits ${hex(report.policy.unknownBits)}`)
  if (report.platformInfo.unknownBits !== 0n) out.push(`PLATFORM_INFO reserved bits ${hex(report.platformInfo.unknownBits)}`)
  if (report.signerInfo.unknownBits !== 0) out.push(`signer word (0x048) reserved bits ${hex(report.signerInfo.unknownBits)}`)
  if (report.signerInfo.signingKey === 'reserved') out.push(`SIGNING_KEY ${report.signerInfo.signingKeyValue} (reserved)`)
  if (report.signatureAlgo !== ECDSA_P384_SHA384) out.push(`SIGNATURE_ALGO ${report.signatureAlgo} (only 1, ECDSA P-384 with SHA-384, is defined)`)
  for (const u of report.unknownBytes) {
    const first = u.bytes.findIndex((b) => b !== 0)
    const count = u.bytes.reduce((n, b) => n + (b === 0 ? 0 : 1), 0)
    out.push(`reserved bytes ${hex3(u.offset)}..${hex3(u.offset + u.bytes.length)}: ${count} non-zero, first 0x${(u.bytes[first] ?? 0).toString(16).padStart(2, '0')} at ${hex3(u.offset + first)}${u.signed ? '' : ' (not signed)'}`)
  }
  return out
}
