// Offline verification of a report and its AMD chain for `skr verify`, check by check, so the
// user sees everything that passed and everything that failed rather than the first failure
// (docs/sev-snp.md#verifying-a-report). The hardware checks use the same primitives as
// src/certs/report-verify.ts, and when they all pass verifyReport itself must agree, so this report can
// never say "pass" where the sidecar's own verifier would refuse. Reserved bits and bytes a genuine
// report sets (newer firmware, issue 12) are a 'warn' check by default and a 'fail' only when the
// caller's policy says so (refuseUnknown). Pure: the clock is an input.
import { verify as cryptoVerify } from 'node:crypto'
import { verifyAmdChain, type AmdChain, type ChainVerification } from '../certs/amd-chain.ts'
import { generationFromProductName, parseAmdExtensions, type AmdCertExtensions } from '../certs/vcek-ext.ts'
import { parseReport, signatureP1363, signedBytes, unknownFields, type AttestationReport } from '../snp/abi.ts'
import { tcbToHex, type Generation, type TcbParts } from '../snp/tcb.ts'
import { compareTcb, verifyReport } from '../certs/report-verify.ts'

/** The outcome of one check; 'warn' is shown but does not fail the verification. */
export type CheckStatus = 'pass' | 'fail' | 'skip' | 'warn'

/** One line of the verification report. */
export interface Check { name: string, status: CheckStatus, detail: string }

/** What to verify against. */
export interface OfflineVerifyOptions {
  trustedArkFingerprints: readonly string[]
  now: Date
  /** Refuse a report whose POLICY allows debugging unless this is true. */
  allowDebug: boolean
  /** Fail (instead of warn) when the report sets a reserved bit or byte, or a reserved SIGNING_KEY / SIGNATURE_ALGO value. */
  refuseUnknown?: boolean
  expectHostData?: Buffer
  expectMeasurement?: Buffer
  /** Compared with the first bytes of REPORT_DATA; the rest must be zero (as reportDataFor pads). */
  expectReportData?: Buffer
  /** THIM's tcbm when the chain came from a THIM document. */
  tcbm?: bigint | null
}

/** Every check, the decoded report (null when it did not parse) and the verdict. */
export interface OfflineVerification { ok: boolean, checks: Check[], report: AttestationReport | null }

const ECDSA_P384_SHA384 = 1

