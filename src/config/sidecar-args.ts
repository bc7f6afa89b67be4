// SkrSideCarArgs: the reference's base64 JSON "AzureInformation" blob
// ({certcache: {endpoint_type, endpoint, tee_type, api_version, client_id},
//   identity: {client_id}, maaconfig: {user_agent}}). skr also accepts raw JSON, because
// base64 in manifests is a frequent source of mistakes (docs/protocols.md#skrsidecarargs).
import { ConfigInvalid } from '../errors.ts'
import { isObject } from '../text/untrusted.ts'

import type { CertCacheConfig, CertEndpointType } from '../collateral/cert-cache-config.ts'
export type { CertCacheConfig, CertEndpointType } from '../collateral/cert-cache-config.ts'

export interface AzureInformation {
  readonly certcache: CertCacheConfig
  readonly identity: { readonly clientId: string | null }
  readonly maaconfig: { readonly userAgent: string | null }
}

const TOP_KEYS = new Set(['certcache', 'identity', 'maaconfig'])
const CERTCACHE_KEYS = new Set(['endpoint_type', 'endpoint', 'tee_type', 'api_version', 'client_id'])
const ENDPOINT_TYPES: readonly CertEndpointType[] = ['AMD', 'AzCache', 'LocalTHIM']

function optString (obj: Record<string, unknown>, key: string, where: string): string | null {
  const v = obj[key]
  if (v === undefined || v === null || v === '') return null
  if (typeof v !== 'string') throw new ConfigInvalid(`SkrSideCarArgs ${where}.${key} must be a string`)
  return v
}

function decode (raw: string): unknown {
  const text = raw.trim()
  if (text.startsWith('{')) return JSON.parse(text)
  if (!/^[A-Za-z0-9+/=_-\s]+$/.test(text)) throw new ConfigInvalid('SkrSideCarArgs is neither base64 nor JSON')
  return JSON.parse(Buffer.from(text, 'base64').toString('utf8'))
}

/** Parses SkrSideCarArgs (base64 JSON, or raw JSON); null or empty yields the defaults. */
export function parseSkrSideCarArgs (raw: string | null): AzureInformation {
  const empty: AzureInformation = {
    certcache: { endpointType: null, endpoint: null, teeType: null, apiVersion: null, clientId: null },
    identity: { clientId: null },
    maaconfig: { userAgent: null }
  }
  if (raw === null || raw.trim() === '') return empty
  let doc: unknown
  try {
    doc = decode(raw)
  } catch (err) {
    if (err instanceof ConfigInvalid) throw err
    throw new ConfigInvalid('SkrSideCarArgs is not base64-encoded JSON')
  }
  if (!isObject(doc)) throw new ConfigInvalid('SkrSideCarArgs must be a JSON object')
  // Unknown keys are refused: a typo ("cert_cache") would otherwise silently use defaults.
  for (const k of Object.keys(doc)) {
    if (!TOP_KEYS.has(k)) throw new ConfigInvalid(`SkrSideCarArgs has unknown key "${k}" (expected certcache, identity, maaconfig)`)
  }
  const cc = doc.certcache ?? {}
  const id = doc.identity ?? {}
  const maa = doc.maaconfig ?? {}
  if (!isObject(cc) || !isObject(id) || !isObject(maa)) throw new ConfigInvalid('SkrSideCarArgs certcache, identity and maaconfig must be objects')
  for (const k of Object.keys(cc)) {
    if (!CERTCACHE_KEYS.has(k)) throw new ConfigInvalid(`SkrSideCarArgs certcache has unknown key "${k}"`)
  }
  for (const k of Object.keys(id)) {
    if (k !== 'client_id') throw new ConfigInvalid(`SkrSideCarArgs identity has unknown key "${k}" (expected client_id)`)
  }
  for (const k of Object.keys(maa)) {
    if (k !== 'user_agent') throw new ConfigInvalid(`SkrSideCarArgs maaconfig has unknown key "${k}" (expected user_agent)`)
  }
  const endpointType = optString(cc, 'endpoint_type', 'certcache')
  const canonicalType = endpointType === null ? null : ENDPOINT_TYPES.find(t => t.toLowerCase() === endpointType.toLowerCase())
  if (canonicalType === undefined) throw new ConfigInvalid('SkrSideCarArgs certcache.endpoint_type must be AMD, AzCache or LocalTHIM')
  return {
    certcache: {
      endpointType: canonicalType,
      endpoint: optString(cc, 'endpoint', 'certcache'),
      teeType: optString(cc, 'tee_type', 'certcache'),
      apiVersion: optString(cc, 'api_version', 'certcache'),
      clientId: optString(cc, 'client_id', 'certcache')
    },
    identity: { clientId: optString(id, 'client_id', 'identity') },
    maaconfig: { userAgent: optString(maa, 'user_agent', 'maaconfig') }
  }
}
