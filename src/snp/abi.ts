// The SEV-SNP ATTESTATION_REPORT structure (SNP ABI 56860 "ATTESTATION_REPORT Structure", Table 22
// in revision 1.55; docs/snp-report.md): 1184 little-endian bytes, versions 2, 3, 4 and 5. Pure
// code: bytes in, a decoded report out, and the exact inverse for test doubles. Verification must
// hash `raw`, never a re-serialised report (docs/sev-snp.md#report-signature).
//
// What is fatal (ReportInvalid): a size other than 1184, a VERSION whose layout skr does not know,
// and, for SIGNATURE_ALGO 1, non-zero padding in the unsigned signature area (reserved.ts). Nothing
// else: a reserved bit or byte that newer firmware sets is decoded into `unknownBits` /
// `unknownBytes` and left to policy (issue 12). The round trip is exact for anything parseReport
// accepts, unknown bits and bytes included.
import { ReportInvalid } from '../errors.ts'
import { decodePlatformInfo, decodePolicy, decodeSignerInfo, putInt, putU64 } from './report-fields.ts'
import type { GuestPolicy, PlatformInfo, SignerInfo } from './report-fields.ts'
import { checkSignatureFormat, findUnknownBytes, keptRanges } from './reserved.ts'
import type { UnknownBytes } from './reserved.ts'
import { decodeTcb } from './tcb.ts'
import type { Generation, TcbParts } from './tcb.ts'

export type { GuestPolicy, PlatformInfo, SignerInfo, SigningKey } from './report-fields.ts'
export type { UnknownBytes } from './reserved.ts'
export { unknownFields } from './reserved.ts'

/** Size of ATTESTATION_REPORT in bytes, all versions 2..5 (1184). */
export const REPORT_SIZE = 0x4a0
/** The signature covers bytes 0..0x29F (672 bytes). */
export const SIGNED_SIZE = 0x2a0
/** Where SIGNATURE starts: R (72 bytes LE) then S (72 bytes LE), then reserved to the end. */
export const SIGNATURE_OFFSET = 0x2a0

const SIG_FIELD = 72 // ECDSA P-384 R and S each occupy 72 little-endian bytes, only 48 significant
const SIG_INT = 48
const R_OFFSET = SIGNATURE_OFFSET
const S_OFFSET = SIGNATURE_OFFSET + SIG_FIELD
const SIG_END = S_OFFSET + SIG_FIELD // 0x330

/** CURRENT_VERSION / COMMITTED_VERSION of the SNP firmware. */
export interface FirmwareVersion { major: number, minor: number, build: number }

/** A decoded attestation report; every Buffer is a private copy. */
export interface AttestationReport {
  version: number
  guestSvn: number
  policy: GuestPolicy
  familyId: Buffer
  imageId: Buffer
  vmpl: number
  signatureAlgo: number
  currentTcb: bigint
  platformInfo: PlatformInfo
  signerInfo: SignerInfo
  reportData: Buffer
  measurement: Buffer
  hostData: Buffer
  idKeyDigest: Buffer
  authorKeyDigest: Buffer
  reportId: Buffer
  reportIdMa: Buffer
  reportedTcb: bigint
  /** v3+ only: CPUID_FAM_ID (extended family + base family), CPUID_MOD_ID, CPUID_STEP as stored. */
  cpuid: { family: number, model: number, stepping: number } | null
  chipId: Buffer
  committedTcb: bigint
  currentVersion: FirmwareVersion
  committedVersion: FirmwareVersion
  launchTcb: bigint
  /** v5 only. */
  launchMitVector: bigint | null
  /** v5 only. */
  currentMitVector: bigint | null
  /** Each 48 bytes big-endian, ready for IEEE-P1363 r||s (read with the ECDSA layout whatever SIGNATURE_ALGO says). */
  signature: { r: Buffer, s: Buffer }
  /** Reserved byte ranges holding non-zero bytes (reserved.ts); empty for a report that uses none. */
  unknownBytes: UnknownBytes[]
  /** From CPUID (v3+), else the Turin CHIP_ID heuristic (v2), else options.generation; null if unknown. */
  generation: Generation | null
  /** The four TCBs decoded with `generation`'s layout; null when the generation is unknown. */
  tcb: { current: TcbParts, reported: TcbParts, committed: TcbParts, launch: TcbParts } | null
  /** A private copy of the 1184 bytes that were parsed: hash and verify these bytes. */
  raw: Buffer
}

