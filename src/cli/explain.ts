// `skr explain`: why a key is (or is not) released. Reads the key's release policy from the vault
// with operator credentials (as `skr import-key` does), takes the claims skr would present (a
// token from a running sidecar, or a saved token), evaluates the policy locally with the
// evaluator the AKV emulator uses, and prints every clause as met or not met with its expected
// and actual value. Prints claims, never a token.
import { parseKid } from '../release/kid.ts'
import { loadConfig } from '../config/config.ts'
import { readExtraCa } from '../app/trust.ts'
import { normaliseEndpoint } from '../http/endpoint.ts'
import { DEFAULT_SERVICE_VERSION } from '../ops/import-key.ts'
import { buildReport, claimsOfToken, policyOfKey, releasable, renderJson, renderText, tokenFromText, type ClaimsSource } from '../ops/explain.ts'
import type { FlagSpecs } from '../config/flags.ts'
import {
  EXIT, helpText, parseCommandFlags, processIo, readUserFile, runOperatorCommand, toJson, usageError, wantsHelp,
  type CommandEnv, type CommandIo
} from './operator-kit.ts'
import { CREDENTIAL_FLAGS, vaultCredential } from './vault-credential.ts'

export const summary = 'say why a key is released or not: evaluate its release policy against the claims skr presents'

/** Where a sidecar listens by default (the reference's port, on loopback). */
export const DEFAULT_SIDECAR_URL = 'http://localhost:8080'

const FLAGS: FlagSpecs = {
  vault: { type: 'string', aliases: ['akv-endpoint', 'akv_endpoint'], help: 'the vault or Managed HSM host (myvault.vault.azure.net, or host:port)' },
  name: { type: 'string', aliases: ['kid'], help: 'the key: its name, or name/version' },
  version: { type: 'string', help: 'the key version (default: the current one)' },
  token: { type: 'string', help: 'read the claims from this saved MAA token (the JWT, or the JSON /attest/maa answered) instead of a sidecar' },
  sidecar: { type: 'string', help: `ask this running sidecar for a token (POST /attest/maa; default ${DEFAULT_SIDECAR_URL})` },
  'maa-endpoint': { type: 'string', aliases: ['maa_endpoint'], help: 'the maa_endpoint the sidecar attests with (default: the host of the policy\'s first authority)' },
  'api-version': { type: 'string', help: `Key Vault REST api-version (default ${DEFAULT_SERVICE_VERSION}, env SKR_AKV_API_VERSION)` },
  ...CREDENTIAL_FLAGS,
  json: { type: 'boolean', help: 'print {allowed, authority, issuer, claimsSource, authorities: [{authority, issuerMatches, met, conditions}], warnings, policy} as JSON' }
}


/** Hooks for tests. */
export interface ExplainHooks { maxRetries?: number, now?: () => Date }

function endpoint (value: string, flag: string): string {
  try {
    return normaliseEndpoint(value, flag)
  } catch (err) {
    throw usageError(err instanceof Error ? err.message : `invalid ${flag}`)
  }
}

function keyOf (values: Readonly<Record<string, string>>): { name: string, version?: string } {
  const raw = values.name
  if (raw === undefined) throw usageError('--name is required: the key name, or name/version')
  if (raw.includes('/') && values.version !== undefined) throw usageError('give the version in --name name/version or with --version, not both')
  // The same key-id rule as the sidecar's kid (release/kid.ts).
  let kid
  try {
    kid = parseKid(values.version === undefined ? raw : `${raw}/${values.version}`)
  } catch {
    throw usageError('--name must be a key name (1-127 letters, digits or dashes), optionally /version (1-64 letters or digits)')
  }
  return kid.version === null ? { name: kid.name } : { name: kid.name, version: kid.version }
}

