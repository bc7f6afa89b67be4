// Which VCEK chain source to ask, from SkrSideCarArgs' certcache (CSC pkg/attest/
// platform_cert_fetcher.go CertFetcher and its defaults; docs/protocols.md#thim, docs/protocols.md#azure-certificate-cache, docs/protocols.md#amd-kds): LocalTHIM
// (http://{endpoint}, Metadata: true), AzCache (the legacy Azure cert cache) or AMD (KDS). With no
// certcache the THIM default at IMDS is used, which is what the reference fetches at start-up
// whatever certcache says (Q7). In simulated mode with no certcache the emulated chain is served
// from memory, so `skr --attestation simulated` needs no IMDS.
import { pino } from 'pino'
import { DEFAULT_AZCACHE_BASE, fetchAzCache } from './azcache.ts'
import { thimDocument, type EmulatedAmdChain } from '../simulated/emulated-chain.ts'
import { DEFAULT_KDS_BASE, fetchKds } from './kds.ts'
import { DEFAULT_THIM_ENDPOINT, fetchThim, parseThimDocument } from './thim.ts'
import type { CertCacheConfig } from './cert-cache-config.ts'
import { CollateralUnavailable, ConfigInvalid } from '../errors.ts'
import type { Upstream } from '../http/upstream.ts'
import type { Logger } from '../log.ts'
import { decodeTcb, type Generation } from '../snp/tcb.ts'
import type { CollateralFetch } from './store.ts'

/** The upstream clients the sources use (one per service, each with its own trust and policy). */
export interface CollateralUpstreams {
  thim: Upstream
  kds: Upstream
  azcache: Upstream
}

/** What collateralFetcher needs. */
export interface CollateralFetcherOptions {
  certcache: CertCacheConfig
  upstreams: CollateralUpstreams
  /** The emulated chain in simulated mode; served directly when certcache names no source. */
  simulatedChain?: EmulatedAmdChain | null
  log?: Logger
}

const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i
const GENERATIONS: readonly Generation[] = ['Milan', 'Genoa', 'Turin']
// The reference's AzCache blob spells these as query fragments ("api-version=…", "clientId=…").
const API_VERSION_PREFIX = /^\s*api-version\s*=\s*/i
const CLIENT_ID_PREFIX = /^\s*clientId\s*=\s*/i

/** The KDS base URL from the reference's AMD endpoint ("kdsintf.amd.com/vcek/v1" → "https://kdsintf.amd.com"). */
export function kdsBaseFrom (endpoint: string | null): string {
  if (endpoint === null || endpoint.trim() === '') return DEFAULT_KDS_BASE
  const url = SCHEME.test(endpoint.trim()) ? endpoint.trim() : `https://${endpoint.trim()}`
  // fetchKds appends /vcek/v1/{product}/…; the reference's endpoint already ends in /vcek/v1.
  return url.replace(/\/+$/, '').replace(/\/vcek\/v1$/i, '')
}

/** The AzCache base URL from the reference's endpoint (a bare host means https). */
export function azCacheBaseFrom (endpoint: string | null): string {
  if (endpoint === null || endpoint.trim() === '') return DEFAULT_AZCACHE_BASE
  const url = SCHEME.test(endpoint.trim()) ? endpoint.trim() : `https://${endpoint.trim()}`
  return url.replace(/\/+$/, '')
}

/** A certcache value given either bare ("2020-10-15-preview") or as the reference's "key=value" fragment. */
export function queryValue (value: string | null, prefix: RegExp): string | undefined {
  if (value === null) return undefined
  const bare = value.replace(prefix, '').trim()
  return bare === '' ? undefined : bare
}

function productFrom (teeType: string | null): Generation | null {
  if (teeType === null) return null
  const found = GENERATIONS.find((g) => g.toLowerCase() === teeType.trim().toLowerCase())
  if (found === undefined) {
    throw new ConfigInvalid(`SkrSideCarArgs certcache.tee_type "${teeType}" is not an AMD product for endpoint_type AMD; want Milan, Genoa or Turin`,
      { details: { key: 'certcache.tee_type' } })
  }
  return found
}

function needsReport (what: string): CollateralUnavailable {
  return new CollateralUnavailable(`the ${what} source needs a report first (it asks for the report's chip id and TCB)`,
    { details: { source: what } })
}

