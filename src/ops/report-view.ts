// A decoded attestation report as operators read it: every field of ATTESTATION_REPORT (SNP ABI
// 56860 "ATTESTATION_REPORT Structure"; docs/snp-report.md) as a JSON-able object (byte fields and
// 64-bit words as hex strings, TCBs also split into their patch levels) and as a two-column text
// table. Reserved bits and bytes a report sets are shown, never hidden: each word's `unknownBits`,
// the `unknownBytes` ranges, and the `unknown` summary lines. Also accepts the forms reports are
// saved in (raw 1184 bytes, hex text, base64). Pure.
import { createHash } from 'node:crypto'
import { ReportInvalid } from '../errors.ts'
import {
  REPORT_SIZE, unknownFields, type AttestationReport, type FirmwareVersion, type GuestPolicy, type PlatformInfo, type SignerInfo
} from '../snp/abi.ts'
import { tcbToHex, type TcbParts } from '../snp/tcb.ts'

/** A TCB_VERSION: `raw` as THIM's `tcbm` (16 hex digits, most significant first) and its parts (null when the generation is unknown). */
export interface TcbView { raw: string, parts: TcbParts | null }

/** A decoded bit-field word with its raw value and its unknown (reserved, set) bits as hex strings. */
export type WordView<T extends { raw: bigint | number, unknownBits: bigint | number }> = Omit<T, 'raw' | 'unknownBits'> & { raw: string, unknownBits: string }

/** A reserved byte range that holds non-zero bytes. */
export interface UnknownBytesView { offset: string, end: string, hex: string, signed: boolean }

/** The JSON form of a report; every bigint is a hex string. */
export interface ReportView {
  version: number
  guestSvn: number
  /** The decoded words of snp/report-fields.ts, with `raw` as hex. */
  policy: WordView<GuestPolicy>
  familyId: string
  imageId: string
  vmpl: number
  signatureAlgo: number
  signatureAlgoName: string
  platformInfo: WordView<PlatformInfo>
  signer: WordView<SignerInfo>
  generation: string | null
  cpuid: { family: string, model: string, stepping: string } | null
  tcb: { current: TcbView, reported: TcbView, committed: TcbView, launch: TcbView }
  firmware: { current: string, committed: string }
  reportData: string
  measurement: string
  hostData: string
  idKeyDigest: string
  authorKeyDigest: string
  reportId: string
  reportIdMa: string
  chipId: string
  launchMitVector: string | null
  currentMitVector: string | null
  signature: { r: string, s: string }
  /** Reserved byte ranges holding non-zero bytes; [] for a report that uses none. */
  unknownBytes: UnknownBytesView[]
  /** One line per field, bit or byte range the ABI revision skr follows does not define; [] normally. */
  unknown: string[]
  /** SHA-256 of the 1184 raw bytes: the identifier skr's logs use for a report. */
  sha256: string
}

const ALGORITHMS: Readonly<Record<number, string>> = { 1: 'ECDSA P-384 with SHA-384' }

function word (value: bigint): string {
  return `0x${value.toString(16).padStart(16, '0')}`
}

function byte (value: number): string {
  return `0x${value.toString(16).padStart(2, '0')}`
}

function offset (value: number): string {
  return `0x${value.toString(16).toUpperCase().padStart(3, '0')}`
}

function bits (value: bigint | number): string {
  return `0x${value.toString(16)}`
}

function version (v: FirmwareVersion): string {
  return `${v.major}.${v.minor}.${v.build}`
}

