// What the operator commands that talk to a vault with @azure/keyvault-keys share (`skr
// import-key`, `skr explain`): a KeyClient for a host (docs/protocols.md#key-vault-sdk: serviceVersion
// pinned, challenge-resource verification off only for hosts outside Azure's vault domains, extra
// CA roots through one per-command agent), a credential for a bearer token given on the command
// line, and the mapping of what the SDK throws to skr's errors (never a token, never a body).
import https from 'node:https'
import tls from 'node:tls'
import type { AccessToken, TokenCredential } from '@azure/identity'
import { KeyClient } from '@azure/keyvault-keys'
import {
  AccessDenied, IdentityUnavailable, isSidecarError, type SidecarError, UpstreamNotFound, UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
} from '../errors.ts'
import { isTlsCertificateError } from '../http/errors-map.ts'
import { VAULT_RESOURCES, hostnameOf } from '../identity/resource.ts'
import { untrustedText } from '../text/untrusted.ts'

/** True for a Key Vault or Managed HSM host of a known Azure cloud (the SDK's challenge check then stays on). */
export function isAzureVaultHost (vault: string): boolean {
  const host = hostnameOf(vault)
  return VAULT_RESOURCES.some((entry) => host.endsWith(`.${entry.suffix}`))
}

/** A credential that always returns the given bearer token (for --access-token). */
export function staticTokenCredential (token: string, lifetimeSeconds = 3600): TokenCredential {
  const expiresOnTimestamp = Date.now() + lifetimeSeconds * 1000
  return { getToken: async (): Promise<AccessToken> => ({ token, expiresOnTimestamp }) }
}

/** How to reach one vault. */
export interface KeyClientSettings {
  /** host[:port], already normalised. */
  vault: string
  credential: TokenCredential
  /** Key Vault REST api-version (skr's default 7.4). */
  serviceVersion: string
  /** PEM roots trusted besides the system's (SKR_EXTRA_CA_CERTS). */
  extraCa: readonly string[]
  /** SDK retries for 408/5xx and throttling with Retry-After (default the SDK's 3). */
  maxRetries?: number
}

/** A KeyClient and the call that closes its connections (call it when done: no socket outlives the command). */
export interface OpenKeyClient {
  client: KeyClient
  close: () => void
}

/** A KeyClient for `settings.vault` over its own keep-alive agent. */
export function openKeyClient (settings: KeyClientSettings): OpenKeyClient {
  // `ca` replaces Node's roots, so the defaults come first.
  const defaults = (tls as { getCACertificates?: (which: 'default') => string[] }).getCACertificates?.('default') ?? [...tls.rootCertificates]
  const agent = new https.Agent({ keepAlive: true, ...(settings.extraCa.length > 0 ? { ca: [...defaults, ...settings.extraCa] } : {}) })
  const client = new KeyClient(`https://${settings.vault}`, settings.credential, {
    serviceVersion: settings.serviceVersion,
    disableChallengeResourceVerification: !isAzureVaultHost(settings.vault),
    ...(settings.maxRetries === undefined ? {} : { retryOptions: { maxRetries: settings.maxRetries } }),
    additionalPolicies: [{
      position: 'perCall',
      policy: { name: 'skrAgentPolicy', sendRequest: async (req, next) => { req.agent = agent; return await next(req) } }
    }]
  })
  return { client, close: () => { agent.destroy() } }
}

function safeText (value: unknown): string {
  return untrustedText(typeof value === 'string' ? value : '', { trim: true, max: 200 })
}

function field (value: unknown, name: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[name] : undefined
}

/** What a 403 from the vault means for the operation: the permission the identity lacks. */
export const PUT_KEY_PERMISSION = 'the identity needs permission to create/import keys (Key Vault Crypto Officer, Managed HSM Crypto User)'

/**
 * Maps what KeyClient throws to skr's errors: 401/403 → AccessDenied (a 403 names `permission`),
 * other 4xx → UpstreamRejected, 429/5xx/network → UpstreamUnavailable, a host name that does not
 * exist → UpstreamNotFound, a timeout → UpstreamTimeout, a credential failure → IdentityUnavailable.
 */
export function vaultError (err: unknown, vault: string, permission: string = PUT_KEY_PERMISSION): SidecarError {
  if (isSidecarError(err)) return err
  const status = field(err, 'statusCode')
  const details = field(field(err, 'details'), 'error')
  const vaultCode = safeText(field(details, 'code') ?? field(err, 'code'))
  const vaultMessage = safeText(field(details, 'message'))
  const said = `${vaultCode === '' ? '' : `${vaultCode}: `}${vaultMessage === '' ? 'no message' : vaultMessage}`
  const facts = { upstream: 'akv', host: vault, upstreamStatus: typeof status === 'number' ? status : null, upstreamCode: vaultCode === '' ? null : vaultCode }
  if (typeof status === 'number') {
    if (status === 401) {
      return new AccessDenied(`vault ${vault} refused the credentials (401): the token must be for the vault's resource (https://vault.azure.net or https://managedhsm.azure.net) and unexpired`, { details: facts })
    }
    if (status === 403) return new AccessDenied(`vault ${vault} refused the operation (403 ${said}): ${permission}`, { details: facts })
    if (status === 429 || status >= 500) return new UpstreamUnavailable(`vault ${vault} answered ${status} (${said}) after retries`, { details: facts })
    return new UpstreamRejected(`vault ${vault} refused the key (${status} ${said})`, { details: facts })
  }
  if (field(err, 'name') === 'AbortError' || field(err, 'name') === 'TimeoutError') {
    return new UpstreamTimeout(`vault ${vault} did not answer in time`, { details: facts })
  }
  if (/credential|token|identity/i.test(String(field(err, 'name') ?? ''))) {
    return new IdentityUnavailable(`no token for vault ${vault}: ${safeText(field(err, 'message'))}`, { details: facts })
  }
  const code = safeText(field(err, 'code') ?? field(field(err, 'cause'), 'code'))
  if (code === 'ENOTFOUND') {
    return new UpstreamNotFound(`vault ${vault}: host name not found (ENOTFOUND): check the name (a typo, a deleted vault, a private endpoint whose DNS zone is not linked)`, { details: { ...facts, errorCode: code } })
  }
  const hint = isTlsCertificateError(code) ? ': the vault\'s TLS certificate is not trusted (set SKR_EXTRA_CA_CERTS to a PEM with its CA for private vaults and emulators)' : ''
  return new UpstreamUnavailable(`vault ${vault} could not be reached (${code === '' ? safeText(field(err, 'message')) : code})${hint}`, { details: facts })
}
