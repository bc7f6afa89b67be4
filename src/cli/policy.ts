// `skr policy`: prints the key release policy for this environment (the canonical ACI policy, or
// the AKS/Kata preset), with HOST_DATA taken from --host-data, a security policy file, the
// simulated report or the UVM security context. `skr import-key` builds its default policy the
// same way, through policyFromFlags.
import { loadConfig } from '../config/config.ts'
import { resolveHostData, type ResolvedHostData } from '../ops/policy-source.ts'
import {
  buildReleasePolicy, DEFAULT_MAA_ENDPOINT, encodeReleasePolicy, parseExtraClaim, pinsHostData,
  type PolicyPlatform, type ReleasePolicyDocument
} from '../ops/release-policy-builder.ts'
import type { FlagSpecs } from '../config/flags.ts'
import {
  helpText, parseCommandFlags, processIo, readUserFile, runOperatorCommand, takeRepeated, toJson, usageError, wantsHelp,
  type CommandEnv, type CommandIo
} from './operator-kit.ts'

export const summary = 'print the key release policy for this environment (ACI or AKS preset)'

/** The flags that shape a generated policy (shared with import-key). */
export const POLICY_FLAGS: FlagSpecs = {
  'maa-endpoint': { type: 'string', aliases: ['maa_endpoint'], help: `MAA endpoint whose tokens may release the key (default ${DEFAULT_MAA_ENDPOINT})` },
  platform: { type: 'string', help: 'aci (default: hostdata, azure-compliant-uvm, not debuggable, vmpl 0) or aks (attestation type sevsnpvm, hostdata if known, not debuggable)' },
  'security-policy': { type: 'string', help: 'security policy file (base64 ccePolicy or raw Rego) whose SHA-256 is the host data' },
  'host-data': { type: 'string', help: 'the host data itself: 64 hex digits' },
  compliance: { type: 'string', help: 'x-ms-compliance-status value, or none to leave the claim out (default: aci azure-compliant-uvm, aks none)' },
  vmpl: { type: 'string', help: 'x-ms-sevsnpvm-vmpl value 0..3, or none (default: aci 0, aks none)' },
  'no-debug-check': { type: 'boolean', help: 'leave out x-ms-sevsnpvm-is-debuggable == false (NOT for production)' },
  'extra-claim': { type: 'string', help: 'add claim == value (name=value); repeatable' },
  attestation: { type: 'string', help: 'auto, tsm, sev-guest, sev or simulated; simulated takes the host data from a simulated report' }
}

const FLAGS: FlagSpecs = {
  ...POLICY_FLAGS,
  json: { type: 'boolean', help: 'print {policy, encoded, hostData, hostDataSource, ...} as JSON' }
}

/** Hooks for tests. */
export interface PolicyHooks { root?: string }

/** A generated policy and where its host data came from. */
export interface GeneratedPolicy { policy: ReleasePolicyDocument, hostData: ResolvedHostData, platform: PolicyPlatform, warnings: string[] }

function optionalNumberOrNone (raw: string | undefined, flag: string): number | null | undefined {
  if (raw === undefined) return undefined
  if (raw.toLowerCase() === 'none') return null
  if (!/^[0-3]$/.test(raw)) throw usageError(`${flag} must be 0..3 or none`)
  return Number(raw)
}

/** Builds the policy from parsed POLICY_FLAGS values and repeated --extra-claim values. */
export async function policyFromFlags (values: Readonly<Record<string, string>>, extraClaims: readonly string[], env: CommandEnv, hooks: PolicyHooks = {}): Promise<GeneratedPolicy> {
  const platformRaw = (values.platform ?? 'aci').toLowerCase()
  if (platformRaw !== 'aci' && platformRaw !== 'aks') throw usageError('--platform must be aci or aks')
  const platform: PolicyPlatform = platformRaw
  if (values['host-data'] !== undefined && values['security-policy'] !== undefined) throw usageError('give --host-data or --security-policy, not both')
  const config = loadConfig(values.attestation === undefined ? [] : ['--attestation', values.attestation], env)
  const securityPolicyFile = values['security-policy'] === undefined ? undefined : await readUserFile(values['security-policy'], '--security-policy')
  const hostData = await resolveHostData({
    config,
    ...(values['host-data'] === undefined ? {} : { hostDataHex: values['host-data'] }),
    ...(securityPolicyFile === undefined ? {} : { securityPolicyFile })
  }, hooks)
  const compliance = values.compliance === undefined ? undefined : values.compliance.toLowerCase() === 'none' ? null : values.compliance
  const vmpl = optionalNumberOrNone(values.vmpl, '--vmpl')
  const policy = buildReleasePolicy({
    maaEndpoint: values['maa-endpoint'] ?? DEFAULT_MAA_ENDPOINT,
    platform,
    hostData: hostData.hostData,
    ...(compliance === undefined ? {} : { compliance }),
    ...(vmpl === undefined ? {} : { vmpl }),
    debugCheck: values['no-debug-check'] !== 'true',
    extraClaims: extraClaims.map(parseExtraClaim)
  })
  const warnings: string[] = []
  if (!pinsHostData(policy)) {
    warnings.push(`the policy does not pin x-ms-sevsnpvm-hostdata (${hostData.detail}): any SEV-SNP guest ${policy.anyOf[0]?.authority ?? ''} attests can release the key`)
  }
  if (values['no-debug-check'] === 'true') warnings.push('the policy lets a debuggable guest (whose memory the host can read) release the key')
  if (hostData.source === 'simulated-report') warnings.push('host data comes from a SIMULATED report: use this policy with emulated services only')
  return { policy, hostData, platform, warnings }
}

/** Runs `skr policy`; see --help. */
export async function run (argv: readonly string[], env: CommandEnv, io: CommandIo = processIo, hooks: PolicyHooks = {}): Promise<number> {
  return await runOperatorCommand('policy', io, async () => {
    if (wantsHelp(argv)) {
      io.stdout(helpText('skr policy [flags]', summary, FLAGS, [
        'Prints the policy JSON to stdout (warnings to stderr). Exit 0 ok, 1 failure, 2 usage error.',
        'Host data precedence: --host-data, --security-policy, the simulated report (--attestation simulated), the UVM security context.'
      ]))
      return 0
    }
    const { rest, values: repeated } = takeRepeated(argv, ['extra-claim'])
    const { values } = parseCommandFlags(rest, FLAGS)
    const generated = await policyFromFlags(values, repeated['extra-claim'] ?? [], env, hooks)
    for (const warning of generated.warnings) io.stderr(`skr policy: warning: ${warning}\n`)
    if (values.json === 'true') {
      io.stdout(toJson({
        policy: generated.policy,
        encoded: encodeReleasePolicy(generated.policy).toString('base64url'),
        platform: generated.platform,
        hostData: generated.hostData.hostData,
        hostDataSource: generated.hostData.source,
        hostDataDetail: generated.hostData.detail,
        warnings: generated.warnings
      }))
    } else {
      io.stdout(JSON.stringify(generated.policy, null, 2) + '\n')
    }
    return 0
  })
}