/** The JSON-able view of a parsed report. */
export function reportView (report: AttestationReport): ReportView {
  const tcb = (raw: bigint, parts: TcbParts | undefined): TcbView => ({ raw: tcbToHex(raw), parts: parts ?? null })
  const { policy: p, platformInfo: pi, signerInfo: si } = report
  const { raw: _raw, abiMajor: _abiMajor, unknownBits: policyUnknown, ...policyRest } = p
  return {
    version: report.version,
    guestSvn: report.guestSvn,
    // The JSON has always listed abiMajor before abiMinor; its key order stays stable for diffs.
    policy: { raw: word(p.raw), abiMajor: p.abiMajor, ...policyRest, unknownBits: bits(policyUnknown) },
    familyId: report.familyId.toString('hex'),
    imageId: report.imageId.toString('hex'),
    vmpl: report.vmpl,
    signatureAlgo: report.signatureAlgo,
    signatureAlgoName: ALGORITHMS[report.signatureAlgo] ?? 'unknown',
    platformInfo: { ...pi, raw: word(pi.raw), unknownBits: bits(pi.unknownBits) },
    signer: { ...si, raw: `0x${si.raw.toString(16).padStart(8, '0')}`, unknownBits: bits(si.unknownBits) },
    generation: report.generation,
    cpuid: report.cpuid === null ? null : { family: byte(report.cpuid.family), model: byte(report.cpuid.model), stepping: byte(report.cpuid.stepping) },
    tcb: {
      current: tcb(report.currentTcb, report.tcb?.current),
      reported: tcb(report.reportedTcb, report.tcb?.reported),
      committed: tcb(report.committedTcb, report.tcb?.committed),
      launch: tcb(report.launchTcb, report.tcb?.launch)
    },
    firmware: { current: version(report.currentVersion), committed: version(report.committedVersion) },
    reportData: report.reportData.toString('hex'),
    measurement: report.measurement.toString('hex'),
    hostData: report.hostData.toString('hex'),
    idKeyDigest: report.idKeyDigest.toString('hex'),
    authorKeyDigest: report.authorKeyDigest.toString('hex'),
    reportId: report.reportId.toString('hex'),
    reportIdMa: report.reportIdMa.toString('hex'),
    chipId: report.chipId.toString('hex'),
    launchMitVector: report.launchMitVector === null ? null : word(report.launchMitVector),
    currentMitVector: report.currentMitVector === null ? null : word(report.currentMitVector),
    signature: { r: report.signature.r.toString('hex'), s: report.signature.s.toString('hex') },
    unknownBytes: report.unknownBytes.map((u) => ({
      offset: offset(u.offset), end: offset(u.offset + u.bytes.length), hex: u.bytes.toString('hex'), signed: u.signed
    })),
    unknown: unknownFields(report),
    sha256: createHash('sha256').update(report.raw).digest('hex')
  }
}

function yesNo (b: boolean): string {
  return b ? 'yes' : 'no'
}

function unknownText (hex: string): string {
  return hex === '0x0' ? 'none' : hex
}

function signerText (s: ReportView['signer']): string {
  const key = s.signingKey === 'reserved' ? `SIGNING_KEY ${s.signingKeyValue}, reserved` : s.signingKey.toUpperCase()
  const extra = s.unknownBits === '0x0' ? '' : `, reserved bits ${s.unknownBits}`
  return `${s.raw} (${key}, author key ${yesNo(s.authorKeyEn)}, mask chip key ${yesNo(s.maskChipKey)}${extra})`
}

function tcbText (t: TcbView): string {
  if (t.parts === null) return `${t.raw} (generation unknown)`
  const fmc = t.parts.fmc === null ? '' : `fmc ${t.parts.fmc}, `
  return `${t.raw} (${fmc}bl ${t.parts.bootloader}, tee ${t.parts.tee}, snp ${t.parts.snp}, ucode ${t.parts.microcode})`
}

