import * as asn1js from 'asn1js'
import t from 'tap'
import { childrenOf, DerError, encodeIa5String, encodeInteger, integerValue, oidValue, readElement, readOnly, stringValue, typeName } from '../../../src/certs/der.ts'

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex')

t.test('INTEGER and IA5String encode as asn1js does, and read back', async (t) => {
  for (const n of [0, 1, 5, 127, 128, 200, 255, 256, 0xffff, 0x10000, 2 ** 40]) {
    const mine = encodeInteger(n)
    t.same(mine, Buffer.from(new asn1js.Integer({ value: n }).toBER()), `encode ${n}`)
    t.equal(integerValue(readOnly(mine)), BigInt(n), `read ${n}`)
  }
  t.same(encodeInteger(200), hex('020200c8'))
  t.same(encodeIa5String('Milan-B0'), Buffer.from(new asn1js.IA5String({ value: 'Milan-B0' }).toBER()))
  t.equal(stringValue(readOnly(encodeIa5String('Milan-B0'))), 'Milan-B0')
  t.throws(() => encodeInteger(-1), RangeError)
  t.throws(() => encodeInteger(1.5), RangeError)
  t.throws(() => encodeIa5String('é'), RangeError)
})

t.test('negative INTEGERs are two\'s complement', async (t) => {
  t.equal(integerValue(readOnly(hex('020180'))), -128n)
  t.equal(integerValue(readOnly(hex('0202ff7f'))), -129n)
  t.throws(() => integerValue(readOnly(hex('0200'))), DerError)
})

t.test('OBJECT IDENTIFIERs', async (t) => {
  for (const oid of ['2.5.4.3', '1.3.6.1.4.1.3704.1.3.8', '2.999.1', '0.9.2342.19200300.100.1.25']) {
    t.equal(oidValue(readOnly(Buffer.from(new asn1js.ObjectIdentifier({ value: oid }).toBER()))), oid)
  }
  t.throws(() => oidValue(readOnly(hex('060181'))), DerError, 'a truncated arc')
})

t.test('the string types of X.509 names', async (t) => {
  t.equal(stringValue(readOnly(hex('0c03e282ac'))), '€', 'UTF8String')
  t.equal(stringValue(readOnly(hex('1302 5553'))), 'US', 'PrintableString')
  t.equal(stringValue(readOnly(hex('1e04 0041 20ac'))), 'A€', 'BMPString (UTF-16BE)')
  t.equal(stringValue(readOnly(hex('1c08 00000041 0001f600'))), 'A😀', 'UniversalString (UTF-32BE)')
  t.equal(stringValue(readOnly(hex('020101'))), null, 'not a string')
  t.throws(() => stringValue(readOnly(hex('1e01 00'))), DerError)
})

t.test('structure: children, names, high tag numbers, long lengths', async (t) => {
  const seq = readOnly(hex('3006 020101 0401ff'))
  t.same(childrenOf(seq).map(typeName), ['Integer', 'OctetString'])
  t.equal(typeName(readOnly(hex('a003 020101'))), 'Constructed', 'context-specific')
  t.equal(typeName(readOnly(hex('8000'))), 'Primitive')
  const high = readOnly(hex('9f8101 00'))
  t.equal(high.tagNumber, 129)
  const long = Buffer.concat([hex('0481c8'), Buffer.alloc(200, 7)])
  t.equal(readOnly(long).content.length, 200)
  t.throws(() => childrenOf(readOnly(hex('020101'))), /not constructed/)
})

t.test('anything not DER is a DerError', async (t) => {
  const cases: ReadonlyArray<readonly [string, string, RegExp]> = [
    ['empty', '', /truncated identifier/],
    ['no length', '02', /truncated length/],
    ['truncated content', '0202 01', /runs past the end/],
    ['indefinite length', '3080 0000', /indefinite/],
    ['long form for a short length', '0481 05 0102030405', /shortest form/],
    ['padded long length', '048200 80' + '00'.repeat(128), /shortest form/],
    ['five length bytes', '0485 0000000001 00', /length of 5 bytes/]
  ]
  for (const [name, bytes, message] of cases) {
    t.throws(() => readElement(hex(bytes)), message, name)
    t.throws(() => readElement(hex(bytes)), DerError, name)
  }
  t.throws(() => readOnly(hex('020101 00')), /1 bytes after the element/)
})
