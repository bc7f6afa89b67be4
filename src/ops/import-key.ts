// Creates (or imports) an exportable key with a release policy in Azure Key Vault Premium, Managed
// HSM or the AKV emulator, as the reference's tools/importkey does, through @azure/keyvault-keys
// (docs/protocols.md#creating-exportable-keys, docs/protocols.md#key-vault-sdk): `exportable: true`, `releasePolicy: {encodedPolicy, immutable}`,
// serviceVersion pinned (7.4 by default, as the reference), challenge-resource verification turned
// off only for hosts outside Azure's vault domains, extra CA roots through a per-request agent.
// Returns the key id and the stored policy; never reads or returns key material.
import type { TokenCredential } from '@azure/identity'
import type { CreateKeyOptions, KeyVaultKey } from '@azure/keyvault-keys'
import { UpstreamResponseInvalid } from '../errors.ts'
import type { ImportableKey } from './key-file.ts'
import { openKeyClient, vaultError } from './vault-client.ts'

export { isAzureVaultHost, staticTokenCredential, vaultError } from './vault-client.ts'

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

/** The release policy the vault returned (its encodedPolicy bytes), parsed; null when the key has none. */
export function decodePolicy (encoded: Uint8Array | undefined): unknown {
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
  const { client, close } = openKeyClient({
    vault,
    credential: request.credential,
    serviceVersion: request.serviceVersion,
    extraCa: request.extraCa,
    ...(request.maxRetries === undefined ? {} : { maxRetries: request.maxRetries })
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
    close()
  }
}
