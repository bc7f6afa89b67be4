import 'reflect-metadata'
import { constants, createHash, sign, X509Certificate } from 'node:crypto'
import type { webcrypto } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import { encode, Tagged } from 'cborg'
import t from 'tap'
import {
  MICROSOFT_SUPPLY_CHAIN_ROOT_FINGERPRINT, parseUvmReferenceInfo, verifyUvmReferenceInfo
} from '../../../src/uvm/reference-info.ts'
import { needsVectors, vector, vectorText } from '../../helpers/vectors.ts'

const NOW = new Date('2024-06-01T00:00:00Z')
const ACI_MEASUREMENT = '51068107cdc7ee3d89c7821b05bca6147eb77b2005ae759050fc049b65a1b0beabc65a9d857acecf23225f5ec76849f5'
const OTHER_MEASUREMENT = '03fea02823189b25d0623a5c81f97c8ba4d2fbc48c914a55ce525f90454ddcec303743dac2fc013f0846912d1412f6df'
const invalid = (check: string): { code: string, details: { check: string } } => ({ code: 'ERR_UVM_ENDORSEMENT_INVALID', details: { check } })

const aciCose = (): Buffer => vector('azure-aci-milan', 'body.uvm_reference_info.bin')
const otherCose = (): Buffer => Buffer.from(vectorText('azure-aci-milan', 'security-context-other-chip', 'reference-info-base64').trim(), 'base64')

t.test('genuine ACI endorsement (body.uvm_reference_info.bin)', needsVectors(), async (t) => {
  const parsed = parseUvmReferenceInfo(aciCose())
  t.equal(parsed.launchMeasurement, ACI_MEASUREMENT)
  t.equal(parsed.guestSvn, '22')
  t.equal(parsed.feed, 'ContainerPlat-AMD-UVM')
  t.equal(parsed.issuer, 'did:x509:0:sha256:I__iuL25oXEVFdTP_aBLx_eT1RPHbCQ_ECBQfYZpt9s::eku:1.3.6.1.4.1.311.76.59.1.2')
  t.equal(parsed.signingTime, 1675834943)
  const verified = verifyUvmReferenceInfo(aciCose(), { now: NOW })
  t.same(verified, { ...parsed, receipt: { status: 'absent' } })
  t.equal(parsed.layout, 'json-payload')
  t.equal(parsed.receipts, 0)
  t.same(parsed.signerChain.map((c) => c.subject.replace(/.*CN=/, '')), ['ContainerPlat', 'Microsoft SCD Products RSA CA', 'Microsoft Supply Chain RSA Root CA 2022'])
  // The leaf expired 2024-01-03; verification still passes because it is judged at the signing time.
  t.ok(verifyUvmReferenceInfo(aciCose(), { now: new Date('2030-01-01T00:00:00Z') }))
})

t.test('genuine endorsement from the other security context (base64 file)', needsVectors(), async (t) => {
  const verified = verifyUvmReferenceInfo(otherCose(), { now: NOW })
  t.equal(verified.launchMeasurement, OTHER_MEASUREMENT)
  t.equal(verified.guestSvn, '100')
  t.equal(verified.signingTime, 1682034518)
})

t.test('tampering and trust failures', needsVectors(), async (t) => {
  const cose = aciCose()
  t.throws(() => parseUvmReferenceInfo(Buffer.concat([cose, Buffer.from([0])])), invalid('cbor'), 'trailing bytes')
  // Flip a byte inside the payload JSON (the measurement text): still parses, must not verify.
  const at = cose.indexOf(Buffer.from(ACI_MEASUREMENT))
  t.ok(at > 0)
  const flipped = Buffer.from(cose)
  flipped[at] = flipped[at] === 0x35 ? 0x36 : 0x35
  t.ok(parseUvmReferenceInfo(flipped))
  t.throws(() => verifyUvmReferenceInfo(flipped, { now: NOW }), invalid('signature'))
  // Same bytes, a root we do not trust.
  t.throws(() => verifyUvmReferenceInfo(cose, { now: NOW, trustedRootFingerprints: ['00:11'] }), invalid('root'))
  t.ok(verifyUvmReferenceInfo(cose, { now: NOW, trustedRootFingerprints: [MICROSOFT_SUPPLY_CHAIN_ROOT_FINGERPRINT.toLowerCase()] }))
  // The Microsoft CA expires in 2042.
  t.throws(() => verifyUvmReferenceInfo(cose, { now: new Date('2043-01-01T00:00:00Z') }), invalid('validity'))
})