/** Everything serializeReport needs: the report minus derived views, bit fields as raw words. */
export type ReportFields = Omit<AttestationReport, 'raw' | 'generation' | 'tcb' | 'policy' | 'platformInfo' | 'signerInfo' | 'unknownBytes'> &
{ policy: bigint, platformInfo: bigint, signerInfo: number, unknownBytes?: readonly UnknownBytes[] }

type BytesKey = 'familyId' | 'imageId' | 'reportData' | 'measurement' | 'hostData' | 'idKeyDigest' |
'authorKeyDigest' | 'reportId' | 'reportIdMa' | 'chipId'
const BYTE_FIELDS: ReadonlyArray<readonly [BytesKey, number, number]> = [
  ['familyId', 0x010, 16], ['imageId', 0x020, 16], ['reportData', 0x050, 64], ['measurement', 0x090, 48],
  ['hostData', 0x0c0, 32], ['idKeyDigest', 0x0e0, 48], ['authorKeyDigest', 0x110, 48], ['reportId', 0x140, 32],
  ['reportIdMa', 0x160, 32], ['chipId', 0x1a0, 64]
]

// The layouts skr knows. VERSION selects the layout, so an unknown one is fatal: reading it with a
// known layout would be a guess (go-sev-guest af1c107 accepts 2..5 too; virtee/sev reads anything
// above 5 as 5). Version 4 exists in the field (GCP Milan firmware 1.55.31, virtee/sev PR #307) but
// its ABI is under AMD embargo; virtee and go-sev-guest read it with the v3 layout, and so do we:
// whatever v4 adds in 0x1F8..0x29F shows up in `unknownBytes` (docs/snp-report.md#layout-little-endian-offsets-in-hex).
const VERSIONS: ReadonlySet<number> = new Set([2, 3, 4, 5])

/** The KDS product of a CPUID family/model as stored in a v3+ report; null when not Milan/Genoa/Turin. */
export function generationFromCpuid (family: number, model: number): Generation | null {
  // Ranges as virtee/sev Generation::identify_cpu (Bergamo/Siena use the Genoa KDS product).
  if (family === 0x19) {
    if (model <= 0x0f) return 'Milan'
    if ((model >= 0x10 && model <= 0x1f) || (model >= 0xa0 && model <= 0xaf)) return 'Genoa'
    return null
  }
  if (family === 0x1a && model <= 0x11) return 'Turin'
  return null
}

// v2 reports carry no CPUID. Turin's CHIP_ID is 8 bytes, zero-padded to 64 (virtee
// chip_id_is_turin_like); an all-zero CHIP_ID is MASK_CHIP_ID and says nothing.
function chipIdLooksTurin (chipId: Buffer): boolean {
  return chipId.subarray(0, 8).some((b) => b !== 0) && chipId.subarray(8).every((b) => b === 0)
}

function checkGenerationOption (g: unknown): Generation | null {
  if (g === undefined) return null
  if (g === 'Milan' || g === 'Genoa' || g === 'Turin') return g
  throw new TypeError(`options.generation ${JSON.stringify(g)} is not Milan, Genoa or Turin`)
}

function checkSize (length: number): void {
  if (length !== REPORT_SIZE) {
    throw new ReportInvalid(`report size ${length}, want ${REPORT_SIZE} (SNP ABI 56860: ATTESTATION_REPORT is 4A0h bytes for versions 2..5)`,
      { details: { size: length, want: REPORT_SIZE } })
  }
}

function copyOut (raw: Buffer, offset: number, size: number): Buffer {
  const out = Buffer.alloc(size)
  raw.copy(out, 0, offset, offset + size)
  return out
}

// AMD stores R and S little-endian; P1363 wants big-endian.
function readSigInt (raw: Buffer, offset: number): Buffer {
  return copyOut(raw, offset, SIG_INT).reverse()
}

/**
 * Parses a 1184-byte report (a copy is taken first). Throws ReportInvalid only for a wrong size, an
 * unknown VERSION, or (SIGNATURE_ALGO 1) non-zero signature padding; reserved bits and bytes are
 * decoded into `unknownBits` / `unknownBytes` instead.
 */
