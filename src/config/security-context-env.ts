// The UVM_* settings as the frozen Config holds them, in the shape uvm/security-context.ts reads.
import type { Env } from '../uvm/security-context.ts'
import type { Config } from './config.ts'

/** The UVM_* variables as the frozen Config holds them, in the shape loadSecurityContext reads. */
export function securityContextEnv (config: Pick<Config, 'env'>): Env {
  const { env } = config
  return {
    UVM_SECURITY_CONTEXT_DIR: env.uvmSecurityContextDir ?? undefined,
    UVM_SECURITY_POLICY: env.uvmSecurityPolicy ?? undefined,
    UVM_HOST_AMD_CERTIFICATE: env.uvmHostAmdCertificate ?? undefined,
    UVM_REFERENCE_INFO: env.uvmReferenceInfo ?? undefined
  }
}
