// The MAA emulator's appraisal: what MAA checks in a SevSnpVm attest request and the claims it then
// issues (docs/protocols.md#maa-attest-request, docs/protocols.md#maa-token-claims, docs/protocols.md#test-doubles). Pure: text and options in, claims or a typed error
// out; the HTTPS service, the clock's source and the signing live in maa.ts.
import { createHash } from 'node:crypto'
import { parseBundlePem } from '../certs/amd-chain.ts'
import { decodeBase64Flexible } from '../encoding/base64.ts'
import { RequestInvalid } from '../errors.ts'
import { isObject } from '../text/untrusted.ts'
import type { AttestationReport } from '../snp/abi.ts'
import { decodeTcb } from '../snp/tcb.ts'
import type { Generation } from '../snp/tcb.ts'
import { verifyReport } from '../certs/report-verify.ts'
import { verifyUvmReferenceInfo } from '../uvm/reference-info.ts'
import type { TransparencyKey } from '../uvm/transparency-receipt.ts'

/** Runtime or init-time data as sent: the bytes and how MAA is asked to read them. */
export interface AttestedData { bytes: Buffer, dataType: 'JSON' | 'Binary' }

/** The fields of an attest body, decoded but not yet appraised. */
export interface AttestRequest {
  report: Buffer
  vcekCertChainPem: string
  uvmEndorsements: Buffer[] | null
  runtimeData: AttestedData | null
  initTimeData: AttestedData | null
  /** The nonce exactly as sent (decimal text of a JSON number, or the JSON string), or null. */
  nonce: string | null
}

/** What appraisal needs besides the request: trust anchors, the clock and the endorsement rule. */
export interface AppraisalOptions {
  trustedArkFingerprints: readonly string[]
  trustedUvmRootFingerprints?: readonly string[]
  trustedTransparencyKeys?: readonly TransparencyKey[]
  now: Date
  requireUvmEndorsement: boolean
}

/** Evidence that passed appraisal. */
export interface Appraisal {
  report: AttestationReport
  /** The CPU generation from the report, else from its VCEK chain; null when neither tells. */
  generation: Generation | null
  runtime: Record<string, unknown> | null
  initTime: Record<string, unknown> | null
  endorsement: { guestSvn: string | null, launchMeasurement: string } | null
  nonce: string | null
}

/** Token metadata: issuer, issue time, lifetime and a unique id. */
export interface TokenFacts { issuer: string, now: Date, lifetimeSeconds: number, jti: string }

/** The policy the emulator stands for (MAA's permit-all default shape); only its hash appears in tokens. */
export const DEFAULT_POLICY_TEXT = 'version= 1.0;authorizationrules{=> permit();};issuancerules{};'

/** x-ms-policy-hash: BASE64URL(SHA256(UTF8(BASE64URL(UTF8(policy text))))) (MAA claim-sets). */
export function policyHash (policyText: string): string {
  const encoded = Buffer.from(policyText, 'utf8').toString('base64url')
  return createHash('sha256').update(encoded, 'utf8').digest('base64url')
}

const bad = (field: string, message: string): RequestInvalid => new RequestInvalid(message, { details: { field } })

function b64 (value: unknown, field: string, allowEmpty = false): Buffer {
  if (typeof value !== 'string' || (!allowEmpty && value === '')) throw bad(field, `${field} is not a non-empty base64 string`)
  const bytes = decodeBase64Flexible(value)
  if (bytes === null) throw bad(field, `${field} is not valid base64/base64url`)
  return bytes
}

function jsonOf (bytes: Buffer, field: string): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch {
    throw bad(field, `${field} is not UTF-8 JSON`)
  }
}

const U64_TEXT = /^(0|[1-9][0-9]{0,19})$/
const U64_MAX = (1n << 64n) - 1n

// JSON.parse turns 2^64-1 into 18446744073709552000; the reviver's context.source (Node >= 21)
// still has the digits the reference sent.
function parseBody (text: string): { root: Record<string, unknown>, nonceSource: string | undefined } {
  const sources = new Map<unknown, string>()
  let root: unknown
  try {
    root = JSON.parse(text, function (this: unknown, key: string, value: unknown, context?: { source?: string }) {
      if (key === 'nonce' && typeof value === 'number' && typeof context?.source === 'string') sources.set(this, context.source)
      return value
    })
  } catch {
    throw bad('body', 'request body is not JSON')
  }
  if (!isObject(root)) throw bad('body', 'request body is not a JSON object')
  return { root, nonceSource: sources.get(root) }
}

