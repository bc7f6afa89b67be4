// POST /attest/raw, /attest/combined and /attest/maa: decode and check the caller's input,
// call the AttestationService under the request deadline, and answer in the reference's
// field names and encodings (hex for raw, base64 for combined).
import type { FastifyInstance } from 'fastify'
import type { Config } from '../../config/config.ts'
import { RequestInvalid } from '../../errors.ts'
import { decodeBase64Flexible } from '../../encoding/base64.ts'
import { normaliseEndpoint } from '../../http/endpoint.ts'
import type { AttestationService } from '../../service/types.ts'
import { withDeadline } from '../deadline.ts'
import { postErrorResponses } from '../error-schemas.ts'
import {
  combinedResponseSchema,
  maaAttestBodySchema,
  maaTokenResponseSchema,
  rawReportResponseSchema,
  runtimeDataBodySchema,
  type MaaAttestBody,
  type RuntimeDataBody
} from '../schemas.ts'

/** Decodes body.runtime_data (standard or url-safe base64) or throws RequestInvalid naming it. */
export function decodeRuntimeData (text: string): Buffer {
  const bytes = decodeBase64Flexible(text)
  if (bytes === null) {
    throw new RequestInvalid('body.runtime_data must be base64 (standard or url-safe alphabet, padded or unpadded)')
  }
  if (bytes.length === 0) throw new RequestInvalid('body.runtime_data must not decode to zero bytes')
  return bytes
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * Checks that /attest/maa's runtime data is UTF-8 JSON text, or throws RequestInvalid saying why.
 * skr sends it to MAA as `dataType: "JSON"` (as the reference does: its MAA client notes that
 * Binary is not accepted for SEV-SNP evidence), and MAA refuses JSON runtime data that does not
 * parse with a 400; the caller then only saw 502 "upstream rejected the request", after a report
 * and a round trip to MAA. Checked before either.
 */
export function checkJsonRuntimeData (bytes: Buffer): void {
  let text: string
  try {
    text = utf8.decode(bytes)
  } catch {
    throw new RequestInvalid('body.runtime_data must be base64 of UTF-8 JSON text (MAA evaluates it as JSON and puts it in the x-ms-runtime claim); it decodes to bytes that are not UTF-8')
  }
  try {
    JSON.parse(text)
  } catch {
    throw new RequestInvalid('body.runtime_data must be base64 of JSON text (MAA evaluates it as JSON and puts it in the x-ms-runtime claim), e.g. base64 of {"nonce":"…"}; it decodes to text that is not JSON')
  }
}

// What the attestation routes can fail with, besides what every POST route can (error-schemas.ts postErrorResponses).
const REPORT_ERRORS = {
  500: 'The attestation device failed or produced a bad report (ERR_SNP_FIRMWARE, ERR_SNP_REPORT_INVALID, ERR_SNP_REPORT_UNVERIFIED), or a bug (ERR_INTERNAL)',
  502: 'The report\'s certificate chain did not verify (ERR_CERT_CHAIN_INVALID, ERR_TCB_MISMATCH), or a chain source answered badly (ERR_UPSTREAM_REJECTED, ERR_UPSTREAM_RESPONSE_INVALID)',
  503: 'No usable attestation device (ERR_SNP_DEVICE_UNAVAILABLE), or its collateral could not be had (ERR_COLLATERAL_UNAVAILABLE, ERR_UPSTREAM_UNAVAILABLE)'
} as const
const MAA_ERRORS = {
  403: 'The MAA host is not in SKR_ALLOWED_HOSTS (ERR_ENDPOINT_NOT_ALLOWED), or MAA refused skr (ERR_ACCESS_DENIED)',
  500: REPORT_ERRORS[500],
  502: 'MAA refused the evidence or answered badly (ERR_UPSTREAM_REJECTED, ERR_UPSTREAM_RESPONSE_INVALID) or its host name does not exist (ERR_UPSTREAM_NOT_FOUND), its token did not verify (ERR_MAA_TOKEN_INVALID), or the report\'s chain did not (ERR_CERT_CHAIN_INVALID, ERR_TCB_MISMATCH)',
  503: 'MAA, the attestation device or its collateral is unavailable (ERR_UPSTREAM_UNAVAILABLE, ERR_SNP_DEVICE_UNAVAILABLE, ERR_COLLATERAL_UNAVAILABLE)'
} as const

/** Registers the three attestation routes. */
export function registerAttestRoutes (app: FastifyInstance, config: Config, attestation: AttestationService): void {
  const timeoutMs = config.requestTimeoutMs

  app.post<{ Body: RuntimeDataBody }>('/attest/raw', {
    schema: {
      summary: 'Raw SEV-SNP attestation report',
      operationId: 'attestRaw',
      description: 'A fresh report whose REPORT_DATA is sha256(runtime_data) followed by 32 zero bytes, as lowercase hex.',
      tags: ['reference'],
      body: runtimeDataBodySchema,
      response: { 200: rawReportResponseSchema, ...postErrorResponses(REPORT_ERRORS) }
    }
  }, async (request, reply) => {
    const runtimeData = decodeRuntimeData(request.body.runtime_data)
    const report = await withDeadline(reply, timeoutMs, signal => attestation.rawReport(runtimeData, signal))
    return { report: report.toString('hex') }
  })

  app.post<{ Body: RuntimeDataBody }>('/attest/combined', {
    schema: {
      summary: 'Report with its certificate chain and UVM endorsements',
      operationId: 'attestCombined',
      description: 'A fresh report plus the VCEK/ASK/ARK chain that certifies it and the UVM reference info, base64-encoded (field names of the Privacy Sandbox KMS).',
      tags: ['reference'],
      body: runtimeDataBodySchema,
      response: { 200: combinedResponseSchema, ...postErrorResponses(REPORT_ERRORS) }
    }
  }, async (request, reply) => {
    const runtimeData = decodeRuntimeData(request.body.runtime_data)
    const evidence = await withDeadline(reply, timeoutMs, signal => attestation.combined(runtimeData, signal))
    return {
      endorsed_tcb: evidence.endorsedTcb,
      endorsements: evidence.endorsements,
      evidence: evidence.evidence,
      uvm_endorsements: evidence.uvmEndorsements
    }
  })

  app.post<{ Body: MaaAttestBody }>('/attest/maa', {
    schema: {
      summary: 'MAA attestation token',
      operationId: 'attestMaa',
      description: 'Attests to Microsoft Azure Attestation at maa_endpoint with runtime_data (base64 of UTF-8 JSON text, else 400) as JSON runtime data and returns the token. Counted against the in-flight limit (503 ERR_OVERLOADED past it).',
      tags: ['reference'],
      body: maaAttestBodySchema,
      response: { 200: maaTokenResponseSchema, ...postErrorResponses(MAA_ERRORS) }
    }
  }, async (request, reply) => {
    const maaEndpoint = normaliseEndpoint(request.body.maa_endpoint, 'body.maa_endpoint')
    const runtimeData = decodeRuntimeData(request.body.runtime_data)
    checkJsonRuntimeData(runtimeData)
    const token = await withDeadline(reply, timeoutMs, signal => attestation.maaToken(maaEndpoint, runtimeData, signal))
    return { token }
  })
}
