// The composition root for key release, used by the serve command and the demo: the identity
// (workload identity on AKS, else managed identity), the AKV upstream and release client, the
// trusted roots for release signers, and the orchestrator, wired from the frozen Config.
import { readFile } from 'node:fs/promises'
import { pino } from 'pino'
import type { Config } from '../config.ts'
import { ConfigInvalid } from '../errors.ts'
import { createReleaseClient } from '../akv/release-client.ts'
import { loadTrustedRoots } from '../akv/trust-store.ts'
import { Upstream } from '../http/upstream.ts'
import { createIdentityTokenSource } from '../identity/token-source.ts'
import type { IdentityConfig, TokenSource } from '../identity/token-source.ts'
import type { Logger } from '../log.ts'
import type { AttestationService, KeyReleaseService } from '../service/types.ts'
import { createKeyReleaseService } from './key-release.ts'

/** Test hooks and extras for buildKeyRelease. */
export interface BuildKeyReleaseOptions {
  log?: Logger
  /** Extra PEM roots (besides config.extraCaFile) for AKV and Entra TLS and for release signer chains. */
  extraCa?: string[]
  /** Replaces the identity built from config (tests). */
  tokens?: TokenSource
}

/** The service plus the resources it owns. */
export type BuiltKeyRelease = KeyReleaseService & { close: () => Promise<void> }

async function extraRoots (config: Config, extra: readonly string[]): Promise<string[]> {
  const roots = [...extra]
  if (config.extraCaFile !== null) {
    try {
      roots.push(await readFile(config.extraCaFile, 'utf8'))
    } catch (err) {
      const code = (err as { code?: unknown }).code
      throw new ConfigInvalid(`SKR_EXTRA_CA_CERTS names a file that cannot be read (${typeof code === 'string' ? code : 'unknown error'})`,
        { cause: err, details: { key: 'SKR_EXTRA_CA_CERTS' } })
    }
  }
  return roots
}

/** The identity settings of a configuration: workload identity needs all three AZURE_* values, as in the reference (pkg/msi). */
export function identityConfigOf (config: Config, extraCa: readonly string[] = []): IdentityConfig {
  const { azureClientId, azureTenantId, azureFederatedTokenFile, azureAuthorityHost } = config.env
  const workload = azureClientId !== null && azureTenantId !== null && azureFederatedTokenFile !== null
    ? { clientId: azureClientId, tenantId: azureTenantId, tokenFile: azureFederatedTokenFile }
    : null
  return {
    managedIdentityClientId: config.azure.identity.clientId ?? azureClientId,
    workload,
    authorityHost: azureAuthorityHost,
    extraCa
  }
}

/** Builds the key release service from config; throws ConfigInvalid for bad identity or CA settings. */
export async function buildKeyRelease (
  config: Config,
  attestation: AttestationService,
  options: BuildKeyReleaseOptions = {}
): Promise<BuiltKeyRelease> {
  const log = (options.log ?? pino({ level: 'silent' })).child({ component: 'skr' })
  const ca = await extraRoots(config, options.extraCa ?? [])
  const tokens = options.tokens ?? createIdentityTokenSource(identityConfigOf(config, ca), { log })
  // Computed once (the set is memoised by content); the release reads it per call.
  const roots = loadTrustedRoots(ca.length === 0 ? {} : { extraCaPem: ca })
  const upstream = new Upstream({ name: 'akv', ...(ca.length === 0 ? {} : { ca }) })
  const release = createReleaseClient({ upstream, apiVersion: config.akv.apiVersion, enc: config.akv.enc, log })
  const service = createKeyReleaseService({ attestation, tokens, release, trustedRoots: () => roots, enc: config.akv.enc, log })
  log.info({ identity: tokens.kind, akvApiVersion: config.akv.apiVersion, enc: config.akv.enc ?? 'default' }, 'key release ready')
  return {
    release: service.release,
    close: async () => { await upstream.close() }
  }
}
