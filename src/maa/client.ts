// The MAA client: one `POST https://{endpoint}/attest/SevSnpVm?api-version=…` with the reference's
// exact body (request.ts), MAA's answers mapped to skr's errors, and the returned token verified
// and checked against what was sent (the runtime data's REPORT_DATA and the nonce) before anyone
// relies on it (docs/protocols.md#maa-attest-response). Transport failures and retries are the Upstream's.
import { decodeJwt } from 'jose'
import { AccessDenied, MaaTokenInvalid, UpstreamRejected, UpstreamResponseInvalid } from '../errors.ts'
import { parseAzureError } from '../http/azure-error.ts'
import type { Upstream } from '../http/upstream.ts'
import { reportDataFor } from '../snp/report-data.ts'
import { createJwksCache } from './jwks-cache.ts'
import type { JwksCache, JwksCacheMetrics } from './jwks-cache.ts'
import { buildAttestBody, randomNonce } from './request.ts'
import type { AttestInput } from './request.ts'
import { issuerFor, verifyMaaToken } from './token.ts'

/** How the client talks to MAA and how much it checks. */
export interface MaaClientOptions {
  upstream: Upstream
  /** MAA api-version; the reference uses 2020-10-01 (DEFAULT_MAA_API_VERSION). */
  apiVersion: string
  /** Sent as User-Agent when not empty (the reference sends none unless configured). */
  userAgent: string
  /** Verify the token's signature, iss, exp, REPORT_DATA and nonce before returning it. */
  verifyToken: boolean
  /** Key cache for token verification; default: one per client over the same upstream. */
  jwks?: JwksCache
  /** Where the default key cache records its lookups ('maa_keys'); ignored with `jwks`, which records its own. Default none. */
  metrics?: JwksCacheMetrics
  now?: () => Date
  /** Override the nonce source (tests); default randomNonce. */
  nonce?: () => bigint
}

/** What attest returns: the token text and its (verified, when enabled) claims. */
export interface MaaAttestResult {
  token: string
  claims: Record<string, unknown>
}

/** An MAA client bound to one Upstream. */
export interface MaaClient {
  attest: (endpoint: string, input: Omit<AttestInput, 'nonce'>, signal?: AbortSignal) => Promise<MaaAttestResult>
}

/** The api-version the reference sidecar hard-codes. */
export const DEFAULT_MAA_API_VERSION = '2020-10-01'
/** MAA's TEE path segment as the reference spells it (MAA matches paths case-insensitively). */
const TEE_TYPE = 'SevSnpVM'
const MAX_MESSAGE = 200
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/

function rejected (host: string, status: number, body: Buffer): UpstreamRejected | AccessDenied {
  const info = parseAzureError(body)
  const details = { upstream: 'maa', host, upstreamStatus: status, upstreamCode: info.code ?? null }
  if (status === 401 || status === 403) {
    return new AccessDenied(`MAA refused the request: HTTP ${status}${info.code === undefined ? '' : ` ${info.code}`}`, { details })
  }
  if (status === 400) {
    const message = info.message === undefined ? '' : `: ${info.message.slice(0, MAX_MESSAGE)}`
    return new UpstreamRejected(`MAA rejected the evidence: ${info.code ?? 'no error code'}${message}`, { details })
  }
  return new UpstreamRejected(`MAA answered HTTP ${status}${info.code === undefined ? '' : ` ${info.code}`}, want 200`, { details })
}

// Go's json.Unmarshal matches `Token` to any key spelled case-insensitively, preferring the exact one.
function tokenOf (body: Buffer): string {
  let json: unknown
  try {
    json = JSON.parse(body.toString('utf8'))
  } catch (err) {
    throw new UpstreamResponseInvalid('MAA answered 200 with a body that is not JSON', { cause: err, details: { upstream: 'maa' } })
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new UpstreamResponseInvalid('MAA answered 200 with a body that is not a JSON object', { details: { upstream: 'maa' } })
  }
  const record = json as Record<string, unknown>
  const key = 'token' in record ? 'token' : Object.keys(record).find((k) => k.toLowerCase() === 'token')
  const token = key === undefined ? undefined : record[key]
  if (typeof token !== 'string' || !JWT_SHAPE.test(token)) {
    throw new UpstreamResponseInvalid('MAA answered 200 without a JWT in "token"', { details: { upstream: 'maa' } })
  }
  return token
}

