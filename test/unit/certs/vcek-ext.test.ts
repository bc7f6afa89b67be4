import 'reflect-metadata'
import { webcrypto, X509Certificate } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import t from 'tap'
import { extensionsTcb, generationFromProductName, parseAmdExtensions } from '../../../src/certs/vcek-ext.ts'
import type { AmdCertExtensions } from '../../../src/certs/vcek-ext.ts'
import { needsVectors, vector } from '../../helpers/vectors.ts'

x509.cryptoProvider.set(webcrypto)

const ARC = '1.3.6.1.4.1.3704.1'
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex')
const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, false, ['sign', 'verify'])

// A self-signed certificate carrying the given AMD extensions (OID suffix -> extnValue bytes).
async function certWith (exts: ReadonlyArray<readonly [string, Uint8Array]>): Promise<X509Certificate> {
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=SEV-VCEK',
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' },
    notBefore: new Date('2024-01-01T00:00:00Z'),
    notAfter: new Date('2031-01-01T00:00:00Z'),
    extensions: exts.map(([oid, value]) => new x509.Extension(`${ARC}.${oid}`, false, value))
  })
  return new X509Certificate(Buffer.from(cert.rawData))
}

const CHIP = Buffer.alloc(64, 0).map((_, i) => (i * 7 + 3) & 0xff)
const BASE: ReadonlyArray<readonly [string, Uint8Array]> = [
  ['1', hex('020100')], ['2', hex('16 08 4d696c616e2d4230')], ['3.1', hex('020103')], ['3.2', hex('020100')],
  ['3.3', hex('020200c8')], ['3.8', hex('0202 00ff')], ['4', Buffer.concat([hex('0440'), CHIP])]
]

const codeOf = (code: string): { code: string } => ({ code })

t.test('azure-aci-milan VCEK: Milan-B0, tcbm 7308000000000003, 64-byte hwID equal to CHIP_ID', needsVectors(), async (t) => {
  const thim = JSON.parse(vector('azure-aci-milan', 'uvm_host_amd_certificate.json').toString('utf8')) as { vcekCert: string }
  const vcek = new X509Certificate(thim.vcekCert)
  const ext = parseAmdExtensions(vcek)
  const chipId = vector('azure-aci-milan', 'snp_report.bin').subarray(0x1a0, 0x1e0)
  t.match(ext, {
    structVersion: 0, productName: 'Milan-B0', bootloader: 3, tee: 0, snp: 8, microcode: 115,
    fmc: null, spl4: 0, spl5: 0, spl6: 0, spl7: 0, cspId: null
  })
  t.ok(ext.hwId?.equals(chipId), 'hwID is the report CHIP_ID')
  t.same(parseAmdExtensions(vcek.raw), ext, 'DER bytes give the same result')
  const scratch = parseAmdExtensions(vcek)
  scratch.hwId?.fill(0)
  scratch.snp = 99
  t.ok(parseAmdExtensions(vcek).hwId?.equals(chipId), 'each call returns its own copy')
  t.equal(parseAmdExtensions(vcek).snp, 8)
  t.same(extensionsTcb(ext, 'Milan'), { bootloader: 3, tee: 0, snp: 8, microcode: 115, fmc: null })
  t.equal(generationFromProductName(ext.productName ?? ''), 'Milan')
})

t.test('virtee-turin VCEK: structVersion 1, fmcSPL, no spl_4, 8-byte hwID', needsVectors(), async (t) => {
  const ext = parseAmdExtensions(vector('virtee-turin', 'vcek_turin.der'))
  t.equal(ext.structVersion, 1)
  t.equal(ext.productName, 'Turin')
  t.equal(ext.fmc, 0)
  t.equal(ext.spl4, null)
  t.equal(ext.spl5, 0)
  t.equal(ext.microcode, 9)
  t.equal(ext.hwId?.toString('hex').toUpperCase(), '1E550A8EE5CF9F4D')
  t.same(extensionsTcb(ext, 'Turin'), { bootloader: 0, tee: 0, snp: 0, microcode: 9, fmc: 0 })
  t.equal(generationFromProductName('Turin'), 'Turin')
})

t.test('DER INTEGER 200 (02 02 00 C8) is 200, and hwID may be a DER OCTET STRING', async (t) => {
  const ext = parseAmdExtensions(await certWith(BASE))
  t.equal(ext.snp, 200, 'the reference reads byte [2] and would say 0')
  t.equal(ext.microcode, 255)
  t.equal(ext.bootloader, 3)
  t.ok(ext.hwId?.equals(CHIP), 'OCTET STRING content is the hwID')
  t.equal(ext.hwId?.length, 64)

  const turinLike = parseAmdExtensions(await certWith([['4', hex('0408 0102030405060708')], ['5', hex('16 05 417a757265')]]))
  t.same(turinLike.hwId, hex('0102030405060708'), 'an 8-byte OCTET STRING')
  t.equal(turinLike.cspId, 'Azure')
  t.equal(turinLike.snp, null, 'absent extensions are null')
  t.equal(turinLike.structVersion, null)
})