t.test('malformed input', async (t) => {
  t.throws(() => parseUvmReferenceInfo(Buffer.from([0xd2, 0x84, 0x59, 0x13, 0xce, 0xa7])), invalid('cbor'), 'truncated')
  t.throws(() => parseUvmReferenceInfo(Buffer.from('a text string, not COSE')), invalid('cbor'))
  t.throws(() => parseUvmReferenceInfo(Buffer.from([0xff, 0x00])), invalid('cbor'))
  t.throws(() => parseUvmReferenceInfo(Buffer.alloc(0)), invalid('size'))
  t.throws(() => parseUvmReferenceInfo(Buffer.from(encode([1, 2, 3]))), invalid('structure'))
  t.throws(() => parseUvmReferenceInfo(Buffer.from(encode(new Tagged(18, [new Uint8Array([0xa0]), new Map(), new Uint8Array(0), new Uint8Array([1])])))), invalid('payload'))
  // Non-minimal integer encoding (strict CBOR): 0x18 0x01 is "1" in two bytes.
  t.throws(() => parseUvmReferenceInfo(Buffer.from([0x84, 0x41, 0xa0, 0xa0, 0x40, 0x18, 0x01])), invalid('cbor'))
  t.throws(() => parseUvmReferenceInfo('x' as unknown as Buffer), TypeError)
})

// ---- a self-made endorsement under a throwaway root -------------------------------------------

const crypto = globalThis.crypto
const PSS = { name: 'RSA-PSS', hash: 'SHA-384', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) }
const EKU = '1.3.6.1.4.1.311.76.59.1.2'

async function makeChain (): Promise<{ root: x509.X509Certificate, leaf: x509.X509Certificate, leafKey: webcrypto.CryptoKey }> {
  const rootKeys = await crypto.subtle.generateKey(PSS, true, ['sign', 'verify'])
  const leafKeys = await crypto.subtle.generateKey(PSS, true, ['sign', 'verify'])
  const signing = { name: 'RSA-PSS', saltLength: 48 }
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01', name: 'CN=test root', keys: rootKeys, signingAlgorithm: signing,
    notBefore: new Date('2023-01-01T00:00:00Z'), notAfter: new Date('2040-01-01T00:00:00Z'),
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)]
  }, crypto)
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: '02', subject: 'CN=test leaf', issuer: root.subject, publicKey: leafKeys.publicKey,
    signingKey: rootKeys.privateKey, signingAlgorithm: signing,
    notBefore: new Date('2023-01-01T00:00:00Z'), notAfter: new Date('2025-01-01T00:00:00Z'),
    extensions: [new x509.ExtendedKeyUsageExtension([EKU])]
  }, crypto)
  return { root, leaf, leafKey: leafKeys.privateKey }
}

t.test('self-made endorsement: links, did:x509 and signing time', async (t) => {
  const { root, leaf, leafKey } = await makeChain()
  const leafDer = Buffer.from(leaf.rawData)
  const rootDer = Buffer.from(root.rawData)
  const keyPem = leafKeyPem(await crypto.subtle.exportKey('pkcs8', leafKey))
  const rootHash = createHash('sha256').update(rootDer).digest('base64url')
  const build = (over: { iss?: string, signingtime?: number, chain?: Buffer[] } = {}): Buffer => {
    const header = new Map<unknown, unknown>([
      [1, -38], [3, 'application/json'], [33, over.chain ?? [leafDer, rootDer]],
      ['iss', over.iss ?? `did:x509:0:sha256:${rootHash}::eku:${EKU}`], ['feed', 'test-feed'],
      ['signingtime', new Tagged(1, over.signingtime ?? 1700000000)]
    ])
    const protectedBytes = encode(header)
    const payload = Buffer.from(JSON.stringify({ 'x-ms-sevsnpvm-guestsvn': '7', 'x-ms-sevsnpvm-launchmeasurement': 'AB'.repeat(48) }))
    const tbs = encode(['Signature1', protectedBytes, new Uint8Array(0), payload])
    const signature = sign('sha384', tbs, { key: keyPem, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 })
    return Buffer.from(encode(new Tagged(18, [protectedBytes, new Map(), payload, signature])))
  }
  const trust = { now: new Date('2024-06-01T00:00:00Z'), trustedRootFingerprints: [new X509Certificate(rootDer).fingerprint256] }
  const ok = verifyUvmReferenceInfo(build(), trust)
  t.equal(ok.launchMeasurement, 'ab'.repeat(48), 'lowercased')
  t.equal(ok.guestSvn, '7')
  t.equal(ok.feed, 'test-feed')
  t.throws(() => verifyUvmReferenceInfo(build(), { now: trust.now }), invalid('root'), 'default trust is Microsoft only')
  t.throws(() => verifyUvmReferenceInfo(build({ iss: 'did:web:example.com' }), trust), invalid('iss'))
  t.throws(() => verifyUvmReferenceInfo(build({ iss: `did:x509:0:sha256:${'A'.repeat(43)}::eku:${EKU}` }), trust), invalid('iss'))
  t.throws(() => verifyUvmReferenceInfo(build({ iss: `did:x509:0:sha256:${rootHash}::eku:1.2.3` }), trust), invalid('iss'))
  t.throws(() => verifyUvmReferenceInfo(build({ signingtime: 1800000000 }), trust), invalid('validity'), 'signed after the leaf expired')
  t.throws(() => verifyUvmReferenceInfo(build({ chain: [leafDer] }), trust), invalid('root'))
})

function leafKeyPem (pkcs8: ArrayBuffer): string {
  const b64 = Buffer.from(pkcs8).toString('base64').replace(/.{1,64}/g, '$&\n')
  return `-----BEGIN PRIVATE KEY-----\n${b64}-----END PRIVATE KEY-----\n`
}