function unverifiedClaims (token: string): Record<string, unknown> {
  try {
    return decodeJwt(token) as Record<string, unknown>
  } catch (err) {
    throw new UpstreamResponseInvalid('MAA token payload is not decodable', { cause: err, details: { upstream: 'maa' } })
  }
}

// The token must be about *this* evidence: MAA copies REPORT_DATA and echoes the nonce as a string.
function checkBinding (claims: Record<string, unknown>, runtimeData: Buffer, nonce: bigint): void {
  const want = reportDataFor(runtimeData).toString('hex')
  const got = claims['x-ms-sevsnpvm-reportdata']
  if (typeof got !== 'string' || got.toLowerCase() !== want) {
    throw new MaaTokenInvalid('MAA token x-ms-sevsnpvm-reportdata does not bind the runtime data that was sent', { details: { check: 'reportdata' } })
  }
  const echoed = claims.nonce
  if (echoed !== undefined && String(echoed) !== nonce.toString(10)) {
    throw new MaaTokenInvalid('MAA token nonce is not the nonce that was sent', { details: { check: 'nonce' } })
  }
}

function checkOptions (options: MaaClientOptions): void {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object')
  if (typeof options.upstream?.request !== 'function') throw new TypeError('options.upstream must be an Upstream')
  if (typeof options.apiVersion !== 'string' || !/^[0-9A-Za-z.-]+$/.test(options.apiVersion)) throw new TypeError('options.apiVersion must be a version string')
  if (typeof options.userAgent !== 'string' || /[\r\n]/.test(options.userAgent)) throw new TypeError('options.userAgent must be a single-line string')
  if (typeof options.verifyToken !== 'boolean') throw new TypeError('options.verifyToken must be a boolean')
}

/** Creates an MAA client; see MaaClient.attest for the mapping of MAA's answers. */
export function createMaaClient (options: MaaClientOptions): MaaClient {
  checkOptions(options)
  const { upstream, apiVersion, userAgent, verifyToken } = options
  const now = options.now ?? (() => new Date())
  const nextNonce = options.nonce ?? randomNonce
  const jwks = options.jwks ?? createJwksCache({ upstream, now, ...(options.metrics === undefined ? {} : { metrics: options.metrics }) })

  return {
    /**
     * Attests `input` at `endpoint` (host[:port]). 200 → the token; 400 → UpstreamRejected naming
     * MAA's error code; 401/403 → AccessDenied; other statuses → UpstreamRejected; a 200 without a
     * JWT → UpstreamResponseInvalid; a token failing verification → MaaTokenInvalid. The
     * evidence is verified before it gets here (src/attest/attestation-service.ts), not again.
     */
    async attest (endpoint: string, input: Omit<AttestInput, 'nonce'>, signal?: AbortSignal): Promise<MaaAttestResult> {
      const issuer = issuerFor(endpoint)
      const nonce = nextNonce()
      const body = buildAttestBody({ ...input, nonce })
      const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' }
      if (userAgent !== '') headers['user-agent'] = userAgent
      const url = `${issuer}/attest/${TEE_TYPE}?api-version=${encodeURIComponent(apiVersion)}`
      const res = await upstream.request({ method: 'POST', url, headers, body, ...(signal === undefined ? {} : { signal }) })
      // The reference accepts 200..207 as success (pkg/common/http.go HTTPResponseBody).
      if (res.status < 200 || res.status > 207) throw rejected(endpoint.toLowerCase(), res.status, res.body)
      const token = tokenOf(res.body)
      if (!verifyToken) return { token, claims: unverifiedClaims(token) }
      const claims = await verifyMaaToken(token, { endpoint, jwks, now: now(), ...(signal === undefined ? {} : { signal }) })
      checkBinding(claims, input.runtimeData, nonce)
      return { token, claims }
    }
  }
}
