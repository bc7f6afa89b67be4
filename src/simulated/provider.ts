// The simulated attestation backend: reports with the hardware's exact layout, signed like the
// hardware (ECDSA P-384/SHA-384 over bytes 0x000..0x29F, docs/sev-snp.md#report-signature) by the VCEK of an
// emulated AMD chain. Nothing about it is secure: the chain's ARK is trusted only when configured,
// and `simulated: true` is how the server and the logs say so.
import { createHash, randomBytes, sign } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { promisify } from 'node:util'
import type { EmulatedAmdChain } from './emulated-chain.ts'
import { RequestInvalid, SnpFirmwareError } from '../errors.ts'
import { SIGNED_SIZE, serializeReport, writeSignature } from '../snp/abi.ts'
import type { ReportFields } from '../snp/abi.ts'
import { REPORT_DATA_SIZE } from '../snp/provider.ts'
import type { QuoteProvider, RawQuote } from '../snp/provider.ts'

/** What shapes the simulated guest and its reports. */
export interface SimulatedOptions {
  chain: EmulatedAmdChain
  /** The security policy whose SHA-256 is HOST_DATA, as the host would set it (a string is UTF-8). */
  securityPolicy?: Uint8Array | string
  /** Report version (default 3). */
  version?: 2 | 3 | 5
  /** The guest's own VMPL: requests for a more privileged (lower) VMPL fail as on hardware. */
  vmplFloor?: number
  /** Distinguishes "images" that are otherwise configured alike (feeds the measurement). */
  measurementSeed?: string
  guestSvn?: number
  /** Sets POLICY.DEBUG (bit 19) and changes the measurement. */
  debug?: boolean
}

// POLICY: ABI 0.31, SMT allowed (bit 16), reserved bit 17 set; DEBUG is bit 19 (docs/snp-report.md#policy-0x008).
const BASE_POLICY = 0x3001fn
const POLICY_DEBUG = 1n << 19n
const PLATFORM_INFO = 0x1n // SMT enabled
const SIGNER_VCEK = 0 // SIGNING_KEY 0, no author key, chip key not masked
const ECDSA_P384_SHA384 = 1
const MILAN_CPUID = { family: 0x19, model: 0x01, stepping: 1 } as const
const FIRMWARE = { major: 1, minor: 55, build: 0 } as const
// SEV_RET_INVALID_PARAM: what the firmware answers for a VMPL the guest may not request (docs/sev-snp.md#msg_report_rsp).
const FW_INVALID_PARAM = 0x16
// Fixed, readable ids so a simulated report is recognisable in a hex dump.
const FAMILY_ID = Buffer.from('skr-simulated-fm', 'latin1')
const IMAGE_ID = Buffer.from('skr-simulated-im', 'latin1')

const signAsync = promisify((data: Buffer, key: KeyObject, cb: (err: Error | null, sig: Buffer) => void) => {
  sign('sha384', data, { key, dsaEncoding: 'ieee-p1363' }, cb)
})

function policyBytes (policy: Uint8Array | string | undefined): Uint8Array | null {
  if (policy === undefined) return null
  if (typeof policy === 'string') return Buffer.from(policy, 'utf8')
  if (policy instanceof Uint8Array) return policy
  throw new TypeError('securityPolicy must be a string or a Uint8Array')
}

function hostData (policy: Uint8Array | string | undefined): Buffer {
  const bytes = policyBytes(policy)
  return bytes === null ? Buffer.alloc(32) : createHash('sha256').update(bytes).digest()
}

function checkOptions (options: SimulatedOptions): Required<Omit<SimulatedOptions, 'securityPolicy'>> & Pick<SimulatedOptions, 'securityPolicy'> {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object')
  const { chain, version = 3, vmplFloor = 0, measurementSeed = '', guestSvn = 0, debug = false } = options
  if (typeof chain !== 'object' || chain === null || !Buffer.isBuffer(chain.chipId) || chain.chipId.length !== 64) {
    throw new TypeError('options.chain must be an EmulatedAmdChain')
  }
  if (version !== 2 && version !== 3 && version !== 5) throw new TypeError(`options.version ${String(version)} is not 2, 3 or 5`)
  if (!Number.isInteger(vmplFloor) || vmplFloor < 0 || vmplFloor > 3) throw new TypeError('options.vmplFloor must be an integer in 0..3')
  if (typeof measurementSeed !== 'string') throw new TypeError('options.measurementSeed must be a string')
  if (!Number.isInteger(guestSvn) || guestSvn < 0 || guestSvn > 0xffffffff) throw new TypeError('options.guestSvn must be a u32')
  if (typeof debug !== 'boolean') throw new TypeError('options.debug must be a boolean')
  policyBytes(options.securityPolicy)
  return { chain, version, vmplFloor, measurementSeed, guestSvn, debug, securityPolicy: options.securityPolicy }
}

