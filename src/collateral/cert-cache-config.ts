// Where the VCEK chain comes from, as SkrSideCarArgs `certcache` states it (parsed in
// config/sidecar-args.ts; used by source.ts).
export type CertEndpointType = 'AMD' | 'AzCache' | 'LocalTHIM'

export interface CertCacheConfig {
  /** null: no explicit source; the THIM default at IMDS is used when the UVM did not provide certs. */
  readonly endpointType: CertEndpointType | null
  readonly endpoint: string | null
  readonly teeType: string | null
  readonly apiVersion: string | null
  readonly clientId: string | null
}
