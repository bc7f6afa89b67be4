// TCB_VERSION: the 8-byte security-patch-level vector found four times in an attestation report
// (CURRENT/REPORTED/COMMITTED/LAUNCH) and in the VCEK's extensions. Its byte layout depends on the
// CPU generation, not on the report version (SNP ABI 56860 Table 3; virtee/sev TcbVersion
// from_legacy_bytes/from_turin_bytes; docs/sev-snp.md#tcb-values):
//
//   byte         0    1    2    3    4    5    6     7
//   Milan/Genoa  BL   TEE  -    -    -    -    SNP   UCODE
//   Turin        FMC  BL   TEE  SNP  -    -    -     UCODE
//
// Byte i is bits 8i..8i+7 of the little-endian u64. The reserved bytes have no field in TcbParts:
// the raw u64 stays the authority (compare raw values when every bit matters).

/** AMD KDS product names of the SEV-SNP CPU generations skr knows. */
export type Generation = 'Milan' | 'Genoa' | 'Turin'

/** The security patch levels of one TCB_VERSION; `fmc` exists only on Turin (null elsewhere). */
export interface TcbParts {
  bootloader: number
  tee: number
  snp: number
  microcode: number
  fmc: number | null
}

const U64_MAX = (1n << 64n) - 1n

// Byte positions of each part in the little-endian u64, per generation.
interface Layout { bootloader: number, tee: number, snp: number, microcode: number, fmc: number | null }
const LEGACY: Layout = { bootloader: 0, tee: 1, snp: 6, microcode: 7, fmc: null }
const TURIN: Layout = { bootloader: 1, tee: 2, snp: 3, microcode: 7, fmc: 0 }

function layoutOf (generation: Generation): Layout {
  switch (generation) {
    case 'Milan':
    case 'Genoa':
      return LEGACY
    case 'Turin':
      return TURIN
    default:
      throw new TypeError(`unknown CPU generation ${JSON.stringify(generation)}, want Milan, Genoa or Turin`)
  }
}

function checkU64 (raw: bigint, name: string): void {
  if (typeof raw !== 'bigint' || raw < 0n || raw > U64_MAX) {
    throw new TypeError(`${name} must be a bigint in 0..2^64-1`)
  }
}

function byteAt (raw: bigint, index: number): number {
  return Number((raw >> BigInt(8 * index)) & 0xffn)
}

/** Splits a raw TCB_VERSION u64 into its patch levels using the generation's byte layout. */
export function decodeTcb (raw: bigint, generation: Generation): TcbParts {
  checkU64(raw, 'raw TCB')
  const layout = layoutOf(generation)
  return {
    bootloader: byteAt(raw, layout.bootloader),
    tee: byteAt(raw, layout.tee),
    snp: byteAt(raw, layout.snp),
    microcode: byteAt(raw, layout.microcode),
    fmc: layout.fmc === null ? null : byteAt(raw, layout.fmc)
  }
}

function checkSpl (value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xff) {
    throw new TypeError(`TCB part ${name} must be an integer in 0..255`)
  }
  return value
}

/** Builds the raw TCB_VERSION u64 from patch levels (reserved bytes zero); inverse of decodeTcb. */
export function encodeTcb (parts: TcbParts, generation: Generation): bigint {
  const layout = layoutOf(generation)
  // fmc must match the layout exactly: silently dropping or inventing it would change the TCB.
  if (layout.fmc === null && parts.fmc !== null) {
    throw new TypeError(`${generation} TCB has no FMC part, but fmc is ${String(parts.fmc)}`)
  }
  if (layout.fmc !== null && parts.fmc === null) {
    throw new TypeError(`${generation} TCB needs an FMC part, but fmc is null`)
  }
  let raw = 0n
  const put = (value: unknown, name: string, index: number): void => {
    raw |= BigInt(checkSpl(value, name)) << BigInt(8 * index)
  }
  put(parts.bootloader, 'bootloader', layout.bootloader)
  put(parts.tee, 'tee', layout.tee)
  put(parts.snp, 'snp', layout.snp)
  put(parts.microcode, 'microcode', layout.microcode)
  if (layout.fmc !== null) put(parts.fmc, 'fmc', layout.fmc)
  return raw
}

/** The u64 as 16 upper-case hex digits, most significant first: THIM's `tcbm` ("7308000000000003"). */
export function tcbToHex (raw: bigint): string {
  checkU64(raw, 'raw TCB')
  return raw.toString(16).toUpperCase().padStart(16, '0')
}

const TCBM = /^[0-9a-fA-F]{16}$/

/**
 * Parses THIM's `tcbm` (exactly 16 hex digits, any case, most significant first); null when
 * malformed. The byte-reversed convention some tools print ("0300000000000873") is not detected:
 * it is indistinguishable, so callers must know which one their source uses.
 */
export function tcbFromHex (hex: string): bigint | null {
  if (typeof hex !== 'string' || !TCBM.test(hex)) return null
  return BigInt(`0x${hex}`)
}

/** True when both TCBs have the same patch levels (fmc included). */
export function tcbPartsEqual (a: TcbParts, b: TcbParts): boolean {
  return a.bootloader === b.bootloader &&
    a.tee === b.tee &&
    a.snp === b.snp &&
    a.microcode === b.microcode &&
    a.fmc === b.fmc
}
