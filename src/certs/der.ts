// The little DER (X.690) skr reads and writes itself: TLV elements, INTEGER, OBJECT IDENTIFIER and
// the string types of X.509 names. Enough for a certificate's subject and extensions and for AMD's
// VCEK extension values; an ASN.1 library (asn1js: three packages, and ~15 ms to warm up on the
// first certificate) would sit on the start-up path of `skr serve` for no more than this.
// Strict: definite, minimal lengths only (DER), and every byte accounted for.

/** Malformed DER; the message says where. */
export class DerError extends Error {
  override name = 'DerError'
}

/** One element: its identifier, and its content bytes (a view into the input, not a copy). */
export interface DerElement {
  /** 0 universal, 1 application, 2 context-specific, 3 private. */
  tagClass: number
  constructed: boolean
  tagNumber: number
  content: Uint8Array
  /** Offset just past the element in the input. */
  end: number
}

const CLASS_UNIVERSAL = 0

/** Universal types by tag number, named as asn1js names its classes (error messages use them). */
const UNIVERSAL_NAMES: Readonly<Record<number, string>> = {
  1: 'Boolean',
  2: 'Integer',
  3: 'BitString',
  4: 'OctetString',
  5: 'Null',
  6: 'ObjectIdentifier',
  10: 'Enumerated',
  12: 'Utf8String',
  16: 'Sequence',
  17: 'Set',
  18: 'NumericString',
  19: 'PrintableString',
  20: 'TeletexString',
  22: 'IA5String',
  23: 'UTCTime',
  24: 'GeneralizedTime',
  26: 'VisibleString',
  28: 'UniversalString',
  30: 'BmpString'
}

/** Universal tag numbers used by callers. */
export const TAG = { BOOLEAN: 1, INTEGER: 2, OCTET_STRING: 4, OID: 6, SEQUENCE: 16, SET: 17, IA5_STRING: 22 } as const

/** Reads the element at `offset`; throws DerError when it is truncated or not DER. */
export function readElement (bytes: Uint8Array, offset = 0): DerElement {
  let at = offset
  const next = (what: string): number => {
    const b = bytes[at++]
    if (b === undefined) throw new DerError(`truncated ${what} at byte ${at - 1}`)
    return b
  }
  const first = next('identifier')
  let tagNumber = first & 0x1f
  if (tagNumber === 0x1f) {
    tagNumber = 0
    for (let b = next('tag'); ; b = next('tag')) {
      if (tagNumber > 0xffffff) throw new DerError('tag number too large')
      tagNumber = tagNumber * 128 + (b & 0x7f)
      if ((b & 0x80) === 0) break
    }
  }
  let length = next('length')
  if (length === 0x80) throw new DerError('indefinite length (BER, not DER)')
  if (length > 0x80) {
    const count = length & 0x7f
    if (count > 4) throw new DerError(`length of ${count} bytes`)
    length = 0
    for (let i = 0; i < count; i++) length = length * 256 + next('length')
    if (length < 0x80 || (count > 1 && length < 2 ** (8 * (count - 1)))) throw new DerError('length not in its shortest form (BER, not DER)')
  }
  if (at + length > bytes.length) throw new DerError(`content of ${length} bytes runs past the end (${bytes.length - at} left)`)
  return { tagClass: first >> 6, constructed: (first & 0x20) !== 0, tagNumber, content: bytes.subarray(at, at + length), end: at + length }
}

/** Reads exactly one element spanning all of `bytes`. */
export function readOnly (bytes: Uint8Array): DerElement {
  const element = readElement(bytes)
  if (element.end !== bytes.length) throw new DerError(`${bytes.length - element.end} bytes after the element`)
  return element
}

/** The elements inside a constructed element, in order. */
export function childrenOf (element: DerElement): DerElement[] {
  if (!element.constructed) throw new DerError(`${typeName(element)} is not constructed`)
  const out: DerElement[] = []
  for (let at = 0; at < element.content.length;) {
    const child = readElement(element.content, at)
    out.push(child)
    at = child.end
  }
  return out
}