/**
 * The simulated launch MEASUREMENT (48 bytes): SHA-384 of a domain-separated canonical encoding of
 * what would shape a real UVM (report version, policy hash, seed, debug), so it is stable per
 * configuration and changes with any of them.
 */
export function simulatedMeasurement (options: SimulatedOptions): Buffer {
  const o = checkOptions(options)
  const canonical = JSON.stringify({
    version: o.version,
    hostData: hostData(o.securityPolicy).toString('hex'),
    seed: o.measurementSeed,
    debug: o.debug
  })
  return createHash('sha384').update('skr simulated SEV-SNP launch measurement v1\0').update(canonical).digest()
}

function checkRequest (reportData: unknown, vmpl: unknown, vmplFloor: number): number {
  if (!(reportData instanceof Uint8Array) || reportData.length !== REPORT_DATA_SIZE) {
    const found = reportData instanceof Uint8Array ? `${reportData.length} bytes` : typeof reportData
    throw new RequestInvalid(`report data is ${found}, want exactly ${REPORT_DATA_SIZE} bytes`,
      { details: { field: 'reportData', want: REPORT_DATA_SIZE } })
  }
  if (typeof vmpl !== 'number' || !Number.isInteger(vmpl) || vmpl < 0 || vmpl > 3) {
    throw new RequestInvalid(`VMPL ${String(vmpl)} is not an integer in 0..3`, { details: { field: 'vmpl' } })
  }
  if (vmpl < vmplFloor) {
    throw new SnpFirmwareError(
      `SNP_GET_REPORT: firmware status 0x16 (INVALID_PARAM): requested VMPL ${vmpl} is more privileged than the guest's VMPL ${vmplFloor} (simulated)`,
      { details: { firmwareStatus: FW_INVALID_PARAM, vmpl, vmplFloor, simulated: true } })
  }
  return vmpl
}

/** A QuoteProvider that signs reports with the emulated chain's VCEK (backend 'simulated'). */
export function createSimulatedProvider (options: SimulatedOptions): QuoteProvider {
  const o = checkOptions(options)
  const { chain } = o
  const tcb = chain.reportedTcb
  const base: Omit<ReportFields, 'reportData' | 'vmpl'> = {
    version: o.version,
    guestSvn: o.guestSvn,
    policy: o.debug ? BASE_POLICY | POLICY_DEBUG : BASE_POLICY,
    familyId: FAMILY_ID,
    imageId: IMAGE_ID,
    signatureAlgo: ECDSA_P384_SHA384,
    currentTcb: tcb,
    platformInfo: PLATFORM_INFO,
    signerInfo: SIGNER_VCEK,
    measurement: simulatedMeasurement(o),
    hostData: hostData(o.securityPolicy),
    idKeyDigest: Buffer.alloc(48),
    authorKeyDigest: Buffer.alloc(48),
    // A real guest's REPORT_ID is fixed per launch: so is this one, per provider.
    reportId: randomBytes(32),
    reportIdMa: Buffer.alloc(32, 0xff),
    reportedTcb: tcb,
    cpuid: o.version >= 3 ? { ...MILAN_CPUID } : null,
    chipId: Buffer.from(chain.chipId),
    committedTcb: tcb,
    currentVersion: { ...FIRMWARE },
    committedVersion: { ...FIRMWARE },
    launchTcb: tcb,
    launchMitVector: o.version >= 5 ? 0n : null,
    currentMitVector: o.version >= 5 ? 0n : null,
    signature: { r: Buffer.alloc(48), s: Buffer.alloc(48) }
  }
  return {
    backend: 'simulated',
    simulated: true,
    async getReport (reportData: Uint8Array, vmpl: number = 0): Promise<RawQuote> {
      const level = checkRequest(reportData, vmpl, o.vmplFloor)
      const report = serializeReport({ ...base, reportData: Buffer.from(reportData), vmpl: level })
      writeSignature(report, await signAsync(report.subarray(0, SIGNED_SIZE), chain.vcekKey))
      return { report, backend: 'simulated' }
    }
  }
}