export function parseReport (bytes: Uint8Array, options: { generation?: Generation } = {}): AttestationReport {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('report bytes must be a Uint8Array')
  const fallback = checkGenerationOption(options.generation)
  const raw = Buffer.alloc(bytes.length)
  raw.set(bytes)
  checkSize(raw.length)

  const version = raw.readUInt32LE(0x000)
  if (!VERSIONS.has(version)) {
    throw new ReportInvalid(`report version ${version}, want 2, 3, 4 or 5: the layout of version ${version} is unknown (SNP ABI 56860 ATTESTATION_REPORT VERSION)`,
      { details: { field: 'version', offset: 0x000 } })
  }
  const signatureAlgo = raw.readUInt32LE(0x034)
  checkSignatureFormat(raw, signatureAlgo)
  const policy = decodePolicy(raw.readBigUInt64LE(0x008))
  const platformInfo = decodePlatformInfo(raw.readBigUInt64LE(0x040))
  const signerInfo = decodeSignerInfo(raw.readUInt32LE(0x048))

  const bytesFields = Object.fromEntries(BYTE_FIELDS.map(([k, off, size]) => [k, copyOut(raw, off, size)])) as Record<BytesKey, Buffer>
  const cpuid = version >= 3
    ? { family: raw.readUInt8(0x188), model: raw.readUInt8(0x189), stepping: raw.readUInt8(0x18a) }
    : null
  let generation: Generation | null = null
  if (cpuid !== null) generation = generationFromCpuid(cpuid.family, cpuid.model)
  else if (chipIdLooksTurin(bytesFields.chipId)) generation = 'Turin'
  generation ??= fallback

  const currentTcb = raw.readBigUInt64LE(0x038)
  const reportedTcb = raw.readBigUInt64LE(0x180)
  const committedTcb = raw.readBigUInt64LE(0x1e0)
  const launchTcb = raw.readBigUInt64LE(0x1f0)
  const tcb = generation === null
    ? null
    : {
        current: decodeTcb(currentTcb, generation),
        reported: decodeTcb(reportedTcb, generation),
        committed: decodeTcb(committedTcb, generation),
        launch: decodeTcb(launchTcb, generation)
      }

  return {
    version,
    guestSvn: raw.readUInt32LE(0x004),
    policy,
    vmpl: raw.readUInt32LE(0x030),
    signatureAlgo,
    currentTcb,
    platformInfo,
    signerInfo,
    ...bytesFields,
    reportedTcb,
    cpuid,
    committedTcb,
    currentVersion: { major: raw.readUInt8(0x1ea), minor: raw.readUInt8(0x1e9), build: raw.readUInt8(0x1e8) },
    committedVersion: { major: raw.readUInt8(0x1ee), minor: raw.readUInt8(0x1ed), build: raw.readUInt8(0x1ec) },
    launchTcb,
    launchMitVector: version >= 5 ? raw.readBigUInt64LE(0x1f8) : null,
    currentMitVector: version >= 5 ? raw.readBigUInt64LE(0x200) : null,
    signature: { r: readSigInt(raw, R_OFFSET), s: readSigInt(raw, S_OFFSET) },
    unknownBytes: findUnknownBytes(raw, version, signatureAlgo),
    generation,
    tcb,
    raw
  }
}

function putVersion (out: Buffer, offset: number, v: FirmwareVersion, name: string): void {
  putInt(out, offset, v.build, 1, `${name}.build`)
  putInt(out, offset + 1, v.minor, 1, `${name}.minor`)
  putInt(out, offset + 2, v.major, 1, `${name}.major`)
}

