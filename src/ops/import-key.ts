// Creates (or imports) an exportable key with a release policy in Azure Key Vault Premium, Managed
// HSM or the AKV emulator, as the reference's tools/importkey does, through @azure/keyvault-keys
// (wire-protocols §2.7, §6.1-6.3): `exportable: true`, `releasePolicy: {encodedPolicy, immutable}`,
// serviceVersion pinned (7.4 by default, as the reference), challenge-resource verification turned
// off only for hosts outside Azure's vault domains, extra CA roots through a per-request agent.
// Returns the key id and the stored policy; never reads or returns key material.
import https from 'node:https'
import tls from 'node:tls'
import type { AccessToken, TokenCredential } from '@azure/identity'
import { KeyClient, type CreateKeyOptions, type KeyVaultKey } from '@azure/keyvault-keys'
import {
  AccessDenied, IdentityUnavailable, isSidecarError, type SidecarError, UpstreamRejected, UpstreamResponseInvalid, UpstreamTimeout, UpstreamUnavailable
} from '../errors.ts'
import { VAULT_RESOURCES, hostnameOf } from '../identity/resource.ts'
import type { ImportableKey } from './key-file.ts'

/** The key types a release can export (the -HSM types: the key lives in the HSM). */
export type HsmKeyType = 'oct-HSM' | 'RSA-HSM' | 'EC-HSM'

/** What to put in the vault: a key the vault generates, or one from a file. */
export type KeySource =
  | { kind: 'create', kty: HsmKeyType, size?: number, curve?: 'P-256' | 'P-384' }
  | { kind: 'import', key: ImportableKey }

/** Everything one create/import needs. */
export interface PutKeyRequest {
  /** host[:port], already normalised. */
  vault: string
  name: string
  source: KeySource
  /** The policy JSON bytes. */
  policy: Buffer
  immutable: boolean
  /** Key Vault REST api-version (default 7.4). */
  serviceVersion: string
  credential: TokenCredential
  /** PEM roots trusted besides the system's (SKR_EXTRA_CA_CERTS). */
  extraCa: readonly string[]
  /** Whole-operation deadline in milliseconds. */
  timeoutMs: number
  /** SDK retries for 408/5xx and throttling with Retry-After (default the SDK's 3). */
  maxRetries?: number
}

/** What the vault stored. */
export interface PutKeyResult {
  operation: 'create' | 'import'
  keyId: string
  name: string
  version: string | null
  keyType: string | null
  exportable: boolean | null
  immutable: boolean | null
  /** The release policy as the vault returned it, decoded (null if it returned none). */
  releasePolicy: unknown
}

/** The REST api-version the reference's importkey and sidecar use. */
export const DEFAULT_SERVICE_VERSION = '7.4'

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

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g
const JWT_LIKE = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.?[A-Za-z0-9_-]*/g

function safeText (value: unknown): string {
  const text = typeof value === 'string' ? value : ''
  const clean = text.replace(CONTROL, ' ').replace(JWT_LIKE, '[redacted]').trim()
  return clean.length > 200 ? `${clean.slice(0, 200)}…` : clean
}

function field (value: unknown, name: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[name] : undefined
}

const TLS_CODES = new Set(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'ERR_TLS_CERT_ALTNAME_INVALID'])

/** Maps what KeyClient throws to skr's errors: 401/403 → AccessDenied, 4xx → UpstreamRejected, 429/5xx/network → UpstreamUnavailable. */
export function vaultError (err: unknown, vault: string): SidecarError {
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
    if (status === 403) {
      return new AccessDenied(`vault ${vault} refused the operation (403 ${said}): the identity needs permission to create/import keys (Key Vault Crypto Officer, Managed HSM Crypto User)`, { details: facts })
    }
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
  const hint = TLS_CODES.has(code) ? ': the vault\'s TLS certificate is not trusted (set SKR_EXTRA_CA_CERTS to a PEM with its CA for private vaults and emulators)' : ''
  return new UpstreamUnavailable(`vault ${vault} could not be reached (${code === '' ? safeText(field(err, 'message')) : code})${hint}`, { details: facts })
}

function decodePolicy (encoded: Uint8Array | undefined): unknown {
  if (encoded === undefined) return null
  const text = Buffer.from(encoded).toString('utf8')
  try {
    return JSON.parse(text)
  } catch {
    throw new UpstreamResponseInvalid('the vault returned a release policy that is not JSON', { details: { upstream: 'akv' } })
  }
}

function resultOf (key: KeyVaultKey, operation: PutKeyResult['operation']): PutKeyResult {
  if (typeof key.id !== 'string' || key.id === '') throw new UpstreamResponseInvalid('the vault answered without a key id', { details: { upstream: 'akv' } })
  const policy = key.properties.releasePolicy
  return {
    operation,
    keyId: key.id,
    name: key.name,
    version: key.properties.version ?? null,
    keyType: key.keyType ?? null,
    exportable: key.properties.exportable ?? null,
    immutable: policy?.immutable ?? null,
    releasePolicy: decodePolicy(policy?.encodedPolicy)
  }
}

/** Creates or imports the key; throws SidecarErrors (see vaultError). */
export async function putExportableKey (request: PutKeyRequest): Promise<PutKeyResult> {
  const { vault, source } = request
  // `ca` replaces Node's roots, so the defaults come first; one agent, destroyed at the end, so
  // no keep-alive socket outlives the command.
  const defaults = (tls as { getCACertificates?: (which: 'default') => string[] }).getCACertificates?.('default') ?? [...tls.rootCertificates]
  const agent = new https.Agent({ keepAlive: true, ...(request.extraCa.length > 0 ? { ca: [...defaults, ...request.extraCa] } : {}) })
  const client = new KeyClient(`https://${vault}`, request.credential, {
    serviceVersion: request.serviceVersion,
    disableChallengeResourceVerification: !isAzureVaultHost(vault),
    ...(request.maxRetries === undefined ? {} : { retryOptions: { maxRetries: request.maxRetries } }),
    additionalPolicies: [{
      position: 'perCall',
      policy: { name: 'skrAgentPolicy', sendRequest: async (req, next) => { req.agent = agent; return await next(req) } }
    }]
  })
  const releasePolicy = { encodedPolicy: new Uint8Array(request.policy), immutable: request.immutable, contentType: 'application/json; charset=utf-8' }
  const abortSignal = AbortSignal.timeout(request.timeoutMs)
  try {
    if (source.kind === 'import') {
      const key = await client.importKey(request.name, source.key.jwk, { hardwareProtected: true, exportable: true, releasePolicy, abortSignal })
      return resultOf(key, 'import')
    }
    const options: CreateKeyOptions = {
      exportable: true,
      releasePolicy,
      abortSignal,
      ...(source.size === undefined ? {} : { keySize: source.size }),
      ...(source.curve === undefined ? {} : { curve: source.curve })
    }
    return resultOf(await client.createKey(request.name, source.kty, options), 'create')
  } catch (err) {
    throw vaultError(err, vault)
  } finally {
    agent.destroy()
  }
}
