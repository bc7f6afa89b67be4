// `skr import-key`: creates (or, with --key-file, imports) an exportable key with a release policy
// in a Key Vault, Managed HSM or the AKV emulator, like the reference's tools/importkey. The
// policy is a file, or generated as `skr policy` generates it. Prints the key id and the stored
// policy; never the key, never the token.
import { loadConfig } from '../config/config.ts'
import { readExtraCa } from '../app/trust.ts'
import { UpstreamResponseInvalid } from '../errors.ts'
import { normaliseEndpoint } from '../http/endpoint.ts'
import { resourceFor } from '../identity/resource.ts'
import { DEFAULT_SERVICE_VERSION, isAzureVaultHost, putExportableKey, type HsmKeyType, type KeySource } from '../ops/import-key.ts'
import { parseKeyFile, wipeKey, type ImportableKey } from '../ops/key-file.ts'
import { encodeReleasePolicy, parsePolicyDocument } from '../ops/release-policy-builder.ts'
import type { FlagSpecs } from '../config/flags.ts'
import {
  helpText, parseCommandFlags, processIo, readUserFile, runOperatorCommand, takeRepeated, toJson, usageError, wantsHelp,
  type CommandEnv, type CommandIo
} from './operator-kit.ts'
import { POLICY_FLAGS, policyFromFlags } from './policy.ts'
import { CREDENTIAL_FLAGS, vaultCredential } from './vault-credential.ts'

export const summary = 'create or import an exportable key with a release policy (Key Vault, Managed HSM, emulator)'

const KEY_FLAGS: FlagSpecs = {
  vault: { type: 'string', help: 'the vault or Managed HSM host (myvault.vault.azure.net, myhsm.managedhsm.azure.net, or host:port)' },
  name: { type: 'string', help: 'the key name (letters, digits, dashes)' },
  kty: { type: 'string', help: 'oct-HSM, RSA-HSM or EC-HSM (default: oct-HSM on a Managed HSM, RSA-HSM on a vault; from the file with --key-file)' },
  size: { type: 'string', help: 'key size in bits: oct 128/192/256 (default 256), RSA 2048/3072/4096 (default 2048)' },
  curve: { type: 'string', help: 'EC curve P-256 (default) or P-384' },
  'key-file': { type: 'string', help: 'import this key instead of creating one: private JWK, PEM private key, or hex symmetric key' },
  policy: { type: 'string', help: 'release policy JSON file (default: generated like `skr policy` from the policy flags below)' },
  immutable: { type: 'boolean', help: 'make the release policy immutable (it can never be changed)' },
  mhsm: { type: 'boolean', help: 'the host is a Managed HSM (detected for *.managedhsm.* hosts)' },
  'api-version': { type: 'string', help: `Key Vault REST api-version (default ${DEFAULT_SERVICE_VERSION}, env SKR_AKV_API_VERSION)` },
  ...CREDENTIAL_FLAGS,
  json: { type: 'boolean', help: 'print {operation, keyId, version, keyType, exportable, immutable, releasePolicy} as JSON' }
}

const FLAGS: FlagSpecs = { ...KEY_FLAGS, ...POLICY_FLAGS }

const KEY_NAME = /^[0-9A-Za-z-]{1,127}$/
const SIZES: Readonly<Record<HsmKeyType, readonly number[]>> = { 'oct-HSM': [128, 192, 256], 'RSA-HSM': [2048, 3072, 4096], 'EC-HSM': [] }
const FAMILY_KTY: Readonly<Record<ImportableKey['family'], HsmKeyType>> = { oct: 'oct-HSM', RSA: 'RSA-HSM', EC: 'EC-HSM' }

/** Hooks for tests. */
export interface ImportKeyHooks { root?: string, maxRetries?: number }

function ktyOption (raw: string | undefined): HsmKeyType | undefined {
  if (raw === undefined) return undefined
  const found = (['oct-HSM', 'RSA-HSM', 'EC-HSM'] as const).find((k) => k.toLowerCase() === raw.toLowerCase())
  if (found === undefined) throw usageError('--kty must be oct-HSM, RSA-HSM or EC-HSM')
  return found
}

