// The legacy Azure certificate cache: one PEM bundle, VCEK then ASK and ARK, for (chip, TCB)
// (docs/protocols.md#azure-certificate-cache; CSC platform_cert_fetcher.go AzureCertCacheRequestURITemplate).
// Whether it is still served is unconfirmed; it stays as an opt-in source for parity.
import type { X509Certificate } from 'node:crypto'
import { SidecarError, UpstreamResponseInvalid } from '../errors.ts'
import { statusError } from '../http/errors-map.ts'
import type { Upstream } from '../http/upstream.ts'
import { cacheControlMaxAge, type VcekCollateral } from './types.ts'
import { splitPem, toPem } from '../certs/pem.ts'

/** The global Azure cert cache endpoint. */
export const DEFAULT_AZCACHE_BASE = 'https://global.acccache.azure.net'
const DEFAULT_API_VERSION = '2020-10-15-preview'
const DEFAULT_CLIENT_ID = 'ConfidentialACI'
const U64_MAX = (1n << 64n) - 1n

/** `{base}/SevSnpVM/certificates/{chipId hex}/{tcb hex, no zero padding}?api-version=..&clientId=..` */
export function azCacheUrl (base: string, chipId: Buffer, reportedTcb: bigint,
  options: { apiVersion?: string, clientId?: string } = {}): string {
  if (!Buffer.isBuffer(chipId) || chipId.length !== 64) throw new TypeError('chipId must be a 64-byte Buffer')
  if (typeof reportedTcb !== 'bigint' || reportedTcb < 0n || reportedTcb > U64_MAX) throw new TypeError('reportedTcb must be a u64 bigint')
  const query = new URLSearchParams({
    'api-version': options.apiVersion ?? DEFAULT_API_VERSION,
    clientId: options.clientId ?? DEFAULT_CLIENT_ID
  })
  // strconv.FormatUint(tcb, 16) in the reference: lowercase, no padding.
  return `${base.replace(/\/+$/, '')}/SevSnpVM/certificates/${chipId.toString('hex')}/${reportedTcb.toString(16)}?${query.toString()}`
}

function hasCommonName (cert: X509Certificate, cn: string): boolean {
  return cert.subject.split('\n').some((line) => line === `CN=${cn}`)
}

/** Fetches the VCEK bundle from the Azure cert cache; the VCEK is found by subject CN SEV-VCEK, the rest kept in order. */
export async function fetchAzCache (upstream: Upstream, options: {
  base?: string
  chipId: Buffer
  reportedTcb: bigint
  apiVersion?: string
  clientId?: string
  signal?: AbortSignal
}): Promise<VcekCollateral> {
  const url = new URL(azCacheUrl(options.base ?? DEFAULT_AZCACHE_BASE, options.chipId, options.reportedTcb, options))
  const res = await upstream.request({ method: 'GET', url, headers: { Accept: 'application/x-pem-file, text/plain' }, signal: options.signal })
  const ctx = { upstream: upstream.name, host: url.host, attempts: res.attempts }
  if (res.status !== 200) throw statusError(ctx, res.status, res.body, 'the VCEK bundle')
  const invalid = (message: string, cause?: unknown): UpstreamResponseInvalid =>
    new UpstreamResponseInvalid(`${upstream.name} ${url.host}: ${message}`, { cause, details: { upstream: upstream.name } })
  let certs: X509Certificate[]
  try {
    certs = splitPem(res.body.toString('utf8'))
  } catch (err) {
    throw invalid(`VCEK bundle is not valid PEM: ${err instanceof SidecarError ? err.message : 'unparseable'}`, err)
  }
  const vceks = certs.filter((c) => hasCommonName(c, 'SEV-VCEK'))
  const [vcek] = vceks
  if (vcek === undefined || vceks.length !== 1) throw invalid(`VCEK bundle holds ${vceks.length} certificates with CN SEV-VCEK, want 1`)
  const chain = certs.filter((c) => c !== vcek)
  if (chain.length !== 2) throw invalid(`VCEK bundle holds ${chain.length} issuer certificates, want 2 (ASK then ARK)`)
  return {
    vcekPem: toPem(vcek),
    chainPem: chain.map(toPem).join(''),
    tcbm: options.reportedTcb,
    cacheControlSeconds: cacheControlMaxAge(res.headers['cache-control']),
    source: 'azcache'
  }
}
