// The AMD extensions of a VCEK/VLEK certificate (OID arc 1.3.6.1.4.1.3704.1; AMD SEV-SNP KDS spec
// 57230 §3; docs/sev-snp.md#vcek-extensions). They bind the certificate to a chip (hwID) and to the TCB it was
// issued for, which verifyReport compares with the report's CHIP_ID and REPORTED_TCB.
import { X509Certificate as NodeX509Certificate } from 'node:crypto'
import { CertChainInvalid } from '../errors.ts'
import type { Generation, TcbParts } from '../snp/tcb.ts'
import { readCertFields, type CertExtension } from './cert-fields.ts'
import { DerError, integerValue, isUniversal, readElement, stringValue, TAG, typeName, type DerElement } from './der.ts'

/** The AMD extensions of a VCEK/VLEK; null where the certificate lacks one. */
export interface AmdCertExtensions {
  structVersion: number | null
  productName: string | null
  bootloader: number | null
  tee: number | null
  snp: number | null
  microcode: number | null
  fmc: number | null
  spl4: number | null
  spl5: number | null
  spl6: number | null
  spl7: number | null
  /** CHIP_ID: 64 bytes on Milan/Genoa, 8 on Turin; absent on VLEKs. */
  hwId: Buffer | null
  /** The cloud provider a VLEK was issued to; absent on VCEKs. */
  cspId: string | null
}

const ARC = '1.3.6.1.4.1.3704.1.'

type SplKey = 'bootloader' | 'tee' | 'snp' | 'microcode' | 'fmc' | 'spl4' | 'spl5' | 'spl6' | 'spl7'
const SPL_OIDS: Readonly<Record<string, SplKey>> = {
  '3.1': 'bootloader',
  '3.2': 'tee',
  '3.3': 'snp',
  '3.4': 'spl4',
  '3.5': 'spl5',
  '3.6': 'spl6',
  '3.7': 'spl7',
  '3.8': 'microcode',
  '3.9': 'fmc'
}

// hwID is CHIP_ID: 64 bytes, or its first 8 on Turin.
const HWID_SIZES: ReadonlySet<number> = new Set([64, 8])

function invalid (oid: string, what: string): CertChainInvalid {
  return new CertChainInvalid(`VCEK extension ${oid} ${what}`, { details: { oid } })
}

function parseDer (bytes: Uint8Array, oid: string): DerElement {
  let value: DerElement
  try {
    value = readElement(bytes)
  } catch (err) {
    if (!(err instanceof DerError)) throw err
    throw invalid(oid, `is not DER: ${err.message}`)
  }
  if (value.end !== bytes.length) throw invalid(oid, `has ${bytes.length - value.end} bytes after its value, want 0`)
  return value
}

function expect (value: DerElement, tagNumber: number, oid: string, want: string): void {
  if (!isUniversal(value, tagNumber) || value.constructed) throw invalid(oid, `is ${typeName(value)}, want ${want}`)
}

// An SPL above 127 is `02 02 00 XX`: read the INTEGER, not a byte at a fixed index.
function readInteger (bytes: Uint8Array, oid: string, max: number): number {
  const value = parseDer(bytes, oid)
  expect(value, TAG.INTEGER, oid, 'an INTEGER')
  let n: bigint
  try {
    n = integerValue(value)
  } catch (err) {
    throw invalid(oid, `is not DER: ${err instanceof Error ? err.message : String(err)}`)
  }
  if (n < 0n || n > BigInt(max)) throw invalid(oid, `is ${n}, want 0..${max}`)
  return Number(n)
}

function readIa5 (bytes: Uint8Array, oid: string): string {
  const value = parseDer(bytes, oid)
  expect(value, TAG.IA5_STRING, oid, 'an IA5String')
  return stringValue(value) ?? ''
}

// AMD's certificates carry the raw bytes; AMD has announced a switch to a DER OCTET STRING. A raw
// value is 64 or 8 bytes and an OCTET STRING of those sizes is 66 or 10, so the two cannot collide.
function readHwId (bytes: Uint8Array, oid: string): Buffer {
  if (HWID_SIZES.has(bytes.length)) return Buffer.from(bytes)
  if (bytes[0] !== 0x04) throw invalid(oid, `is ${bytes.length} bytes, want 64 or 8 raw bytes or an OCTET STRING`)
  const value = parseDer(bytes, oid)
  expect(value, TAG.OCTET_STRING, oid, 'an OCTET STRING')
  const inner = value.content
  if (!HWID_SIZES.has(inner.byteLength)) throw invalid(oid, `OCTET STRING holds ${inner.byteLength} bytes, want 64 or 8`)
  return Buffer.from(inner)
}

