// The bit-field words of an attestation report: POLICY (0x008), PLATFORM_INFO (0x040) and the
// signer info word (0x048), plus the must-be-zero byte check. Bit names follow SNP ABI 56860
// (GUEST_POLICY, PLATFORM_INFO, ATTESTATION_REPORT) as docs/sev-snp.md §1.3-1.5 transcribes them.
// The range-checked integer writers serializeReport uses live here too.
// Reserved bits are rejected, as go-sev-guest does: a set reserved bit means either a newer ABI
// we do not understand or corrupted bytes, and either way the decoded meaning would be a guess.
import { ReportInvalid } from '../errors.ts'

/** The guest policy the report was launched under (POLICY, 0x008). */
export interface GuestPolicy {
  raw: bigint
  abiMinor: number
  abiMajor: number
  smt: boolean
  migrateMa: boolean
  debug: boolean
  singleSocket: boolean
  cxlAllow: boolean
  memAes256Xts: boolean
  raplDis: boolean
  ciphertextHiding: boolean
  pageSwapDisable: boolean
}

/** Facts about the host platform (PLATFORM_INFO, 0x040). */
export interface PlatformInfo {
  raw: bigint
  smtEnabled: boolean
  tsmeEnabled: boolean
  eccEnabled: boolean
  raplDisabled: boolean
  ciphertextHidingEnabled: boolean
  aliasCheckComplete: boolean
  tioEnabled: boolean
}

/** Which key signed the report: SIGNING_KEY 0 (VCEK), 1 (VLEK) or 7 (none: unsigned). */
export type SigningKey = 'vcek' | 'vlek' | 'none'

/** The signer info word (0x048): AUTHOR_KEY_EN, MASK_CHIP_KEY and SIGNING_KEY. */
export interface SignerInfo {
  raw: number
  authorKeyEn: boolean
  maskChipKey: boolean
  signingKey: SigningKey
}

const bit = (value: bigint, n: number): boolean => ((value >> BigInt(n)) & 1n) === 1n
const hex = (value: bigint | number): string => `0x${value.toString(16)}`

const POLICY_RESERVED_ONE = 17
const POLICY_MBZ = ~((1n << 26n) - 1n) & ((1n << 64n) - 1n) // bits 26..63

/** Decodes POLICY; throws ReportInvalid when reserved bit 17 is 0 or any of bits 26..63 is set. */
export function decodePolicy (raw: bigint): GuestPolicy {
  if (!bit(raw, POLICY_RESERVED_ONE)) {
    throw new ReportInvalid(`report policy ${hex(raw)} has reserved bit 17 clear, want it set`,
      { details: { field: 'policy', offset: 0x008 } })
  }
  if ((raw & POLICY_MBZ) !== 0n) {
    throw new ReportInvalid(`report policy ${hex(raw)} has reserved bits 26..63 = ${hex(raw & POLICY_MBZ)}, want 0`,
      { details: { field: 'policy', offset: 0x008 } })
  }
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
    pageSwapDisable: bit(raw, 25)
  }
}

const PLATFORM_MBZ = (1n << 6n) | (((1n << 64n) - 1n) & ~((1n << 8n) - 1n)) // bit 6, bits 8..63

/** Decodes PLATFORM_INFO; throws ReportInvalid when reserved bit 6 or any of bits 8..63 is set. */
export function decodePlatformInfo (raw: bigint): PlatformInfo {
  if ((raw & PLATFORM_MBZ) !== 0n) {
    throw new ReportInvalid(
      `report platform info ${hex(raw)} has reserved bits (6, 8..63) = ${hex(raw & PLATFORM_MBZ)}, want 0`,
      { details: { field: 'platformInfo', offset: 0x040 } })
  }
  return {
    raw,
    smtEnabled: bit(raw, 0),
    tsmeEnabled: bit(raw, 1),
    eccEnabled: bit(raw, 2),
    raplDisabled: bit(raw, 3),
    ciphertextHidingEnabled: bit(raw, 4),
    aliasCheckComplete: bit(raw, 5),
    tioEnabled: bit(raw, 7)
  }
}

const SIGNER_MBZ = 0xffffffe0 // bits 5..31

/** Decodes the signer info word; throws ReportInvalid for SIGNING_KEY 2..6 or any of bits 5..31 set. */
export function decodeSignerInfo (raw: number): SignerInfo {
  if (((raw & SIGNER_MBZ) >>> 0) !== 0) {
    throw new ReportInvalid(
      `report signer info ${hex(raw)} has reserved bits 5..31 = ${hex((raw & SIGNER_MBZ) >>> 0)}, want 0`,
      { details: { field: 'signerInfo', offset: 0x048 } })
  }
  const key = (raw >>> 2) & 7
  let signingKey: SigningKey
  if (key === 0) signingKey = 'vcek'
  else if (key === 1) signingKey = 'vlek'
  else if (key === 7) signingKey = 'none'
  else {
    throw new ReportInvalid(`report signer info SIGNING_KEY is ${key}, want 0 (VCEK), 1 (VLEK) or 7 (none)`,
      { details: { field: 'signerInfo', offset: 0x048 } })
  }
  return { raw, authorKeyEn: (raw & 1) === 1, maskChipKey: (raw & 2) === 2, signingKey }
}

const hex3 = (n: number): string => `0x${n.toString(16).toUpperCase().padStart(3, '0')}`

/** Throws ReportInvalid naming the first non-zero byte of bytes[start, end). */
export function requireZero (bytes: Uint8Array, start: number, end: number, what: string): void {
  for (let i = start; i < end; i++) {
    const b = bytes[i] ?? 0
    if (b !== 0) {
      throw new ReportInvalid(
        `report ${what} ${hex3(start)}..${hex3(end)} has 0x${b.toString(16).padStart(2, '0')} at ${hex3(i)}, want all zero`,
        { details: { field: what, offset: i } })
    }
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
  if (typeof value !== 'bigint' || value < 0n || value >= 1n << 64n) throw new TypeError(`${name} must be a bigint in 0..2^64-1`)
  out.writeBigUInt64LE(value, offset)
}