function kdsFetcher (certcache: CertCacheConfig, upstream: Upstream): CollateralFetch {
  const base = kdsBaseFrom(certcache.endpoint)
  const configured = productFrom(certcache.teeType)
  return async (report, signal) => {
    signal?.throwIfAborted()
    if (report === null) throw needsReport('AMD')
    const product = configured ?? report.generation
    if (product === null) {
      throw new CollateralUnavailable('cannot tell the CPU generation from the report (no CPUID in a v2 report); set certcache.tee_type to Milan, Genoa or Turin',
        { details: { source: 'AMD' } })
    }
    return await fetchKds(upstream, {
      base,
      product,
      chipId: report.chipId,
      // The URL's SPLs follow the product's byte layout, which tee_type may override.
      tcb: decodeTcb(report.reportedTcb, product),
      reportedTcb: report.reportedTcb,
      signal
    })
  }
}

function azCacheFetcher (certcache: CertCacheConfig, upstream: Upstream): CollateralFetch {
  const base = azCacheBaseFrom(certcache.endpoint)
  const apiVersion = queryValue(certcache.apiVersion, API_VERSION_PREFIX)
  const clientId = queryValue(certcache.clientId, CLIENT_ID_PREFIX)
  return async (report, signal) => {
    signal?.throwIfAborted()
    if (report === null) throw needsReport('AzCache')
    return await fetchAzCache(upstream, {
      base,
      chipId: report.chipId,
      reportedTcb: report.reportedTcb,
      ...(apiVersion === undefined ? {} : { apiVersion }),
      ...(clientId === undefined ? {} : { clientId }),
      signal
    })
  }
}

function thimFetcher (endpoint: string, upstream: Upstream): CollateralFetch {
  return async (_report, signal) => {
    signal?.throwIfAborted()
    return await fetchThim(upstream, { endpoint, signal })
  }
}

/** The fetch function the collateral store calls, chosen from certcache (see the module comment). */
export function collateralFetcher (options: CollateralFetcherOptions): CollateralFetch {
  const { certcache, upstreams } = options
  const log = (options.log ?? pino({ level: 'silent' })).child({ component: 'attest' })
  const endpoint = certcache.endpoint === null || certcache.endpoint.trim() === '' ? null : certcache.endpoint.trim()
  switch (certcache.endpointType) {
    case 'AMD':
      log.info({ source: 'kds', base: kdsBaseFrom(endpoint) }, 'VCEK chain source: AMD KDS')
      return kdsFetcher(certcache, upstreams.kds)
    case 'AzCache':
      log.info({ source: 'azcache', base: azCacheBaseFrom(endpoint) }, 'VCEK chain source: Azure cert cache')
      return azCacheFetcher(certcache, upstreams.azcache)
    case 'LocalTHIM':
      log.info({ source: 'thim', endpoint: endpoint ?? DEFAULT_THIM_ENDPOINT }, 'VCEK chain source: THIM')
      return thimFetcher(endpoint ?? DEFAULT_THIM_ENDPOINT, upstreams.thim)
    case null:
      break
    default:
      throw new ConfigInvalid('SkrSideCarArgs certcache.endpoint_type must be AMD, AzCache or LocalTHIM', { details: { key: 'certcache.endpoint_type' } })
  }
  const chain = options.simulatedChain ?? null
  if (chain !== null) {
    // Parsed once: every refresh hands out the same emulated chain, exactly as THIM would serve it.
    const collateral = parseThimDocument(thimDocument(chain), 'thim')
    log.warn({ source: 'simulated', arkFingerprint: chain.arkFingerprint }, 'VCEK chain source: the SIMULATED chain (no certcache configured)')
    return async (_report, signal) => {
      signal?.throwIfAborted()
      return { ...collateral }
    }
  }
  // Without an endpoint_type the reference fetches the IMDS default at start-up and cannot refresh
  // at all; an endpoint alone does not say which protocol it speaks, so it is not guessed at.
  if (endpoint !== null) log.warn({ source: 'thim' }, 'certcache.endpoint is ignored because certcache.endpoint_type is not set')
  log.info({ source: 'thim', endpoint: DEFAULT_THIM_ENDPOINT }, 'VCEK chain source: THIM at IMDS (no certcache configured)')
  return thimFetcher(DEFAULT_THIM_ENDPOINT, upstreams.thim)
}
