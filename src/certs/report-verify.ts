// Verifies an attestation report against its AMD chain (docs/sev-snp.md#verifying-a-report):
// the chain to a pinned ARK, the ECDSA P-384 signature over the raw bytes, and the binding of
// the VCEK to the report (TCB and chip). Policy on the report's contents (debug, measurement,
// report data, and reserved bits or bytes newer firmware sets: `unknownBits` / `unknownBytes`) is
// validation's job, not this module's: a genuine, correctly signed report verifies here whatever
// reserved bits it sets (issue 12; docs/snp-report.md).
import { verify as cryptoVerify } from 'node:crypto'
import { verifyAmdChain } from './amd-chain.ts'
import type { AmdChain, ChainVerification, ChainVerifyOptions } from './amd-chain.ts'
import { extensionsTcb } from './vcek-ext.ts'
import type { AmdCertExtensions } from './vcek-ext.ts'
import { ReportUnverified } from '../errors.ts'
import { parseReport, signatureP1363, signedBytes } from '../snp/abi.ts'
import type { AttestationReport } from '../snp/abi.ts'
import { decodeTcb, tcbPartsEqual, tcbToHex } from '../snp/tcb.ts'
import type { Generation, TcbParts } from '../snp/tcb.ts'

/** Chain options plus the generation to assume for a v2 report whose CPU the report cannot tell. */
export interface VerifyReportOptions extends ChainVerifyOptions {
  generation?: Generation
}

/** A report whose signature, chain and VCEK binding all verified. */
export interface VerifiedReport {
  report: AttestationReport
  chain: ChainVerification
}

// SIGNATURE_ALGO 1 = ECDSA P-384 with SHA-384 (SNP ABI 56860 "Signature Algorithm" table), the only one defined.
const ECDSA_P384_SHA384 = 1

function unverified (check: string, message: string, details: Record<string, string | number> = {}): ReportUnverified {
  return new ReportUnverified(message, { details: { check, ...details } })
}

function showTcb (parts: TcbParts): string {
  const fmc = parts.fmc === null ? '' : `fmc ${parts.fmc}, `
  return `${fmc}bl ${parts.bootloader}, tee ${parts.tee}, snp ${parts.snp}, ucode ${parts.microcode}`
}

/** REPORTED_TCB against the TCB a VCEK/VLEK certifies, both decoded with the generation's layout. */
export function compareTcb (reportedTcb: bigint, ext: AmdCertExtensions, generation: Generation): { equal: boolean, reported: TcbParts, certified: TcbParts } {
  const reported = decodeTcb(reportedTcb, generation)
  const certified = extensionsTcb(ext, generation)
  return { equal: tcbPartsEqual(reported, certified), reported, certified }
}

function effectiveGeneration (report: AttestationReport, chain: ChainVerification): Generation {
  const fromReport = report.generation
  const fromCert = chain.generation
  if (fromReport !== null && fromCert !== null && fromReport !== fromCert) {
    throw unverified('generation', `report is from a ${fromReport} CPU but its certificate is for ${fromCert}`)
  }
  const generation = fromReport ?? fromCert
  if (generation === null) {
    throw unverified('generation', 'CPU generation is unknown: the report has no CPUID and the certificate no known productName; pass options.generation')
  }
  return generation
}

function checkSignature (report: AttestationReport, chain: AmdChain): void {
  if (report.signatureAlgo !== ECDSA_P384_SHA384) {
    throw unverified('signatureAlgo', `report SIGNATURE_ALGO is ${report.signatureAlgo}, want ${ECDSA_P384_SHA384} (ECDSA P-384 SHA-384)`)
  }
  let ok: boolean
  try {
    ok = cryptoVerify('sha384', signedBytes(report.raw), { key: chain.vcek.publicKey, dsaEncoding: 'ieee-p1363' }, signatureP1363(report))
  } catch {
    ok = false
  }
  if (!ok) {
    // With MASK_CHIP_KEY=1 the firmware may not sign with the chip key at all (virtee/sev KeyInfo
    // says it writes zeros instead; not confirmed against 56860), so the message names the bit.
    const masked = report.signerInfo.maskChipKey ? ' (MASK_CHIP_KEY is set: the platform may not sign with its chip key)' : ''
    throw unverified('signature', `report signature does not verify under the VCEK${masked}`)
  }
}

// A masked CHIP_ID says nothing about the chip, so the hwID binding cannot be checked; the report is
// then only as chip-bound as the source of the VCEK (the host or THIM, not the report) is trusted.
function checkChip (report: AttestationReport, ext: AmdCertExtensions, generation: Generation): void {
  if (report.chipId.every((b) => b === 0)) return
  const hwId = ext.hwId
  if (hwId === null) throw unverified('hwId', 'VCEK has no hwID extension to match the report CHIP_ID')
  // Turin VCEKs certify only the first 8 bytes of the CHIP_ID.
  const expected = hwId.length === 8 && generation === 'Turin' ? report.chipId.subarray(0, 8) : report.chipId
  if (!hwId.equals(expected)) {
    throw unverified('hwId', `VCEK hwID (${hwId.length} bytes) does not match the report CHIP_ID: the VCEK is for another chip`)
  }
}

/**
 * Verifies a report end to end: parses it (ReportInvalid), verifies the chain (CertChainInvalid),
 * then signer kind, SIGNATURE_ALGO, the ECDSA P-384 signature over the raw bytes 0..0x2A0, the
 * certified TCB == REPORTED_TCB and, for a VCEK, hwID == CHIP_ID; those throw ReportUnverified
 * (details.check names the failed check). The hwID check is skipped when CHIP_ID is all zero
 * (MASK_CHIP_ID): then nothing in the report names the chip.
 */
export function verifyReport (reportBytes: Uint8Array, chain: AmdChain, options: VerifyReportOptions = {}): VerifiedReport {
  const report = parseReport(reportBytes, options.generation === undefined ? {} : { generation: options.generation })
  const verified = verifyAmdChain(chain, options)

  const signer = report.signerInfo.signingKey
  if (signer === 'none') throw unverified('signer', 'report is unsigned (SIGNING_KEY 7)')
  if (signer === 'reserved') {
    throw unverified('signer', `report SIGNING_KEY is ${report.signerInfo.signingKeyValue}, a value SNP ABI 56860 reserves: no key skr knows signed it`)
  }
  if (signer !== verified.signingKey) {
    throw unverified('signer', `report is signed with the ${signer.toUpperCase()} but the certificate is a ${verified.signingKey.toUpperCase()}`)
  }
  checkSignature(report, chain)

  const generation = effectiveGeneration(report, verified)
  const tcb = compareTcb(report.reportedTcb, verified.extensions, generation)
  if (!tcb.equal) {
    throw unverified('tcb',
      `report REPORTED_TCB ${tcbToHex(report.reportedTcb)} (${showTcb(tcb.reported)}) differs from the certificate's TCB (${showTcb(tcb.certified)})`,
      { reportedTcb: tcbToHex(report.reportedTcb) })
  }
  if (verified.signingKey === 'vcek') checkChip(report, verified.extensions, generation)
  return { report, chain: verified }
}
