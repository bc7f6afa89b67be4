// One attestation report from this machine's SEV-SNP interface (or the simulated backend), for
// the operator commands: builds the attestation service from the frozen Config exactly as the
// server does, asks it for one report, and closes everything it opened so the command can exit.
import type { BuildAttestationOptions } from '../app/attestation.ts'
import type { Config } from '../config/config.ts'

/** Test hooks: the filesystem root for security-context discovery and a logger. */
export type DeviceReportOptions = Pick<BuildAttestationOptions, 'root' | 'log'>

/**
 * A fresh report whose REPORT_DATA is sha256(runtimeData) ‖ 32 zero bytes (as /attest/raw gives
 * it); throws the attestation service's errors (ERR_SNP_DEVICE_UNAVAILABLE off SEV-SNP).
 */
export async function readDeviceReport (config: Config, runtimeData: Buffer, options: DeviceReportOptions = {}): Promise<Buffer> {
  // Loaded lazily: `skr verify` and `skr policy` without the device must not pay for it.
  const { buildAttestation } = await import('../app/attestation.ts')
  const built = await buildAttestation(config, options)
  try {
    return await built.service.rawReport(runtimeData)
  } finally {
    built.service.close()
    await Promise.all(Object.values(built.upstreams).map(async (u) => { await u.close() }))
  }
}
