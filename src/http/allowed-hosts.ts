// SKR_ALLOWED_HOSTS: the hosts a caller may name as an MAA or AKV/mHSM endpoint. skr sends its
// vault bearer token and the MAA token to the AKV endpoint, and a fresh attestation report to the
// MAA endpoint, so a host the operator did not allow must never receive either (docs/security.md).
// Parsing and matching only; pure. The check itself runs before any work, in
// service/egress-guard.ts.
//
// Entries, comma-separated: `host` (any port), `host:port`, `.suffix` or `*.suffix` (any name
// strictly under it, any port; `.suffix:port` for one port), an IP literal (`10.0.0.4`, `[fd00::1]`,
// with or without a port), or `*` (any host: the reference's behaviour). An operator's entry
// allows its hosts as either endpoint; the default is narrower (DEFAULT_ALLOWED_HOSTS). Entries and endpoints are
// compared in canonical form (./host-name.ts), so an IP literal in any spelling matches only an
// entry naming that same address, and a suffix never matches an IP literal.
import { isIPv6 } from 'node:net'
import { addressOf, HostSyntaxError, parseHostAndPort } from './host-name.ts'

/** Which endpoint of a request a host is named as. */
export type EndpointRole = 'maa_endpoint' | 'akv_endpoint'

/** One allow-list entry: an exact host (or address) or a DNS suffix, on one port or any. */
export interface HostRule {
  /** The canonical host (an IPv4-mapped IPv6 address as IPv4), or for a suffix `.suffix`. */
  readonly host: string
  readonly suffix: boolean
  /** null: any port. */
  readonly port: number | null
  /** The only endpoint this rule allows the host as; null: either (every operator entry). */
  readonly role: EndpointRole | null
}

/** The parsed setting. */
export interface AllowedHosts {
  /** `*` was given: every host is allowed (the reference's behaviour). */
  readonly any: boolean
  readonly rules: readonly HostRule[]
  /** Whether the rules are skr's default (SKR_ALLOWED_HOSTS unset) or the operator's. */
  readonly source: 'default' | 'configured'
}

/**
 * The default: the Key Vault, Managed HSM and Azure Attestation DNS suffixes of the Azure public,
 * China (21Vianet) and US Government clouds. Sources (docs/security.md has the detail):
 * - Key Vault and Managed HSM: Key Vault's "DNS suffixes for object identifiers" table
 *   (https://learn.microsoft.com/azure/key-vault/general/about-keys-secrets-certificates) and the
 *   Azure CLI's cloud definitions (Azure/azure-cli, src/azure-cli-core/azure/cli/core/cloud.py:
 *   `keyvault_dns`, `mhsm_dns`), which also give the Managed HSM suffixes of China and US
 *   Government that the Key Vault table marks "not supported".
 * - Attestation: the Azure CLI's `attestation_endpoint` (public cloud) and Microsoft's guest
 *   attestation SDK's regional table (the US Government shared providers under attest.azure.us).
 *   No China suffix is published: Azure Attestation is not offered there.
 */
export const DEFAULT_ALLOWED_SUFFIXES: readonly string[] = Object.freeze([
  '.vault.azure.net',
  '.managedhsm.azure.net',
  '.attest.azure.net',
  '.vault.azure.cn',
  '.managedhsm.azure.cn',
  '.vault.usgovcloudapi.net',
  '.managedhsm.usgovcloudapi.net',
  '.attest.azure.us'
])

const HTTPS_PORT = 443
const ATTESTATION_SUFFIXES: ReadonlySet<string> = new Set(['.attest.azure.net', '.attest.azure.us'])

/** What the default allows, in words (for messages and the start-up log). */
export const DEFAULT_ALLOWED_DESCRIPTION = 'Azure Key Vault, Managed HSM and Azure Attestation hosts of the public, China and US Government clouds'

