// The bit-field words of an attestation report: POLICY (0x008, SNP ABI 56860 "GUEST_POLICY"),
// PLATFORM_INFO (0x040) and the signer word at 0x048 (AUTHOR_KEY_EN / MASK_CHIP_KEY / SIGNING_KEY),
// plus the range-checked integer writers serializeReport uses. docs/snp-report.md lists every bit,
// where its name comes from, and why nothing here refuses a report.
//
// A bit that the ABI revision skr follows reserves is never a reason to refuse a report: newer
// firmware sets bits older verifiers do not know (a genuine Turin report has PLATFORM_INFO 0x67,
// issue 12), and the report is signed, so the bit is AMD's, not an attacker's. Each word therefore
// decodes what is known and keeps the rest in `unknownBits` (reserved bits whose value differs from
// the value the ABI reserves), for policy to judge and for `skr report`/`skr verify` to show. The
// decoders never throw.

/** The guest policy the report was launched under (POLICY, 0x008). */
export interface GuestPolicy {
  raw: bigint
  /** Bits 7:0 ABI_MINOR and 15:8 ABI_MAJOR: the oldest firmware ABI the guest may run on. */
  abiMinor: number
  abiMajor: number
  /** Bit 16 SMT: host SMT allowed. */
  smt: boolean
  /** Bit 18 MIGRATE_MA: association with a migration agent allowed. */
  migrateMa: boolean
  /** Bit 19 DEBUG: the host may debug (decrypt) the guest. */
  debug: boolean
  /** Bit 20 SINGLE_SOCKET: the guest may run on one socket only. */
  singleSocket: boolean
  /** Bit 21 CXL_ALLOW: CXL may be populated with devices or memory. */
  cxlAllow: boolean
  /** Bit 22 MEM_AES_256_XTS: AES-256-XTS memory encryption required. */
  memAes256Xts: boolean
  /** Bit 23 RAPL_DIS: Running Average Power Limit must be disabled. */
  raplDis: boolean
  /** Bit 24 CIPHERTEXT_HIDING (DRAM): ciphertext hiding must be enabled. */
  ciphertextHiding: boolean
  /** Bit 25 PAGE_SWAP_DISABLE: SNP_PAGE_MOVE, SNP_SWAP_OUT and SNP_SWAP_IN disabled (ABI 1.58). */
  pageSwapDisable: boolean
  /** Reserved bits not at their reserved value: bit 17 when clear (it is reserved as 1), bits 26..63 when set. 0n normally. */
  unknownBits: bigint
}

/** Facts about the host platform (PLATFORM_INFO, 0x040). */
export interface PlatformInfo {
  raw: bigint
  /** Bit 0 SMT_EN. */
  smtEnabled: boolean
  /** Bit 1 TSME_EN. */
  tsmeEnabled: boolean
  /** Bit 2 ECC_EN. */
  eccEnabled: boolean
  /** Bit 3 RAPL_DIS. */
  raplDisabled: boolean
  /** Bit 4 CIPHERTEXT_HIDING_DRAM_EN (CIPHERTEXT_HIDING_EN in older revisions). */
  ciphertextHidingEnabled: boolean
  /** Bit 5 ALIAS_CHECK_COMPLETE (BadRAM mitigation, AMD-SB-3015). */
  aliasCheckComplete: boolean
  /**
   * Bit 6: named IOMMU_WRITE_SAFE only by the Turin-tracking fork tinfoilsh/go-sev-guest (as used
   * by tinfoilsh/tinfoil-go PRs 114/115); google/go-sev-guest and virtee/sev call it reserved.
   * Set on genuine Turin reports (firmware 1.55.61: 0x67; 1.58.0: 0x64). See docs/snp-report.md.
   */
  iommuWriteSafe: boolean
  /** Bit 7 TIO_EN: SEV-TIO enabled (ABI 1.58). */
  tioEnabled: boolean
  /** Bits 8..63 that are set: reserved in every source skr follows. 0n normally. */
  unknownBits: bigint
}

/** Which key signed the report: SIGNING_KEY 0 (VCEK), 1 (VLEK), 7 (none: unsigned), 2..6 reserved. */
export type SigningKey = 'vcek' | 'vlek' | 'none' | 'reserved'

