// The identity settings, apart from token-source.ts so the lazily loaded SDK credential can take
// them without importing its loader back.
import type { ProxySettings } from '../http/proxy.ts'
import type { UpstreamFactory } from '../http/upstream.ts'

/** The identity settings skr's configuration yields (see buildKeyRelease). */
export interface IdentityConfig {
  /** User-assigned managed identity client id (SkrSideCarArgs identity.client_id or AZURE_CLIENT_ID); null: system-assigned. */
  managedIdentityClientId: string | null
  /** Workload identity, when AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE are all set. */
  workload: { clientId: string, tenantId: string, tokenFile: string } | null
  /** AZURE_AUTHORITY_HOST (sovereign clouds, test doubles); https only. */
  authorityHost: string | null
  /** Extra PEM roots for Entra's TLS (IMDS is plain http). */
  extraCa?: readonly string[]
  /** Egress proxy settings for token requests (config.proxy); default: read once from process.env. Link-local and loopback always go direct. */
  proxy?: ProxySettings
  /** Makes the IMDS and Entra clients (the composition root's, with its CA roots, proxy and metrics); default: built here from `extraCa` and `proxy`. */
  upstream?: UpstreamFactory
  /** Timeout of one HTTP attempt (default 5 s). */
  attemptTimeoutMs?: number
}
