// AMD Key Distribution Service: the VCEK for (chip, TCB) as DER, and the product's ASK‖ARK chain
// as PEM (docs/protocols.md#amd-kds; gsg kds.go VCEKCertURL, snpguest
// fetch.rs for Turin). KDS throttles repeats of the same arguments, so callers should cache.
import { X509Certificate } from 'node:crypto'
import { SidecarError, UpstreamResponseInvalid } from '../errors.ts'
import { statusError } from '../http/errors-map.ts'
import type { Upstream, UpstreamResponse } from '../http/upstream.ts'
import type { Generation, TcbParts } from '../snp/tcb.ts'
import { cacheControlMaxAge, type VcekCollateral } from './types.ts'
import { splitPem, toPem } from '../certs/pem.ts'

/** AMD's public KDS. */
export const DEFAULT_KDS_BASE = 'https://kdsintf.amd.com'

const CHIP_ID_SIZE = 64
const TURIN_HWID_SIZE = 8
const PRODUCTS: readonly Generation[] = ['Milan', 'Genoa', 'Turin']

function spl (value: unknown, name: string): string {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xff) {
    throw new TypeError(`TCB part ${name} must be an integer in 0..255, got ${String(value)}`)
  }
  return String(value)
}

function trimBase (base: string): string {
  return base.replace(/\/+$/, '')
}

/**
 * The KDS VCEK URL. Milan/Genoa: hwid = the 64-byte CHIP_ID (128 hex digits). Turin: hwid = its
 * first 8 bytes (16 hex digits) and fmcSPL comes first, since the long id gets a 404 there.
 * Hex is lowercase, SPLs decimal.
 */
export function kdsVcekUrl (base: string, product: Generation, chipId: Buffer, tcb: TcbParts): string {
  if (!PRODUCTS.includes(product)) throw new TypeError(`unknown KDS product ${JSON.stringify(product)}, want Milan, Genoa or Turin`)
  if (!Buffer.isBuffer(chipId) || chipId.length !== CHIP_ID_SIZE) {
    throw new TypeError(`chipId must be a ${CHIP_ID_SIZE}-byte Buffer, got ${Buffer.isBuffer(chipId) ? `${chipId.length} bytes` : typeof chipId}`)
  }
  const params = [
    `blSPL=${spl(tcb.bootloader, 'bootloader')}`,
    `teeSPL=${spl(tcb.tee, 'tee')}`,
    `snpSPL=${spl(tcb.snp, 'snp')}`,
    `ucodeSPL=${spl(tcb.microcode, 'microcode')}`
  ]
  let hwid: string
  if (product === 'Turin') {
    params.unshift(`fmcSPL=${spl(tcb.fmc, 'fmc')}`)
    hwid = chipId.subarray(0, TURIN_HWID_SIZE).toString('hex')
  } else {
    if (tcb.fmc !== null) throw new TypeError(`${product} TCB has no FMC part, but fmc is ${String(tcb.fmc)}`)
    hwid = chipId.toString('hex')
  }
  return `${trimBase(base)}/vcek/v1/${product}/${hwid}?${params.join('&')}`
}

/** The KDS URL of a product's ASK‖ARK chain. */
export function kdsCertChainUrl (base: string, product: Generation): string {
  return `${trimBase(base)}/vcek/v1/${product}/cert_chain`
}

function invalid (upstream: Upstream, host: string, message: string, cause?: unknown): UpstreamResponseInvalid {
  return new UpstreamResponseInvalid(`${upstream.name} ${host}: ${message}`, { cause, details: { upstream: upstream.name } })
}

async function get (upstream: Upstream, url: URL, accept: string, what: string, signal: AbortSignal | undefined): Promise<UpstreamResponse> {
  const res = await upstream.request({ method: 'GET', url, headers: { Accept: accept }, signal })
  if (res.status !== 200) throw statusError({ upstream: upstream.name, host: url.host, attempts: res.attempts }, res.status, res.body, what)
  return res
}

function parseVcekDer (upstream: Upstream, host: string, der: Buffer): string {
  let cert: X509Certificate
  try {
    cert = new X509Certificate(der)
  } catch (err) {
    throw invalid(upstream, host, `VCEK response (${der.length} bytes) is not a DER X.509 certificate`, err)
  }
  if (cert.raw.length !== der.length) {
    throw invalid(upstream, host, `VCEK response has ${der.length - cert.raw.length} bytes after the certificate, want 0`)
  }
  return toPem(cert)
}

function parseChain (upstream: Upstream, host: string, pem: Buffer): string {
  let certs: X509Certificate[]
  try {
    certs = splitPem(pem.toString('utf8'))
  } catch (err) {
    throw invalid(upstream, host, `cert_chain is not valid PEM: ${err instanceof SidecarError ? err.message : 'unparseable'}`, err)
  }
  if (certs.length !== 2) throw invalid(upstream, host, `cert_chain holds ${certs.length} certificates, want 2 (ASK then ARK)`)
  return certs.map(toPem).join('')
}

/** Fetches the VCEK for (chipId, tcb) and the product chain from KDS; tcbm is the REPORTED_TCB asked for. */
export async function fetchKds (upstream: Upstream, options: {
  base?: string
  product: Generation
  chipId: Buffer
  tcb: TcbParts
  reportedTcb: bigint
  signal?: AbortSignal
}): Promise<VcekCollateral> {
  const base = options.base ?? DEFAULT_KDS_BASE
  const vcekUrl = new URL(kdsVcekUrl(base, options.product, options.chipId, options.tcb))
  const chainUrl = new URL(kdsCertChainUrl(base, options.product))
  const [vcekRes, chainRes] = await Promise.all([
    get(upstream, vcekUrl, 'application/pkix-cert, application/octet-stream', 'the VCEK', options.signal),
    get(upstream, chainUrl, 'application/x-pem-file, text/plain', 'the cert_chain', options.signal)
  ])
  return {
    vcekPem: parseVcekDer(upstream, vcekUrl.host, vcekRes.body),
    chainPem: parseChain(upstream, chainUrl.host, chainRes.body),
    tcbm: options.reportedTcb,
    cacheControlSeconds: cacheControlMaxAge(vcekRes.headers['cache-control']),
    source: 'kds'
  }
}