/** The signer word (0x048): AUTHOR_KEY_EN, MASK_CHIP_KEY and SIGNING_KEY. */
export interface SignerInfo {
  raw: number
  /** Bit 0 AUTHOR_KEY_EN: AUTHOR_KEY_DIGEST is present. */
  authorKeyEn: boolean
  /** Bit 1 MASK_CHIP_KEY: the platform's MaskChipKey setting. */
  maskChipKey: boolean
  /** Bits 4:2 SIGNING_KEY, decoded. */
  signingKey: SigningKey
  /** Bits 4:2 SIGNING_KEY as the number it is (0..7). */
  signingKeyValue: number
  /** Bits 5..31 that are set: reserved. 0 normally. */
  unknownBits: number
}

const U64 = (1n << 64n) - 1n
const bit = (value: bigint, n: number): boolean => ((value >> BigInt(n)) & 1n) === 1n

// GUEST_POLICY: bit 17 is reserved as 1 and bits 63:26 as 0 (go-sev-guest af1c107 abi.go
// ParseSnpPolicy; virtee/sev 9cf2adb GuestPolicy).
const POLICY_RESERVED_MASK = (1n << 17n) | (U64 & ~((1n << 26n) - 1n))
const POLICY_RESERVED_VALUE = 1n << 17n

/** Decodes POLICY; reserved bits at other than their reserved value go to `unknownBits`. */
export function decodePolicy (raw: bigint): GuestPolicy {
  return {
    raw,
    abiMinor: Number(raw & 0xffn),
    abiMajor: Number((raw >> 8n) & 0xffn),
    smt: bit(raw, 16),
    migrateMa: bit(raw, 18),
    debug: bit(raw, 19),
    singleSocket: bit(raw, 20),
    cxlAllow: bit(raw, 21),
    memAes256Xts: bit(raw, 22),
    raplDis: bit(raw, 23),
    ciphertextHiding: bit(raw, 24),
    pageSwapDisable: bit(raw, 25),
    unknownBits: (raw ^ POLICY_RESERVED_VALUE) & POLICY_RESERVED_MASK
  }
}

// PLATFORM_INFO bits 0..7 are named (bit 6 by one fork only, see PlatformInfo.iommuWriteSafe).
const PLATFORM_RESERVED_MASK = U64 & ~0xffn

/** Decodes PLATFORM_INFO; set bits 8..63 go to `unknownBits`. */
export function decodePlatformInfo (raw: bigint): PlatformInfo {
  return {
    raw,
    smtEnabled: bit(raw, 0),
    tsmeEnabled: bit(raw, 1),
    eccEnabled: bit(raw, 2),
    raplDisabled: bit(raw, 3),
    ciphertextHidingEnabled: bit(raw, 4),
    aliasCheckComplete: bit(raw, 5),
    iommuWriteSafe: bit(raw, 6),
    tioEnabled: bit(raw, 7),
    unknownBits: raw & PLATFORM_RESERVED_MASK
  }
}

const SIGNER_RESERVED_MASK = 0xffffffe0 // bits 5..31
const SIGNING_KEYS: Readonly<Record<number, SigningKey>> = { 0: 'vcek', 1: 'vlek', 7: 'none' }

/** Decodes the signer word; SIGNING_KEY 2..6 is 'reserved' and set bits 5..31 go to `unknownBits`. */
export function decodeSignerInfo (raw: number): SignerInfo {
  const signingKeyValue = (raw >>> 2) & 7
  return {
    raw,
    authorKeyEn: (raw & 1) === 1,
    maskChipKey: (raw & 2) === 2,
    signingKey: SIGNING_KEYS[signingKeyValue] ?? 'reserved',
    signingKeyValue,
    unknownBits: (raw & SIGNER_RESERVED_MASK) >>> 0
  }
}

/** Writes an unsigned 1- or 4-byte little-endian integer; TypeError when out of range. */
export function putInt (out: Buffer, offset: number, value: unknown, bytes: 1 | 4, name: string): void {
  const max = bytes === 1 ? 0xff : 0xffffffff
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new TypeError(`${name} must be an integer in 0..${max}`)
  }
  if (bytes === 1) out.writeUInt8(value, offset)
  else out.writeUInt32LE(value, offset)
}

/** Writes an unsigned 64-bit little-endian integer; TypeError when out of range. */
export function putU64 (out: Buffer, offset: number, value: unknown, name: string): void {
  if (typeof value !== 'bigint' || value < 0n || value > U64) throw new TypeError(`${name} must be a bigint in 0..2^64-1`)
  out.writeBigUInt64LE(value, offset)
}