/** The rows of the human table: [label, value]; sub-fields are indented two spaces. */
export function reportRows (v: ReportView): Array<[string, string]> {
  const p = v.policy
  const pi = v.platformInfo
  return [
    ['version', String(v.version)],
    ['guest svn', String(v.guestSvn)],
    ['policy', v.policy.raw],
    ['  abi (minimum)', `${p.abiMajor}.${p.abiMinor}`],
    ['  smt allowed', yesNo(p.smt)],
    ['  migrate-ma allowed', yesNo(p.migrateMa)],
    ['  debug allowed', yesNo(p.debug)],
    ['  single socket', yesNo(p.singleSocket)],
    ['  cxl allowed', yesNo(p.cxlAllow)],
    ['  aes-256-xts required', yesNo(p.memAes256Xts)],
    ['  rapl disabled', yesNo(p.raplDis)],
    ['  ciphertext hiding', yesNo(p.ciphertextHiding)],
    ['  page swap disabled', yesNo(p.pageSwapDisable)],
    ['  unknown bits', unknownText(p.unknownBits)],
    ['family id', v.familyId],
    ['image id', v.imageId],
    ['vmpl', String(v.vmpl)],
    ['signature algo', `${v.signatureAlgo} (${v.signatureAlgoName})`],
    ['platform info', pi.raw],
    ['  smt enabled', yesNo(pi.smtEnabled)],
    ['  tsme enabled', yesNo(pi.tsmeEnabled)],
    ['  ecc enabled', yesNo(pi.eccEnabled)],
    ['  rapl disabled', yesNo(pi.raplDisabled)],
    ['  ciphertext hiding', yesNo(pi.ciphertextHidingEnabled)],
    ['  alias check complete', yesNo(pi.aliasCheckComplete)],
    // Bit 6's name comes from one Turin-tracking fork only (snp/report-fields.ts): the label says so.
    ['  iommu write safe (bit 6)', yesNo(pi.iommuWriteSafe)],
    ['  sev-tio enabled', yesNo(pi.tioEnabled)],
    ['  unknown bits', unknownText(pi.unknownBits)],
    ['signer', signerText(v.signer)],
    ['generation', v.generation ?? 'unknown'],
    ['cpuid', v.cpuid === null ? 'n/a (report version 2)' : `family ${v.cpuid.family}, model ${v.cpuid.model}, stepping ${v.cpuid.stepping}`],
    ['current tcb', tcbText(v.tcb.current)],
    ['reported tcb', tcbText(v.tcb.reported)],
    ['committed tcb', tcbText(v.tcb.committed)],
    ['launch tcb', tcbText(v.tcb.launch)],
    ['firmware current', v.firmware.current],
    ['firmware committed', v.firmware.committed],
    ['report data', v.reportData],
    ['measurement', v.measurement],
    ['host data', v.hostData],
    ['id key digest', v.idKeyDigest],
    ['author key digest', v.authorKeyDigest],
    ['report id', v.reportId],
    ['report id ma', v.reportIdMa],
    ['chip id', v.chipId],
    ['launch mit vector', v.launchMitVector ?? 'n/a (report version < 5)'],
    ['current mit vector', v.currentMitVector ?? 'n/a (report version < 5)'],
    ['signature r', v.signature.r],
    ['signature s', v.signature.s],
    ['unknown fields', v.unknown.length === 0 ? 'none' : v.unknown.join('; ')],
    ['sha256', v.sha256]
  ]
}

/** Renders rows as an aligned two-column table. */
export function formatTable (rows: ReadonlyArray<readonly [string, string]>): string {
  const width = Math.max(...rows.map(([label]) => label.length))
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join('\n') + '\n'
}

/** The human table of a report view. */
export function formatReportTable (view: ReportView): string {
  return formatTable(reportRows(view))
}

const HEX_TEXT = /^[0-9a-fA-F]+$/
const B64_TEXT = /^[A-Za-z0-9+/_-]+={0,2}$/

/**
 * The 1184 report bytes from a file's contents: raw binary, hex text (whitespace ignored, as
 * virtee and `xxd -p` write it) or base64 (as `/attest/raw` answers carry it). Throws
 * ReportInvalid saying what was found.
 */
export function decodeReportInput (bytes: Buffer): Buffer {
  if (bytes.length === REPORT_SIZE) return Buffer.from(bytes)
  const text = bytes.toString('latin1').replace(/\s+/g, '')
  if (text.length === 2 * REPORT_SIZE && HEX_TEXT.test(text)) return Buffer.from(text, 'hex')
  if (B64_TEXT.test(text)) {
    const decoded = Buffer.from(text, /[-_]/.test(text) ? 'base64url' : 'base64')
    if (decoded.length === REPORT_SIZE) return decoded
  }
  throw new ReportInvalid(`input is ${bytes.length} bytes: not a ${REPORT_SIZE}-byte report, nor ${2 * REPORT_SIZE} hex digits, nor base64 of ${REPORT_SIZE} bytes`,
    { details: { size: bytes.length } })
}