/** Encodes report fields into 1184 bytes; the exact inverse of parseReport (for test doubles). */
export function serializeReport (fields: ReportFields): Buffer {
  const out = Buffer.alloc(REPORT_SIZE)
  const { version } = fields
  putInt(out, 0x000, version, 4, 'version')
  putInt(out, 0x004, fields.guestSvn, 4, 'guestSvn')
  putU64(out, 0x008, fields.policy, 'policy')
  putInt(out, 0x030, fields.vmpl, 4, 'vmpl')
  putInt(out, 0x034, fields.signatureAlgo, 4, 'signatureAlgo')
  putU64(out, 0x038, fields.currentTcb, 'currentTcb')
  putU64(out, 0x040, fields.platformInfo, 'platformInfo')
  putInt(out, 0x048, fields.signerInfo, 4, 'signerInfo')
  for (const [key, offset, size] of BYTE_FIELDS) {
    const value: unknown = fields[key]
    if (!(value instanceof Uint8Array) || value.length !== size) throw new TypeError(`${key} must be ${size} bytes`)
    out.set(value, offset)
  }
  putU64(out, 0x180, fields.reportedTcb, 'reportedTcb')
  if (fields.cpuid !== null) {
    if (version < 3) throw new TypeError(`cpuid exists from report version 3, version is ${version}`)
    putInt(out, 0x188, fields.cpuid.family, 1, 'cpuid.family')
    putInt(out, 0x189, fields.cpuid.model, 1, 'cpuid.model')
    putInt(out, 0x18a, fields.cpuid.stepping, 1, 'cpuid.stepping')
  }
  putU64(out, 0x1e0, fields.committedTcb, 'committedTcb')
  putVersion(out, 0x1e8, fields.currentVersion, 'currentVersion')
  putVersion(out, 0x1ec, fields.committedVersion, 'committedVersion')
  putU64(out, 0x1f0, fields.launchTcb, 'launchTcb')
  for (const [name, offset] of [['launchMitVector', 0x1f8], ['currentMitVector', 0x200]] as const) {
    const value = fields[name]
    if (value === null) continue
    if (version < 5) throw new TypeError(`${name} exists from report version 5, version is ${version}`)
    putU64(out, offset, value, name)
  }
  writeSignature(out, signatureP1363(fields))
  putUnknownBytes(out, fields.unknownBytes ?? [], version, fields.signatureAlgo)
  return out
}

// Each entry must be exactly one reserved range parseReport would report for this version and
// algorithm, so serializeReport stays the inverse of parseReport (and cannot overwrite a field).
function putUnknownBytes (out: Buffer, entries: readonly UnknownBytes[], version: number, signatureAlgo: number): void {
  const ranges = keptRanges(version, signatureAlgo)
  for (const u of entries) {
    const range = ranges.find(([start, end]) => u.offset === start && u.bytes instanceof Uint8Array && u.bytes.length === end - start)
    if (range === undefined) {
      throw new TypeError(`unknownBytes at ${String(u.offset)} is not a whole reserved range of a version ${version} report with SIGNATURE_ALGO ${signatureAlgo}`)
    }
    out.set(u.bytes, u.offset)
  }
}

/** Writes a 96-byte big-endian r||s into the report's little-endian R and S fields (upper bytes zeroed). */
export function writeSignature (report: Buffer, p1363: Uint8Array): void {
  if (!(report instanceof Uint8Array) || report.length !== REPORT_SIZE) throw new TypeError(`report must be ${REPORT_SIZE} bytes`)
  if (!(p1363 instanceof Uint8Array) || p1363.length !== 2 * SIG_INT) throw new TypeError(`signature must be ${2 * SIG_INT} bytes r||s`)
  report.fill(0, R_OFFSET, SIG_END)
  report.set(Buffer.from(p1363.subarray(0, SIG_INT)).reverse(), R_OFFSET)
  report.set(Buffer.from(p1363.subarray(SIG_INT)).reverse(), S_OFFSET)
}

/** The report's signature as 96 bytes r||s big-endian (IEEE-P1363, for crypto.verify). */
export function signatureP1363 (report: Pick<AttestationReport, 'signature'>): Buffer {
  const { r, s } = report.signature
  if (!(r instanceof Uint8Array) || r.length !== SIG_INT || !(s instanceof Uint8Array) || s.length !== SIG_INT) {
    throw new TypeError(`signature r and s must be ${SIG_INT} bytes each`)
  }
  return Buffer.concat([r, s])
}

/** A copy of the bytes the signature covers, raw[0..0x2A0); throws ReportInvalid unless 1184 bytes. */
export function signedBytes (raw: Uint8Array): Buffer {
  if (!(raw instanceof Uint8Array)) throw new TypeError('report bytes must be a Uint8Array')
  checkSize(raw.length)
  return Buffer.from(raw.subarray(0, SIGNED_SIZE))
}