function nonceOf (value: unknown, source: string | undefined): string | null {
  if (value === undefined || value === null) return null
  if (typeof value === 'string') {
    if (value.length > 1024) throw bad('nonce', 'nonce is longer than 1024 characters')
    return value
  }
  if (typeof value === 'number' && source !== undefined && U64_TEXT.test(source) && BigInt(source) <= U64_MAX) return source
  throw bad('nonce', 'nonce is not an unsigned 64-bit integer or a string')
}

function attestedData (value: unknown, field: string): AttestedData | null {
  if (value === undefined || value === null) return null
  if (!isObject(value)) throw bad(field, `${field} is not an object`)
  // The reference marshals an empty {"data":"","dataType":""} initTimeData: that means "none".
  if ((value.data === '' || value.data === undefined) && (value.dataType === '' || value.dataType === undefined)) return null
  const type = typeof value.dataType === 'string' ? value.dataType.toLowerCase() : ''
  if (type !== 'json' && type !== 'binary') throw bad(field, `${field}.dataType is not "JSON" or "Binary"`)
  return { bytes: b64(value.data, `${field}.data`, true), dataType: type === 'json' ? 'JSON' : 'Binary' }
}

function endorsementsOf (value: unknown): Buffer[] | null {
  if (value === undefined || value === null || value === '') return null
  const json = jsonOf(b64(value, 'Endorsements'), 'Endorsements')
  if (!isObject(json) || !Array.isArray(json.Uvm) || json.Uvm.length === 0) throw bad('Endorsements', 'Endorsements is not {"Uvm":[...]}')
  return json.Uvm.map((item, i) => b64(item, `Endorsements.Uvm[${i}]`))
}

/** Decodes an attest body (JSON text) into its parts; throws RequestInvalid naming the bad field. */
export function parseAttestRequest (text: string): AttestRequest {
  const { root, nonceSource } = parseBody(text)
  const bundle = jsonOf(b64(root.report, 'report'), 'report')
  if (!isObject(bundle)) throw bad('report', 'report is not a JSON object bundle')
  const pem = b64(bundle.VcekCertChain, 'VcekCertChain')
  return {
    report: b64(bundle.SnpReport, 'SnpReport'),
    vcekCertChainPem: pem.toString('utf8'),
    uvmEndorsements: endorsementsOf(bundle.Endorsements),
    runtimeData: attestedData(root.runtimeData, 'runtimeData'),
    initTimeData: attestedData(root.initTimeData, 'initTimeData'),
    nonce: nonceOf(root.nonce, nonceSource)
  }
}

function jsonClaim (data: AttestedData | null, field: string): Record<string, unknown> | null {
  if (data === null || data.dataType !== 'JSON') return null
  const json = jsonOf(data.bytes, field)
  if (!isObject(json)) throw bad(field, `${field} (dataType JSON) is not a JSON object`)
  return json
}

function checkEndorsements (items: Buffer[], report: AttestationReport, options: AppraisalOptions): Appraisal['endorsement'] {
  const measurement = report.measurement.toString('hex')
  for (const cose of items) {
    const e = verifyUvmReferenceInfo(cose, {
      now: options.now,
      ...(options.trustedUvmRootFingerprints === undefined ? {} : { trustedRootFingerprints: options.trustedUvmRootFingerprints }),
      ...(options.trustedTransparencyKeys === undefined ? {} : { transparencyKeys: options.trustedTransparencyKeys })
    })
    if (e.launchMeasurement === measurement) return { guestSvn: e.guestSvn, launchMeasurement: e.launchMeasurement }
  }
  throw bad('Endorsements', 'no UVM endorsement carries the report\'s launch measurement')
}

/**
 * Appraises a request as MAA does: the report's chain to a trusted ARK, its signature and VCEK
 * binding; REPORT_DATA == SHA-256(runtime data) ‖ 0^32; HOST_DATA == SHA-256(init-time data) when
 * sent; every UVM endorsement verified and one matching MEASUREMENT. Throws RequestInvalid or the
 * verifiers' errors (all mean "400 InvalidParameter" to the emulator).
 */