/**
 * The default rules: DEFAULT_ALLOWED_SUFFIXES on port 443 only, each in its own role (a vault
 * suffix only as akv_endpoint, an attestation suffix only as maa_endpoint). Azure's services
 * answer on 443; another port of their hosts is dropped without an answer, and a caller naming
 * one would hold its request until the deadline. A vault host named as the MAA (or the reverse)
 * would receive what the other service should.
 */
export const DEFAULT_ALLOWED_HOSTS: AllowedHosts = Object.freeze({
  any: false,
  rules: Object.freeze(DEFAULT_ALLOWED_SUFFIXES.map((host) => Object.freeze({
    host,
    suffix: true,
    port: HTTPS_PORT,
    role: ATTESTATION_SUFFIXES.has(host) ? 'maa_endpoint' as const : 'akv_endpoint' as const
  }))),
  source: 'default'
})

function parseEntry (entry: string): HostRule | 'any' {
  if (entry === '*') return 'any'
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(entry)) throw new HostSyntaxError('a URL (entries are host, host:port or .suffix, without a scheme)')
  const suffixText = entry.startsWith('*.') ? entry.slice(1) : entry.startsWith('.') ? entry : null
  if (suffixText !== null) {
    const { host, port } = parseHostAndPort(suffixText.slice(1))
    if (host.ip !== 0) throw new HostSyntaxError('a suffix that is an IP address (a suffix matches names only)')
    return { host: `.${host.host}`, suffix: true, port, role: null }
  }
  // A bare IPv6 address is unambiguous without brackets when it has no port. It has two colons
  // at least: checked first, as isIPv6's first call compiles a large regular expression (~4 ms of
  // start-up, for the default list of names).
  const { host, port } = parseHostAndPort(entry.indexOf(':') !== entry.lastIndexOf(':') && isIPv6(entry) ? `[${entry}]` : entry)
  return { host: addressOf(host.host), suffix: false, port, role: null }
}

/**
 * Parses SKR_ALLOWED_HOSTS; null or blank gives DEFAULT_ALLOWED_HOSTS.
 * @throws RangeError naming the entry's position and what is wrong with it
 */
export function parseAllowedHosts (text: string | null): AllowedHosts {
  if (text === null || text.trim() === '') return DEFAULT_ALLOWED_HOSTS
  let any = false
  const rules: HostRule[] = []
  const entries = text.split(',').map((e) => e.trim())
  entries.forEach((entry, i) => {
    if (entry === '') return
    try {
      const rule = parseEntry(entry)
      if (rule === 'any') any = true
      else rules.push(Object.freeze(rule))
    } catch (err) {
      if (err instanceof HostSyntaxError) throw new RangeError(`entry ${i + 1} is not host, host:port, .suffix or *: it has ${err.kind}`, { cause: err })
      throw err
    }
  })
  if (!any && rules.length === 0) throw new RangeError('lists no host (use * to allow any host)')
  return Object.freeze({ any, rules: Object.freeze(rules), source: 'configured' })
}

/** True when `endpoint` (a canonical `host[:port]` from http/endpoint.ts) is allowed as `role`. */
export function isEndpointAllowed (allowed: AllowedHosts, endpoint: string, role: EndpointRole): boolean {
  if (allowed.any) return true
  let parsed
  try {
    parsed = parseHostAndPort(endpoint)
  } catch {
    return false
  }
  const host = addressOf(parsed.host.host)
  const port = parsed.port ?? HTTPS_PORT
  return allowed.rules.some((rule) => {
    if (rule.role !== null && rule.role !== role) return false
    if (rule.port !== null && rule.port !== port) return false
    if (!rule.suffix) return rule.host === host
    return parsed.host.ip === 0 && host.length > rule.host.length && host.endsWith(rule.host)
  })
}

/** The setting's rules as entries again (for logs and `skr` diagnostics). */
export function allowedHostEntries (allowed: AllowedHosts): string[] {
  if (allowed.any) return ['*']
  // IPv6 hosts keep their brackets in canonical form, so host:port is unambiguous.
  return allowed.rules.map((rule) => rule.port === null ? rule.host : `${rule.host}:${rule.port}`)
}