/** True for a universal element with this tag number. */
export function isUniversal (element: DerElement | undefined, tagNumber: number): element is DerElement {
  return element !== undefined && element.tagClass === CLASS_UNIVERSAL && element.tagNumber === tagNumber
}

/** 'Integer', 'OctetString', ...; 'Constructed' or 'Primitive' for anything not universal or unknown. */
export function typeName (element: DerElement): string {
  const name = element.tagClass === CLASS_UNIVERSAL ? UNIVERSAL_NAMES[element.tagNumber] : undefined
  return name ?? (element.constructed ? 'Constructed' : 'Primitive')
}

/** An INTEGER's value (two's complement). */
export function integerValue (element: DerElement): bigint {
  const bytes = element.content
  if (bytes.length === 0) throw new DerError('INTEGER with no content')
  let n = 0n
  for (const b of bytes) n = (n << 8n) | BigInt(b)
  return (bytes[0] ?? 0) >= 0x80 ? n - (1n << BigInt(8 * bytes.length)) : n
}

/** An OBJECT IDENTIFIER in dotted form. */
export function oidValue (element: DerElement): string {
  const arcs: bigint[] = []
  let arc = 0n
  const bytes = element.content
  if (bytes.length === 0 || (bytes.at(-1) ?? 0) >= 0x80) throw new DerError('OBJECT IDENTIFIER is truncated')
  for (const b of bytes) {
    arc = (arc << 7n) | BigInt(b & 0x7f)
    if ((b & 0x80) === 0) {
      arcs.push(arc)
      arc = 0n
    }
  }
  const head = arcs[0] ?? 0n
  const first = head < 40n ? 0n : head < 80n ? 1n : 2n
  return [first, head - first * 40n, ...arcs.slice(1)].join('.')
}

function swapUtf16 (bytes: Uint8Array): Buffer {
  const copy = Buffer.from(bytes)
  if (copy.length % 2 !== 0) throw new DerError('BMPString of an odd length')
  return copy.swap16()
}

/** The text of a string element (the X.509 DirectoryString types and their kin); null for any other type. */
export function stringValue (element: DerElement): string | null {
  if (element.tagClass !== CLASS_UNIVERSAL || element.constructed) return null
  const bytes = Buffer.from(element.content.buffer, element.content.byteOffset, element.content.byteLength)
  switch (element.tagNumber) {
    case 12: return bytes.toString('utf8')
    case 18: case 19: case 20: case 22: case 26: return bytes.toString('latin1')
    case 30: return swapUtf16(bytes).toString('utf16le')
    case 28: {
      if (bytes.length % 4 !== 0) throw new DerError('UniversalString of a length not a multiple of 4')
      let text = ''
      for (let i = 0; i < bytes.length; i += 4) text += String.fromCodePoint(bytes.readUInt32BE(i))
      return text
    }
    default: return null
  }
}

function encodeLength (length: number): Buffer {
  if (length < 0x80) return Buffer.from([length])
  const bytes: number[] = []
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n % 256)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}

/** A universal primitive element. */
export function encodePrimitive (tagNumber: number, content: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([tagNumber]), encodeLength(content.length), content])
}

/** A non-negative INTEGER, minimally encoded (02 01 05; 02 02 00 C8 for 200). */
export function encodeInteger (value: number): Buffer {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError('encodeInteger: a non-negative safe integer')
  const bytes: number[] = []
  for (let n = value; n > 0; n = Math.floor(n / 256)) bytes.unshift(n % 256)
  if (bytes.length === 0 || (bytes[0] ?? 0) >= 0x80) bytes.unshift(0)
  return encodePrimitive(TAG.INTEGER, Buffer.from(bytes))
}

/** An IA5String (ASCII). */
export function encodeIa5String (text: string): Buffer {
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) > 0x7f) throw new RangeError('encodeIa5String: ASCII only')
  }
  return encodePrimitive(TAG.IA5_STRING, Buffer.from(text, 'latin1'))
}