function sidecarUrl (raw: string | undefined): string {
  let url: URL
  try {
    url = new URL(raw ?? DEFAULT_SIDECAR_URL)
  } catch {
    throw usageError('--sidecar must be a URL like http://localhost:8080')
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.username !== '' || url.password !== '' || (url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
    throw usageError('--sidecar must be a URL like http://localhost:8080 (http or https, no path)')
  }
  return url.origin
}

function authorityHost (policy: unknown): string | null {
  const first = (policy as { anyOf?: Array<{ authority?: unknown }> } | null)?.anyOf?.[0]?.authority
  if (typeof first !== 'string') return null
  try {
    return new URL(first).host
  } catch {
    return null
  }
}

/** Runs `skr explain`; see --help. Exit 0 when the policy is met, 1 when it is not or something failed, 2 on a usage error. */
export async function run (argv: readonly string[], env: CommandEnv, io: CommandIo = processIo, hooks: ExplainHooks = {}): Promise<number> {
  return await runOperatorCommand('explain', io, async () => {
    if (wantsHelp(argv)) {
      io.stdout(helpText('skr explain --vault HOST --name KEY[/VERSION] [--token FILE | --sidecar URL [--maa-endpoint HOST]] [--json]', summary, FLAGS, [
        'Reads the key\'s release policy from the vault (needs permission to read the key, keys/get) and the claims',
        'skr presents: from --token, a saved MAA token, or else a token the sidecar at --sidecar attests for',
        '(run it where the sidecar is reachable, e.g. in the app container). Each clause is printed met or NOT MET',
        'with the expected and actual values. The token is read without verifying its signature; it is never printed.',
        'Trust for private vaults and emulators: SKR_EXTRA_CA_CERTS=<PEM file>. Identity without --access-token:',
        'workload identity when AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE are set, else managed identity.',
        'Exit 0 the policy is met, 1 it is not (or the vault, the identity or the sidecar failed), 2 usage error.'
      ]))
      return EXIT.ok
    }
    const { values } = parseCommandFlags(argv, FLAGS)
    if (values.vault === undefined) throw usageError('--vault is required')
    const vault = endpoint(values.vault, '--vault')
    const key = keyOf(values)
    if (values.token !== undefined && (values.sidecar !== undefined || values['maa-endpoint'] !== undefined)) {
      throw usageError('--token gives the claims: --sidecar and --maa-endpoint do not apply')
    }
    const savedToken = values.token === undefined ? null : tokenFromText((await readUserFile(values.token, '--token')).toString('utf8'))
    const sidecar = savedToken === null ? sidecarUrl(values.sidecar) : null
    const maaFlag = values['maa-endpoint'] === undefined ? null : endpoint(values['maa-endpoint'], '--maa-endpoint')
    const config = loadConfig([], env)
    const credential = await vaultCredential(values, config)
    const extraCa = await readExtraCa(config)

    // Loaded only when needed: @azure/keyvault-keys is large.
    const { readKeyPolicy, tokenFromSidecar } = await import('../ops/explain-sources.ts')
    const vaultKey = await readKeyPolicy({
      vault,
      ...key,
      credential,
      serviceVersion: values['api-version'] ?? config.akv.apiVersion,
      extraCa,
      timeoutMs: config.requestTimeoutMs,
      ...(hooks.maxRetries === undefined ? {} : { maxRetries: hooks.maxRetries })
    })

    // A key without a usable policy is said so before anything else (not as a missing --maa-endpoint).
    policyOfKey(vaultKey)
    let source: ClaimsSource
    let token: string
    if (savedToken !== null) {
      source = { kind: 'token-file', path: values.token ?? '' }
      token = savedToken
    } else {
      const maaEndpoint = maaFlag ?? authorityHost(vaultKey.policy)
      if (maaEndpoint === null) throw usageError('the key\'s policy names no authority to attest with: give --maa-endpoint')
      source = { kind: 'sidecar', url: sidecar ?? DEFAULT_SIDECAR_URL, maaEndpoint }
      token = await tokenFromSidecar({ url: source.url, maaEndpoint, timeoutMs: config.requestTimeoutMs + 5_000 })
    }
    const report = buildReport({ vault, key: vaultKey, claims: claimsOfToken(token, savedToken === null ? 'sidecar' : 'file'), source, now: hooks.now?.() ?? new Date() })
    io.stdout(values.json === 'true' ? toJson(renderJson(report)) : renderText(report))
    // Exit 0 only when the vault would release: an expired token or a non-exportable key is refused whatever the policy says.
    return releasable(report) ? EXIT.ok : EXIT.failed
  })
}