export function appraiseEvidence (request: AttestRequest, options: AppraisalOptions): Appraisal {
  const chain = parseBundlePem(request.vcekCertChainPem)
  const verified = verifyReport(request.report, chain, { trustedArkFingerprints: options.trustedArkFingerprints, now: options.now })
  const { report } = verified
  if (request.runtimeData !== null) {
    const digest = createHash('sha256').update(request.runtimeData.bytes).digest()
    if (!report.reportData.subarray(0, 32).equals(digest)) throw bad('runtimeData', 'SHA-256 of runtimeData does not match the report\'s REPORT_DATA')
    if (report.reportData.subarray(32).some((b) => b !== 0)) throw bad('runtimeData', 'REPORT_DATA bytes 32..63 are not zero')
  }
  if (request.initTimeData !== null) {
    const digest = createHash('sha256').update(request.initTimeData.bytes).digest()
    if (!report.hostData.equals(digest)) throw bad('initTimeData', 'SHA-256 of initTimeData does not match the report\'s HOST_DATA')
  }
  let endorsement: Appraisal['endorsement'] = null
  if (request.uvmEndorsements !== null) endorsement = checkEndorsements(request.uvmEndorsements, report, options)
  else if (options.requireUvmEndorsement) throw bad('Endorsements', 'a UVM endorsement is required')
  return {
    report,
    generation: report.generation ?? verified.chain.generation,
    runtime: jsonClaim(request.runtimeData, 'runtimeData'),
    initTime: jsonClaim(request.initTimeData, 'initTimeData'),
    endorsement,
    nonce: request.nonce
  }
}

/**
 * MAA's SevSnpVm claim set for appraised evidence, typed as MAA types them: booleans for the
 * policy bits, numbers for VMPL/guest SVN/TCB SVNs (decoded from REPORTED_TCB with the
 * appraised generation, Milan when unknown), lowercase hex for byte fields. x-ms-compliance-status is issued
 * only when a UVM endorsement was validated, so policies requiring it fail as they would on MAA.
 */
export function sevSnpClaims (appraisal: Appraisal, facts: TokenFacts): Record<string, unknown> {
  const r = appraisal.report
  const iat = Math.floor(facts.now.getTime() / 1000)
  const tcb = decodeTcb(r.reportedTcb, appraisal.generation ?? 'Milan')
  const hex = (b: Buffer): string => b.toString('hex')
  const claims: Record<string, unknown> = {
    exp: iat + facts.lifetimeSeconds,
    iat,
    iss: facts.issuer,
    jti: facts.jti,
    nbf: iat,
    ...(appraisal.nonce === null ? {} : { nonce: appraisal.nonce }),
    'x-ms-attestation-type': 'sevsnpvm',
    ...(appraisal.endorsement === null ? {} : { 'x-ms-compliance-status': 'azure-compliant-uvm' }),
    ...(appraisal.initTime === null ? {} : { 'x-ms-inittime': appraisal.initTime }),
    'x-ms-policy-hash': policyHash(DEFAULT_POLICY_TEXT),
    ...(appraisal.runtime === null ? {} : { 'x-ms-runtime': appraisal.runtime }),
    'x-ms-sevsnpvm-authorkeydigest': hex(r.authorKeyDigest),
    'x-ms-sevsnpvm-bootloader-svn': tcb.bootloader,
    ...(appraisal.generation === null ? {} : { 'x-ms-sevsnpvm-chip-family': appraisal.generation }),
    'x-ms-sevsnpvm-chipid': hex(r.chipId),
    'x-ms-sevsnpvm-familyId': hex(r.familyId),
    'x-ms-sevsnpvm-guestsvn': r.guestSvn,
    'x-ms-sevsnpvm-hostdata': hex(r.hostData),
    'x-ms-sevsnpvm-idkeydigest': hex(r.idKeyDigest),
    'x-ms-sevsnpvm-imageId': hex(r.imageId),
    'x-ms-sevsnpvm-is-debuggable': r.policy.debug,
    'x-ms-sevsnpvm-launchmeasurement': hex(r.measurement),
    'x-ms-sevsnpvm-microcode-svn': tcb.microcode,
    'x-ms-sevsnpvm-migration-allowed': r.policy.migrateMa,
    'x-ms-sevsnpvm-reportdata': hex(r.reportData),
    'x-ms-sevsnpvm-reportid': hex(r.reportId),
    'x-ms-sevsnpvm-smt-allowed': r.policy.smt,
    'x-ms-sevsnpvm-snpfw-svn': tcb.snp,
    'x-ms-sevsnpvm-tee-svn': tcb.tee,
    ...(appraisal.endorsement === null
      ? {}
      : {
          'x-ms-sevsnpvm-uvm-endorsement': {
            ...(appraisal.endorsement.guestSvn === null ? {} : { 'x-ms-sevsnpvm-guestsvn': appraisal.endorsement.guestSvn }),
            'x-ms-sevsnpvm-launchmeasurement': appraisal.endorsement.launchMeasurement
          }
        }),
    'x-ms-sevsnpvm-vmpl': r.vmpl,
    'x-ms-ver': '1.0'
  }
  return claims
}