function keySource (values: Readonly<Record<string, string>>, mhsm: boolean, vault: string, keyFile: ImportableKey | null): KeySource {
  const kty = ktyOption(values.kty)
  if (keyFile !== null) {
    if (values.size !== undefined || values.curve !== undefined) throw usageError('--size and --curve describe a key to create: not with --key-file')
    if (kty !== undefined && kty !== FAMILY_KTY[keyFile.family]) throw usageError(`--kty ${kty} does not match the key file (${keyFile.description})`)
    return { kind: 'import', key: keyFile }
  }
  const type = kty ?? (mhsm ? 'oct-HSM' : 'RSA-HSM')
  // Key Vault Premium has no symmetric HSM keys; only Managed HSM does.
  if (type === 'oct-HSM' && !mhsm && isAzureVaultHost(vault)) throw usageError('oct-HSM keys need a Managed HSM (*.managedhsm.azure.net); use RSA-HSM or EC-HSM on a Key Vault')
  if (type === 'EC-HSM') {
    if (values.size !== undefined) throw usageError('--size does not apply to EC keys: use --curve')
    const curve = values.curve ?? 'P-256'
    if (curve !== 'P-256' && curve !== 'P-384') throw usageError('--curve must be P-256 or P-384')
    return { kind: 'create', kty: type, curve }
  }
  if (values.curve !== undefined) throw usageError('--curve applies to EC-HSM keys only')
  const size = values.size === undefined ? (type === 'oct-HSM' ? 256 : 2048) : Number(values.size)
  if (!SIZES[type].includes(size)) throw usageError(`--size for ${type} must be ${SIZES[type].join(', ')}`)
  return { kind: 'create', kty: type, size }
}

function policyFlagsGiven (values: Readonly<Record<string, string>>, extraClaims: readonly string[]): string[] {
  return [...Object.keys(POLICY_FLAGS).filter((f) => values[f] !== undefined), ...(extraClaims.length > 0 ? ['extra-claim'] : [])]
}

/** Runs `skr import-key`; see --help. */
export async function run (argv: readonly string[], env: CommandEnv, io: CommandIo = processIo, hooks: ImportKeyHooks = {}): Promise<number> {
  return await runOperatorCommand('import-key', io, async () => {
    if (wantsHelp(argv)) {
      io.stdout(helpText('skr import-key --vault HOST --name NAME [--kty T] [--size N | --curve C] [--key-file F] [--policy F | policy flags] [--json]', summary, FLAGS, [
        'Trust for private vaults and emulators: SKR_EXTRA_CA_CERTS=<PEM file>. Identity without --access-token:',
        'workload identity when AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE are set, else managed identity.',
        'Exit 0 ok, 1 the vault or identity refused or failed, 2 usage error (bad flags, unreadable or malformed files).'
      ]))
      return 0
    }
    const { rest, values: repeated } = takeRepeated(argv, ['extra-claim'])
    const { values } = parseCommandFlags(rest, FLAGS)
    const extraClaims = repeated['extra-claim'] ?? []
    if (values.vault === undefined) throw usageError('--vault is required')
    if (values.name === undefined || !KEY_NAME.test(values.name)) throw usageError('--name is required: 1-127 letters, digits or dashes')
    let vault: string
    try {
      vault = normaliseEndpoint(values.vault, '--vault')
    } catch (err) {
      throw usageError(err instanceof Error ? err.message : 'invalid --vault')
    }
    const mhsm = values.mhsm === 'true' || resourceFor(vault).kind === 'mhsm'
    const config = loadConfig([], env)

    let policy: Buffer
    let warnings: string[] = []
    if (values.policy !== undefined) {
      const given = policyFlagsGiven(values, extraClaims)
      if (given.length > 0) throw usageError(`--policy is a complete policy: --${given[0] ?? ''} does not apply`)
      policy = encodeReleasePolicy(parsePolicyDocument((await readUserFile(values.policy, '--policy')).toString('utf8')))
    } else {
      const generated = await policyFromFlags(values, extraClaims, env, hooks)
      policy = encodeReleasePolicy(generated.policy)
      warnings = generated.warnings
    }
    const keyFile = values['key-file'] === undefined ? null : parseKeyFile(await readUserFile(values['key-file'], '--key-file'))
    const source = keySource(values, mhsm, vault, keyFile)
    const credential = await vaultCredential(values, config)
    for (const warning of warnings) io.stderr(`skr import-key: warning: ${warning}\n`)

    let result
    try {
      result = await putExportableKey({
        vault,
        name: values.name,
        source,
        policy,
        immutable: values.immutable === 'true',
        serviceVersion: values['api-version'] ?? config.akv.apiVersion,
        credential,
        extraCa: await readExtraCa(config),
        timeoutMs: config.requestTimeoutMs,
        ...(hooks.maxRetries === undefined ? {} : { maxRetries: hooks.maxRetries })
      })
    } finally {
      if (keyFile !== null) wipeKey(keyFile)
    }
    if (result.exportable !== true) {
      throw new UpstreamResponseInvalid(`the vault stored ${result.keyId} without exportable: true; it cannot be released`, { details: { upstream: 'akv' } })
    }
    if (values.json === 'true') {
      io.stdout(toJson({ vault, ...result }))
    } else {
      io.stdout(`${result.operation === 'create' ? 'created' : 'imported'} ${result.keyId} (${result.keyType ?? 'unknown type'}, exportable${result.immutable === true ? ', immutable policy' : ''})\n`)
      io.stdout(`release policy:\n${JSON.stringify(result.releasePolicy, null, 2)}\n`)
    }
    return 0
  })
}
