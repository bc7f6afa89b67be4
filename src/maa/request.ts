// The body of MAA's `POST /attest/SevSnpVm`, byte for byte as the reference sidecar sends it
// (confidential-sidecar-containers pkg/common/maa.go newAttestSNPRequestBody; docs/protocols.md#maa-attest-request).
// Go's encoding/json writes struct fields in declaration order, so the key order below
// is the reference's, and every base64 is Go's `base64.URLEncoding`: url-safe alphabet, padded.
// Pure code: no I/O, no clock; the nonce comes in.
import { randomBytes } from 'node:crypto'
import { encodeBase64Url } from '../encoding/base64.ts'

/** The evidence one attest call carries; `nonce` is a u64 like the reference's Go `uint64`. */
export interface AttestInput {
  /** The raw 1184-byte SNP report. */
  report: Buffer
  /** VCEK ‖ ASK ‖ ARK as PEM text (the reference concatenates THIM's vcekCert and certificateChain). */
  vcekCertChainPem: string
  /** The UVM reference info (COSE_Sign1 bytes), or null/absent when the host gave none. */
  uvmReferenceInfo?: Buffer | null
  /** The runtime data whose SHA-256 is REPORT_DATA[0:32] (skr: the wrapping key's JWKS bytes). */
  runtimeData: Buffer
  nonce: bigint
}

const U64_MAX = (1n << 64n) - 1n

// JSON.stringify writes the same text as Go's json.Marshal for these values: b64url strings hold no
// character Go escapes (<, >, &, U+2028, U+2029) and no quote or backslash.
const str = (value: string): string => JSON.stringify(value)
const b64url = (bytes: Buffer): string => encodeBase64Url(bytes, true)

function checkInput (input: AttestInput): void {
  if (typeof input !== 'object' || input === null) throw new TypeError('attest input must be an object')
  if (!Buffer.isBuffer(input.report)) throw new TypeError('input.report must be a Buffer')
  if (typeof input.vcekCertChainPem !== 'string') throw new TypeError('input.vcekCertChainPem must be a string')
  if (!Buffer.isBuffer(input.runtimeData)) throw new TypeError('input.runtimeData must be a Buffer')
  const uvm = input.uvmReferenceInfo
  if (uvm !== undefined && uvm !== null && !Buffer.isBuffer(uvm)) throw new TypeError('input.uvmReferenceInfo must be a Buffer or null')
  if (typeof input.nonce !== 'bigint' || input.nonce < 0n || input.nonce > U64_MAX) {
    throw new TypeError('input.nonce must be a bigint in 0..2^64-1')
  }
}

/**
 * The `report` bundle JSON text: {"SnpReport","VcekCertChain","Endorsements"?}. As in the reference
 * (Go `omitempty`), Endorsements is left out when there is no (or empty) reference info; when
 * present it is b64url of {"Uvm":[b64url(COSE_Sign1)]}.
 */
export function buildReportBundle (input: Pick<AttestInput, 'report' | 'vcekCertChainPem' | 'uvmReferenceInfo'>): string {
  const parts = [
    `"SnpReport":${str(b64url(input.report))}`,
    `"VcekCertChain":${str(b64url(Buffer.from(input.vcekCertChainPem, 'utf8')))}`
  ]
  const uvm = input.uvmReferenceInfo
  if (uvm !== undefined && uvm !== null && uvm.length > 0) {
    const endorsements = `{"Uvm":[${str(b64url(uvm))}]}`
    parts.push(`"Endorsements":${str(b64url(Buffer.from(endorsements, 'utf8')))}`)
  }
  return `{${parts.join(',')}}`
}

/**
 * The attest request body as JSON text: report, runtimeData {data, dataType "JSON"}, the empty
 * initTimeData the reference always marshals (its Go field has no omitempty) and the nonce as a
 * bare JSON number with all 64 bits (JSON.stringify cannot write a bigint, hence the template).
 */
export function buildAttestBody (input: AttestInput): string {
  checkInput(input)
  const report = b64url(Buffer.from(buildReportBundle(input), 'utf8'))
  return `{"report":${str(report)},` +
    `"runtimeData":{"data":${str(b64url(input.runtimeData))},"dataType":"JSON"},` +
    '"initTimeData":{"data":"","dataType":""},' +
    `"nonce":${input.nonce.toString(10)}}`
}

/** A uniformly random u64 nonce from the CSPRNG (the reference uses math/rand; we need not copy that). */
export function randomNonce (): bigint {
  return randomBytes(8).readBigUInt64BE(0)
}