function extensionsOf (cert: NodeX509Certificate | Uint8Array): CertExtension[] {
  if (!(cert instanceof NodeX509Certificate) && !(cert instanceof Uint8Array)) {
    throw new TypeError('cert must be a node:crypto X509Certificate or DER bytes')
  }
  try {
    return readCertFields(cert instanceof NodeX509Certificate ? cert.raw : cert).extensions
  } catch (err) {
    throw new CertChainInvalid('VCEK is not a DER X.509 certificate', { cause: err })
  }
}

// node:crypto certificates are immutable, so the parse is kept per object; callers get a fresh
// copy each time.
const cache = new WeakMap<NodeX509Certificate, Readonly<AmdCertExtensions>>()

/** Reads the AMD extensions of a VCEK/VLEK; throws CertChainInvalid on a malformed or repeated one. */
export function parseAmdExtensions (cert: NodeX509Certificate | Uint8Array): AmdCertExtensions {
  let parsed = cert instanceof NodeX509Certificate ? cache.get(cert) : undefined
  if (parsed === undefined) {
    parsed = Object.freeze(parseExtensions(extensionsOf(cert)))
    if (cert instanceof NodeX509Certificate) cache.set(cert, parsed)
  }
  return { ...parsed, hwId: parsed.hwId === null ? null : Buffer.from(parsed.hwId) }
}

function parseExtensions (extensions: readonly CertExtension[]): AmdCertExtensions {
  const out: AmdCertExtensions = {
    structVersion: null,
    productName: null,
    bootloader: null,
    tee: null,
    snp: null,
    microcode: null,
    fmc: null,
    spl4: null,
    spl5: null,
    spl6: null,
    spl7: null,
    hwId: null,
    cspId: null
  }
  const seen = new Set<string>()
  for (const ext of extensions) {
    if (!ext.oid.startsWith(ARC)) continue
    const oid = ext.oid
    if (seen.has(oid)) throw invalid(oid, 'appears twice')
    seen.add(oid)
    const value = ext.value
    const leaf = oid.slice(ARC.length)
    const spl = SPL_OIDS[leaf]
    if (spl !== undefined) out[spl] = readInteger(value, oid, 0xff)
    else if (leaf === '1') out.structVersion = readInteger(value, oid, 0xffff)
    else if (leaf === '2') out.productName = readIa5(value, oid)
    else if (leaf === '4') out.hwId = readHwId(value, oid)
    else if (leaf === '5') out.cspId = readIa5(value, oid)
    // Other OIDs under the arc are left alone: AMD adds them (as .3.9 for Turin) and they do not
    // weaken what we check.
  }
  return out
}

const FAMILIES: Readonly<Record<string, Generation>> = {
  Milan: 'Milan',
  Genoa: 'Genoa',
  // Bergamo and Siena are Genoa variants served under KDS product "Genoa" (snpguest to_kds_url).
  Bergamo: 'Genoa',
  Siena: 'Genoa',
  Turin: 'Turin'
}

/** The KDS generation of a VCEK productName ("Milan-B0", "Genoa", "Turin"); null when unknown. */
export function generationFromProductName (name: string): Generation | null {
  if (typeof name !== 'string') return null
  // The optional suffix is the stepping ("-B0"); VLEKs and Turin VCEKs carry none.
  const family = /^([A-Za-z]+)(?:-[A-Za-z0-9]+)?$/.exec(name)?.[1]
  if (family === undefined || !Object.hasOwn(FAMILIES, family)) return null
  return FAMILIES[family] ?? null
}

/** The TCB a VCEK/VLEK was issued for; throws CertChainInvalid if a part the generation needs is missing. */
export function extensionsTcb (ext: AmdCertExtensions, generation: Generation): TcbParts {
  const need = (key: SplKey, name: string): number => {
    const value = ext[key]
    if (value === null) {
      throw new CertChainInvalid(`VCEK has no ${name} extension, which a ${generation} TCB needs`, { details: { missing: name } })
    }
    return value
  }
  return {
    bootloader: need('bootloader', 'blSPL'),
    tee: need('tee', 'teeSPL'),
    snp: need('snp', 'snpSPL'),
    microcode: need('microcode', 'ucodeSPL'),
    fmc: generation === 'Turin' ? need('fmc', 'fmcSPL') : null
  }
}
