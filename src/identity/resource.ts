// Which Entra resource (token audience) a Key Vault or Managed HSM endpoint needs. Azure's data
// planes are told apart by DNS suffix, one per cloud (public, China, US Government); the table
// below is the whole of that knowledge. The reference sidecar only knows the public cloud and
// picks mHSM when the endpoint contains "managedhsm" (docs/protocols.md#managed-identity-tokens-from-imds); hosts outside the
// table (emulators, private DNS names) keep that rule.

/** Which service an endpoint is: a Key Vault or a Managed HSM. */
export type VaultKind = 'vault' | 'mhsm'

/** The resource (token audience) and OAuth scope for one endpoint. */
export interface VaultResource {
  kind: VaultKind
  /** The Entra resource, e.g. https://vault.azure.net (what IMDS takes). */
  resource: string
  /** The v2 scope, `${resource}/.default` (what @azure/identity takes). */
  scope: string
}

/** DNS suffix → resource, for every cloud that offers Key Vault or Managed HSM key release. */
export const VAULT_RESOURCES: ReadonlyArray<Readonly<{ suffix: string, kind: VaultKind, resource: string }>> = Object.freeze([
  { suffix: 'vault.azure.net', kind: 'vault', resource: 'https://vault.azure.net' },
  { suffix: 'managedhsm.azure.net', kind: 'mhsm', resource: 'https://managedhsm.azure.net' },
  { suffix: 'vault.azure.cn', kind: 'vault', resource: 'https://vault.azure.cn' },
  { suffix: 'managedhsm.azure.cn', kind: 'mhsm', resource: 'https://managedhsm.azure.cn' },
  { suffix: 'vault.usgovcloudapi.net', kind: 'vault', resource: 'https://vault.usgovcloudapi.net' },
  { suffix: 'managedhsm.usgovcloudapi.net', kind: 'mhsm', resource: 'https://managedhsm.usgovcloudapi.net' }
].map((entry) => Object.freeze(entry as { suffix: string, kind: VaultKind, resource: string })))

const PUBLIC: Readonly<Record<VaultKind, string>> = Object.freeze({
  vault: 'https://vault.azure.net',
  mhsm: 'https://managedhsm.azure.net'
})

/** The lowercased host name of `host[:port]` (IPv6 literals keep their brackets), without a trailing dot. */
export function hostnameOf (endpoint: string): string {
  if (typeof endpoint !== 'string') throw new TypeError('hostnameOf: endpoint must be host[:port]')
  const lower = endpoint.trim().toLowerCase()
  const host = lower.startsWith('[') ? lower.slice(0, lower.indexOf(']') + 1) : (lower.split(':')[0] ?? '')
  return host.endsWith('.') ? host.slice(0, -1) : host
}

/** The `/.default` scope of a resource (trailing slashes dropped). */
export function scopeOf (resource: string): string {
  return `${resource.replace(/\/+$/, '')}/.default`
}

/**
 * The resource for an AKV/mHSM endpoint (`host[:port]`): by DNS suffix from VAULT_RESOURCES, else
 * the public-cloud mHSM resource when the host contains "managedhsm" (the reference's rule), else
 * the public-cloud vault resource.
 */
export function resourceFor (akvEndpoint: string): VaultResource {
  const host = hostnameOf(akvEndpoint)
  const known = VAULT_RESOURCES.find((entry) => host === entry.suffix || host.endsWith(`.${entry.suffix}`))
  if (known !== undefined) return { kind: known.kind, resource: known.resource, scope: scopeOf(known.resource) }
  const kind: VaultKind = host.includes('managedhsm') ? 'mhsm' : 'vault'
  return { kind, resource: PUBLIC[kind], scope: scopeOf(PUBLIC[kind]) }
}
