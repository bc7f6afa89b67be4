import 'reflect-metadata'
import { webcrypto, X509Certificate } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import t from 'tap'
import { readCertFields } from '../../../src/certs/cert-fields.ts'
import { needsVectors, vector } from '../../helpers/vectors.ts'

x509.cryptoProvider.set(webcrypto)

const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, false, ['sign', 'verify'])
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex')

async function selfSigned (name: string, extensions: x509.Extension[] = []): Promise<Buffer> {
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name,
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' },
    notBefore: new Date('2024-01-01T00:00:00Z'),
    notAfter: new Date('2031-01-01T00:00:00Z'),
    extensions
  })
  return Buffer.from(cert.rawData)
}

t.test('subject CNs in order, and every extension with its critical flag and raw extnValue', async (t) => {
  const der = await selfSigned('O=AMD, CN=first, OU=x, CN=second', [
    new x509.BasicConstraintsExtension(true, undefined, true),
    new x509.Extension('1.3.6.1.4.1.3704.1.3.1', false, hex('020103'))
  ])
  const fields = readCertFields(der)
  t.same(fields.subjectCommonNames, ['first', 'second'])
  t.same(new x509.X509Certificate(der).subjectName.getField('CN'), fields.subjectCommonNames, 'as @peculiar/x509 reads them')
  t.same(fields.extensions.map((e) => [e.oid, e.critical]), [['2.5.29.19', true], ['1.3.6.1.4.1.3704.1.3.1', false]])
  t.same(Buffer.from(fields.extensions[1]?.value ?? []), hex('020103'))
  t.same(Buffer.from(fields.extensions[0]?.value ?? []), Buffer.from(new x509.X509Certificate(der).extensions[0]?.value ?? new ArrayBuffer(0)))
})

t.test('no extensions, no CN', async (t) => {
  t.same(readCertFields(await selfSigned('O=nobody')), { subjectCommonNames: [], extensions: [] })
})

t.test('genuine AMD certificates read as node:crypto sees them', needsVectors(), async (t) => {
  const thim = JSON.parse(vector('azure-aci-milan', 'uvm_host_amd_certificate.json').toString('utf8')) as { vcekCert: string, certificateChain: string }
  const vcek = new X509Certificate(thim.vcekCert)
  const fields = readCertFields(vcek.raw)
  t.same(fields.subjectCommonNames, ['SEV-VCEK'])
  t.ok(fields.extensions.some((e) => e.oid === '1.3.6.1.4.1.3704.1.4' && e.value.length === 64), 'the 64-byte hwID')
})

t.test('anything else is an Error', async (t) => {
  const der = await selfSigned('CN=x')
  t.throws(() => readCertFields(hex('3003020101')), /not an X\.509 certificate/)
  t.throws(() => readCertFields(Buffer.concat([der, hex('00')])), /1 bytes after the element/)
  t.throws(() => readCertFields(der.subarray(0, der.length - 5)), /not an X\.509 certificate/)
  t.throws(() => readCertFields(Buffer.alloc(0)), /not an X\.509 certificate/)
})