t.test('unknown OIDs under the AMD arc and foreign extensions are ignored', async (t) => {
  const ext = parseAmdExtensions(await certWith([...BASE, ['3.10', hex('0401ff')], ['6', hex('05 00')]]))
  t.equal(ext.snp, 200)
})

t.test('malformed extension values are CertChainInvalid naming the OID', async (t) => {
  const cases: ReadonlyArray<readonly [string, string, Uint8Array, RegExp]> = [
    ['SPL as OCTET STRING', '3.3', hex('040108'), /3\.3 is OctetString, want an INTEGER/],
    ['negative SPL', '3.1', hex('020180'), /3\.1 is -128, want 0\.\.255/],
    ['SPL 256', '3.2', hex('02020100'), /3\.2 is 256, want 0\.\.255/],
    ['trailing bytes', '3.8', hex('02010500'), /1 bytes after its value/],
    ['truncated DER', '3.1', hex('0202 01'), /is not DER/],
    ['productName as UTF8String', '2', hex('0c054d696c616e'), /is Utf8String, want an IA5String/],
    ['hwID of 10 raw bytes', '4', hex('00112233445566778899'), /is 10 bytes, want 64 or 8 raw bytes or an OCTET STRING/],
    ['hwID OCTET STRING of 32 bytes', '4', Buffer.concat([hex('0420'), Buffer.alloc(32, 1)]), /OCTET STRING holds 32 bytes, want 64 or 8/]
  ]
  for (const [name, oid, value, message] of cases) {
    const cert = await certWith([[oid, value]])
    t.throws(() => parseAmdExtensions(cert), { code: 'ERR_CERT_CHAIN_INVALID', message, details: { oid: `${ARC}.${oid}` } }, name)
  }
  const twice = await certWith([['3.1', hex('020101')], ['3.1', hex('020102')]])
  t.throws(() => parseAmdExtensions(twice), { code: 'ERR_CERT_CHAIN_INVALID', message: /appears twice/ })
})

t.test('input that is not a certificate', async (t) => {
  t.throws(() => parseAmdExtensions(hex('3003020101')), codeOf('ERR_CERT_CHAIN_INVALID'))
  t.throws(() => parseAmdExtensions('MII...' as unknown as Uint8Array), TypeError)
})

t.test('generationFromProductName', async (t) => {
  const table: ReadonlyArray<readonly [string, string | null]> = [
    ['Milan-B0', 'Milan'], ['Milan-B1', 'Milan'], ['Milan', 'Milan'], ['Genoa', 'Genoa'], ['Genoa-B1', 'Genoa'],
    ['Bergamo', 'Genoa'], ['Siena-A0', 'Genoa'], ['Turin', 'Turin'], ['Venice', null], ['milan-B0', null],
    ['Milan-', null], ['Milan-B0-x', null], ['', null], ['toString', null], ['constructor', null]
  ]
  for (const [name, want] of table) t.equal(generationFromProductName(name), want, JSON.stringify(name))
})

t.test('extensionsTcb needs every part of the generation layout', async (t) => {
  const full: AmdCertExtensions = {
    structVersion: 1, productName: 'Turin', bootloader: 1, tee: 2, snp: 3, microcode: 4, fmc: 5,
    spl4: null, spl5: 0, spl6: 0, spl7: 0, hwId: null, cspId: null
  }
  t.same(extensionsTcb(full, 'Turin'), { bootloader: 1, tee: 2, snp: 3, microcode: 4, fmc: 5 })
  t.same(extensionsTcb(full, 'Genoa'), { bootloader: 1, tee: 2, snp: 3, microcode: 4, fmc: null }, 'fmc is not part of a Genoa TCB')
  t.throws(() => extensionsTcb({ ...full, fmc: null }, 'Turin'),
    { code: 'ERR_CERT_CHAIN_INVALID', message: 'VCEK has no fmcSPL extension, which a Turin TCB needs', details: { missing: 'fmcSPL' } })
  t.throws(() => extensionsTcb({ ...full, snp: null }, 'Milan'), { code: 'ERR_CERT_CHAIN_INVALID', details: { missing: 'snpSPL' } })
  t.throws(() => extensionsTcb({ ...full, microcode: null }, 'Milan'), { code: 'ERR_CERT_CHAIN_INVALID', details: { missing: 'ucodeSPL' } })
})
