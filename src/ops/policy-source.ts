// Where the HOST_DATA of a generated release policy comes from, in order: an explicit hex value,
// a security policy file (base64 or raw Rego), the simulated backend's report (HOST_DATA as the
// simulated host set it), or the UVM security context of the container this runs in (the same
// discovery the sidecar uses: UVM_SECURITY_CONTEXT_DIR, /security-context-*, UVM_SECURITY_POLICY).
import type { Config } from '../config/config.ts'
import { ConfigInvalid, isSidecarError } from '../errors.ts'
import { parseReport } from '../snp/abi.ts'
import { securityContextEnv } from '../config/security-context-env.ts'
import { loadSecurityContext } from '../uvm/security-context.ts'
import { readDeviceReport, type DeviceReportOptions } from './device-report.ts'
import { hostDataOf, normaliseHostData, securityPolicyFromFile } from './release-policy-builder.ts'

/** Where the host data was found. */
export type HostDataSource = 'flag' | 'security-policy-file' | 'simulated-report' | 'security-context' | 'none'

/** The resolved host data (null when nothing provided it) and a note for the user. */
export interface ResolvedHostData { hostData: string | null, source: HostDataSource, detail: string }

/** The inputs, by precedence. */
export interface HostDataInputs {
  hostDataHex?: string
  /** The contents of a security policy file. */
  securityPolicyFile?: Buffer
  config: Config
}

/** Resolves HOST_DATA; ConfigInvalid when an explicit input is malformed. */
export async function resolveHostData (inputs: HostDataInputs, options: DeviceReportOptions = {}): Promise<ResolvedHostData> {
  if (inputs.hostDataHex !== undefined) {
    return { hostData: normaliseHostData(inputs.hostDataHex), source: 'flag', detail: '--host-data' }
  }
  if (inputs.securityPolicyFile !== undefined) {
    const { bytes, encoding } = securityPolicyFromFile(inputs.securityPolicyFile)
    if (bytes.length === 0) throw new ConfigInvalid('--security-policy file is empty')
    return { hostData: hostDataOf(bytes), source: 'security-policy-file', detail: `sha256 of the ${encoding === 'base64' ? 'base64-decoded' : 'raw'} security policy file` }
  }
  if (inputs.config.attestation === 'simulated') {
    const report = parseReport(await readDeviceReport(inputs.config, Buffer.alloc(0), options))
    const zero = report.hostData.every((b) => b === 0)
    return {
      hostData: report.hostData.toString('hex'),
      source: 'simulated-report',
      detail: zero ? 'HOST_DATA of the simulated report (all zero: no security policy in the security context)' : 'HOST_DATA of the simulated report'
    }
  }
  let context
  try {
    context = await loadSecurityContext({ env: securityContextEnv(inputs.config), ...(options.root === undefined ? {} : { root: options.root }) })
  } catch (err) {
    if (!isSidecarError(err)) throw err
    throw new ConfigInvalid(`the UVM security context cannot be used: ${err.message}`, { cause: err })
  }
  if (context.securityPolicy === null || context.securityPolicy.length === 0) {
    return { hostData: null, source: 'none', detail: 'no security policy in the UVM security context' }
  }
  const where = context.sources.securityPolicy === 'env' ? 'UVM_SECURITY_POLICY' : `${context.dir ?? ''}/security-policy-base64`
  return { hostData: hostDataOf(context.securityPolicy), source: 'security-context', detail: `sha256 of the security policy in ${where}` }
}