function message (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function showTcb (parts: TcbParts): string {
  return `${parts.fmc === null ? '' : `fmc ${parts.fmc}, `}bl ${parts.bootloader}, tee ${parts.tee}, snp ${parts.snp}, ucode ${parts.microcode}`
}

function signatureCheck (report: AttestationReport, chain: AmdChain): Check {
  if (report.signerInfo.signingKey === 'none') return { name: 'signature', status: 'fail', detail: 'report is unsigned (SIGNING_KEY 7)' }
  if (report.signerInfo.signingKey === 'reserved') {
    return { name: 'signature', status: 'fail', detail: `SIGNING_KEY is ${report.signerInfo.signingKeyValue}, a reserved value: no key skr knows signed the report` }
  }
  if (report.signatureAlgo !== ECDSA_P384_SHA384) {
    return { name: 'signature', status: 'fail', detail: `SIGNATURE_ALGO is ${report.signatureAlgo}, want 1 (ECDSA P-384 SHA-384)` }
  }
  let ok = false
  try {
    ok = cryptoVerify('sha384', signedBytes(report.raw), { key: chain.vcek.publicKey, dsaEncoding: 'ieee-p1363' }, signatureP1363(report))
  } catch {
    // A key that cannot check this signature at all: the signature does not verify.
  }
  const masked = report.signerInfo.maskChipKey ? ' (MASK_CHIP_KEY is set: the platform may not sign with its chip key)' : ''
  return ok
    ? { name: 'signature', status: 'pass', detail: `ECDSA P-384 SHA-384 over bytes 0x000..0x29F verifies under the ${report.signerInfo.signingKey.toUpperCase()}` }
    : { name: 'signature', status: 'fail', detail: `report signature does not verify under the ${report.signerInfo.signingKey.toUpperCase()} certificate${masked}` }
}

// Reserved bits and bytes are AMD's when the signature verifies: newer firmware than the ABI
// revision skr follows. They are shown, and refused only when the caller asks (docs/snp-report.md).
function unknownCheck (report: AttestationReport, refuse: boolean): Check {
  const unknown = unknownFields(report)
  if (unknown.length === 0) return { name: 'unknown-fields', status: 'pass', detail: 'no reserved bit, byte or value is set' }
  const what = unknown.join('; ')
  return refuse
    ? { name: 'unknown-fields', status: 'fail', detail: `${what} (refused: --refuse-unknown)` }
    : { name: 'unknown-fields', status: 'warn', detail: `${what}: newer than the SNP ABI revision skr decodes; accepted (pass --refuse-unknown to refuse)` }
}

function generationOf (report: AttestationReport, ext: AmdCertExtensions): Generation | null {
  return report.generation ?? (ext.productName === null ? null : generationFromProductName(ext.productName))
}

function tcbCheck (report: AttestationReport, ext: AmdCertExtensions | null, chain: ChainVerification | null): Check {
  if (ext === null) return { name: 'tcb', status: 'skip', detail: 'the VCEK extensions cannot be read' }
  const generation = generationOf(report, ext) ?? chain?.generation ?? null
  if (generation === null) return { name: 'tcb', status: 'fail', detail: 'CPU generation unknown (no CPUID in the report, no known productName in the VCEK)' }
  try {
    const { equal, reported, certified } = compareTcb(report.reportedTcb, ext, generation)
    return equal
      ? { name: 'tcb', status: 'pass', detail: `REPORTED_TCB ${tcbToHex(report.reportedTcb)} (${showTcb(reported)}) is the VCEK's TCB (${generation})` }
      : { name: 'tcb', status: 'fail', detail: `REPORTED_TCB ${tcbToHex(report.reportedTcb)} (${showTcb(reported)}) differs from the VCEK's TCB (${showTcb(certified)})` }
  } catch (err) {
    return { name: 'tcb', status: 'fail', detail: message(err) }
  }
}

function chipCheck (report: AttestationReport, ext: AmdCertExtensions | null): Check {
  if (report.signerInfo.signingKey === 'vlek') return { name: 'chip-id', status: 'skip', detail: 'a VLEK is not bound to one chip' }
  if (report.signerInfo.signingKey === 'reserved') return { name: 'chip-id', status: 'skip', detail: 'the signing key is unknown (reserved SIGNING_KEY)' }
  if (report.chipId.every((b) => b === 0)) return { name: 'chip-id', status: 'skip', detail: 'CHIP_ID is masked (all zero): the report does not name its chip' }
  if (ext === null) return { name: 'chip-id', status: 'skip', detail: 'the VCEK extensions cannot be read' }
  if (ext.hwId === null) return { name: 'chip-id', status: 'fail', detail: 'the VCEK has no hwID extension' }
  const expected = ext.hwId.length === 8 ? report.chipId.subarray(0, 8) : report.chipId
  return ext.hwId.equals(expected)
    ? { name: 'chip-id', status: 'pass', detail: `VCEK hwID equals CHIP_ID (${ext.hwId.length} bytes)` }
    : { name: 'chip-id', status: 'fail', detail: 'VCEK hwID differs from CHIP_ID: the certificate is for another chip' }
}

function expectCheck (name: string, field: string, actual: Buffer, expected: Buffer | undefined): Check {
  if (expected === undefined) return { name, status: 'skip', detail: `not requested (--expect-${name})` }
  if (expected.length > actual.length) return { name, status: 'fail', detail: `expected value is ${expected.length} bytes, ${field} has ${actual.length}` }
  const padded = Buffer.alloc(actual.length)
  expected.copy(padded)
  return padded.equals(actual)
    ? { name, status: 'pass', detail: `${field} is the expected value` }
    : { name, status: 'fail', detail: `${field} ${actual.toString('hex')} is not the expected ${padded.toString('hex')}` }
}

/** Runs every check; `ok` only when none failed. */
export function verifyOffline (reportBytes: Uint8Array, chain: AmdChain, options: OfflineVerifyOptions): OfflineVerification {
  const checks: Check[] = []
  let report: AttestationReport
  try {
    report = parseReport(reportBytes)
    const signer = report.signerInfo.signingKey === 'reserved' ? `reserved SIGNING_KEY ${report.signerInfo.signingKeyValue}` : report.signerInfo.signingKey.toUpperCase()
    checks.push({ name: 'report', status: 'pass', detail: `version ${report.version}, ${report.raw.length} bytes, signed by ${signer}` })
  } catch (err) {
    checks.push({ name: 'report', status: 'fail', detail: message(err) })
    return { ok: false, checks, report: null }
  }

  let verified: ChainVerification | null = null
  try {
    verified = verifyAmdChain(chain, { trustedArkFingerprints: options.trustedArkFingerprints, now: options.now })
    checks.push({ name: 'chain', status: 'pass', detail: `${verified.signingKey.toUpperCase()} ← ${verified.signingKey === 'vcek' ? 'ASK' : 'ASVK'} ← ARK (pinned ${chain.ark.fingerprint256}), valid at ${options.now.toISOString()}` })
  } catch (err) {
    checks.push({ name: 'chain', status: 'fail', detail: message(err) })
  }
  if (verified !== null && verified.signingKey !== report.signerInfo.signingKey && report.signerInfo.signingKey !== 'reserved') {
    checks.push({ name: 'signer', status: 'fail', detail: `report is signed with the ${report.signerInfo.signingKey.toUpperCase()} but the certificate is a ${verified.signingKey.toUpperCase()}` })
  }
  checks.push(signatureCheck(report, chain))
  let ext: AmdCertExtensions | null = null
  try {
    ext = verified?.extensions ?? parseAmdExtensions(chain.vcek)
  } catch {
    // Malformed extensions: the TCB and chip checks say they cannot be read.
  }
  checks.push(tcbCheck(report, ext, verified))
  checks.push(chipCheck(report, ext))
  if (options.tcbm !== undefined && options.tcbm !== null) {
    checks.push(options.tcbm === report.reportedTcb
      ? { name: 'thim-tcbm', status: 'pass', detail: `THIM tcbm ${tcbToHex(options.tcbm)} equals REPORTED_TCB` }
      : { name: 'thim-tcbm', status: 'fail', detail: `THIM tcbm ${tcbToHex(options.tcbm)} differs from REPORTED_TCB ${tcbToHex(report.reportedTcb)}` })
  }
  checks.push(unknownCheck(report, options.refuseUnknown === true))
  checks.push(!report.policy.debug
    ? { name: 'debug', status: 'pass', detail: 'POLICY.DEBUG is 0: the host cannot debug the guest' }
    : options.allowDebug
      ? { name: 'debug', status: 'pass', detail: 'POLICY.DEBUG is 1 (the host can read guest memory): accepted because of --allow-debug' }
      : { name: 'debug', status: 'fail', detail: 'POLICY.DEBUG is 1: the host can read guest memory (pass --allow-debug to accept)' })
  checks.push(expectCheck('host-data', 'HOST_DATA', report.hostData, options.expectHostData))
  checks.push(expectCheck('measurement', 'MEASUREMENT', report.measurement, options.expectMeasurement))
  checks.push(expectCheck('report-data', 'REPORT_DATA', report.reportData, options.expectReportData))

  let ok = checks.every((c) => c.status !== 'fail')
  if (ok) {
    try {
      verifyReport(report.raw, chain, { trustedArkFingerprints: options.trustedArkFingerprints, now: options.now })
    } catch (err) {
      // Should not happen: the checks above are verifyReport's. If they ever drift, fail closed.
      checks.push({ name: 'consistency', status: 'fail', detail: `the sidecar's verifier refuses the report: ${message(err)}` })
      ok = false
    }
  }
  return { ok, checks, report }
}
