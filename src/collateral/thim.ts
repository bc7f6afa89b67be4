// THIM (Trusted Hardware Identity Management) via IMDS: the host's VCEK, its ASK‖ARK chain and
// the TCB it was issued for, as one JSON document (docs/protocols.md#thim; CSC
// pkg/common/info.go THIMCerts). The same document reaches ACI containers base64-encoded in the
// security context, so the parser is shared.
import { SidecarError, UpstreamResponseInvalid } from '../errors.ts'
import { statusError } from '../http/errors-map.ts'
import type { Upstream } from '../http/upstream.ts'
import { tcbFromHex } from '../snp/tcb.ts'
import type { VcekCollateral } from './types.ts'
import { splitPem, toPem } from '../certs/pem.ts'

/** IMDS's THIM endpoint; plain http, like the rest of IMDS on the link-local address. */
export const DEFAULT_THIM_ENDPOINT = 'http://169.254.169.254/metadata/THIM/amd/certification'

function invalid (field: string, problem: string, cause?: unknown): UpstreamResponseInvalid {
  return new UpstreamResponseInvalid(`THIM document field ${field} ${problem}`, { cause, details: { upstream: 'thim', field } })
}

function pemField (doc: Record<string, unknown>, field: string, want: number, what: string): string {
  const value = doc[field]
  if (typeof value !== 'string') throw invalid(field, `is ${value === undefined ? 'missing' : typeof value}, want a PEM string`)
  let certs
  try {
    certs = splitPem(value)
  } catch (err) {
    const reason = err instanceof SidecarError ? err.message : 'is not PEM'
    throw invalid(field, `is not valid PEM: ${reason}`, err)
  }
  if (certs.length !== want) throw invalid(field, `holds ${certs.length} certificates, want ${want} (${what})`)
  return certs.map(toPem).join('')
}

function cacheSeconds (value: unknown): number | null {
  if (value === undefined || value === null || value === '') return null
  const text = typeof value === 'number' ? String(value) : value
  if (typeof text !== 'string' || !/^\d{1,10}$/.test(text.trim())) {
    throw invalid('cacheControl', `is ${typeof value === 'string' ? 'not a decimal number of seconds' : typeof value}, want a string of digits`)
  }
  return Number(text.trim())
}

/** Validates a THIM document `{vcekCert, tcbm, certificateChain, cacheControl}`; malformed → UpstreamResponseInvalid naming the field. */
export function parseThimDocument (json: unknown, source: VcekCollateral['source'] = 'thim'): VcekCollateral {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new UpstreamResponseInvalid(`THIM document is ${json === null ? 'null' : Array.isArray(json) ? 'an array' : typeof json}, want a JSON object`,
      { details: { upstream: 'thim' } })
  }
  const doc = json as Record<string, unknown>
  const vcekPem = pemField(doc, 'vcekCert', 1, 'the VCEK')
  const chainPem = pemField(doc, 'certificateChain', 2, 'ASK then ARK')
  if (typeof doc.tcbm !== 'string') throw invalid('tcbm', `is ${doc.tcbm === undefined ? 'missing' : typeof doc.tcbm}, want 16 hex digits`)
  const tcbm = tcbFromHex(doc.tcbm.trim())
  if (tcbm === null) throw invalid('tcbm', `has ${doc.tcbm.length} characters or non-hex ones, want 16 hex digits`)
  return { vcekPem, chainPem, tcbm, cacheControlSeconds: cacheSeconds(doc.cacheControl), source }
}

function endpointUrl (endpoint: string): string {
  // The reference's LocalTHIM setting is host[:port]/path without a scheme and means http.
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `http://${endpoint}`
}

/** Fetches the host's VCEK collateral from THIM (`Metadata: true`); 4xx → UpstreamRejected, bad body → UpstreamResponseInvalid. */
export async function fetchThim (upstream: Upstream, options: { endpoint?: string, signal?: AbortSignal } = {}): Promise<VcekCollateral> {
  const url = new URL(endpointUrl(options.endpoint ?? DEFAULT_THIM_ENDPOINT))
  const res = await upstream.request({ method: 'GET', url, headers: { Metadata: 'true', Accept: 'application/json' }, signal: options.signal })
  const ctx = { upstream: upstream.name, host: url.host, attempts: res.attempts }
  if (res.status !== 200) throw statusError(ctx, res.status, res.body, 'the THIM certification')
  let json: unknown
  try {
    json = JSON.parse(res.body.toString('utf8'))
  } catch {
    // No cause: JSON.parse's message quotes the body.
    throw new UpstreamResponseInvalid(`thim ${url.host}: response body is not JSON (${res.body.length} bytes)`,
      { details: { upstream: upstream.name } })
  }
  return parseThimDocument(json, 'thim')
}
