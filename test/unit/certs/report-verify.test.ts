import 'reflect-metadata'
import { KeyObject, sign, webcrypto, X509Certificate } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import t from 'tap'
import { parseBundlePem, parseChainPem } from '../../../src/certs/amd-chain.ts'
import type { AmdChain } from '../../../src/certs/amd-chain.ts'
import { toPem } from '../../../src/certs/pem.ts'
import { parseAmdExtensions } from '../../../src/certs/vcek-ext.ts'
import { ReportInvalid, ReportUnverified } from '../../../src/errors.ts'
import { SIGNED_SIZE, unknownFields, writeSignature, type AttestationReport } from '../../../src/snp/abi.ts'
import { encodeTcb } from '../../../src/snp/tcb.ts'
import type { Generation, TcbParts } from '../../../src/snp/tcb.ts'
import { compareTcb, verifyReport } from '../../../src/certs/report-verify.ts'
import { needsVectors, vector, vectorText } from '../../helpers/vectors.ts'

x509.cryptoProvider.set(webcrypto)

const NOW = new Date('2024-06-01T00:00:00Z')
const unverified = (check: string): { code: string, details: Record<string, string> } => ({ code: 'ERR_SNP_REPORT_UNVERIFIED', details: { check } })

function azureChain (): AmdChain {
  const thim = JSON.parse(vectorText('azure-aci-milan', 'uvm_host_amd_certificate.json')) as { vcekCert: string, certificateChain: string }
  return parseChainPem(thim.vcekCert, thim.certificateChain)
}

// ---- throwaway chains that sign their own reports ------------------------------------------------
// Set up before the first subtest (see test/unit/maa/client.test.ts): a subtest created after a
// slow top-level await can find tap's root test already ended.

const PSS_KEY = { name: 'RSA-PSS', hash: 'SHA-384', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) }
const PSS_SIGN = { name: 'RSA-PSS', saltLength: 48 }
const [arkKeys, askKeys] = await Promise.all([1, 2].map(async () => await webcrypto.subtle.generateKey(PSS_KEY, false, ['sign', 'verify']))) as [webcrypto.CryptoKeyPair, webcrypto.CryptoKeyPair]
const leafKeys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify'])
const leafPrivate = KeyObject.from(leafKeys.privateKey)
const AMD = '1.3.6.1.4.1.3704.1'
const VALIDITY = { notBefore: new Date('2023-01-01T00:00:00Z'), notAfter: new Date('2030-01-01T00:00:00Z') }
const MILAN_TCB: TcbParts = { bootloader: 3, tee: 0, snp: 200, microcode: 115, fmc: null }
const TURIN_TCB: TcbParts = { bootloader: 4, tee: 1, snp: 22, microcode: 72, fmc: 3 }
const CHIP = Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 13 + 1) & 0xff))
const TURIN_CHIP = Buffer.concat([CHIP.subarray(0, 8), Buffer.alloc(56)])

interface Fake { product?: string, productName?: string, vlek?: boolean, tcb?: TcbParts, hwId?: Buffer | null }

async function fakeChain (o: Fake = {}): Promise<AmdChain> {
  const product = o.product ?? 'Milan'
  const tcb = o.tcb ?? MILAN_TCB
  const ca = [new x509.BasicConstraintsExtension(true, undefined, true)]
  const ark = await x509.X509CertificateGenerator.createSelfSigned({ name: `CN=ARK-${product}`, keys: arkKeys, signingAlgorithm: PSS_SIGN, ...VALIDITY, extensions: ca })
  const ask = await x509.X509CertificateGenerator.create({
    subject: `CN=SEV-${o.vlek === true ? 'VLEK-' : ''}${product}`, issuer: ark.subject, publicKey: askKeys.publicKey,
    signingKey: arkKeys.privateKey, signingAlgorithm: PSS_SIGN, ...VALIDITY, extensions: ca
  })
  const int = (n: number): Buffer => n < 0x80 ? Buffer.from([2, 1, n]) : Buffer.from([2, 2, 0, n])
  const name = Buffer.from(o.productName ?? product)
  const values: Array<[string, Buffer]> = [['2', Buffer.concat([Buffer.from([0x16, name.length]), name])],
    ['3.1', int(tcb.bootloader)], ['3.2', int(tcb.tee)], ['3.3', int(tcb.snp)], ['3.8', int(tcb.microcode)]]
  if (tcb.fmc !== null) values.push(['3.9', int(tcb.fmc)])
  const hwId = o.hwId === undefined ? (product === 'Turin' ? CHIP.subarray(0, 8) : CHIP) : o.hwId
  if (hwId !== null) values.push(['4', hwId])
  const leaf = await x509.X509CertificateGenerator.create({
    subject: `CN=SEV-${o.vlek === true ? 'VLEK' : 'VCEK'}`, issuer: ask.subject, publicKey: leafKeys.publicKey,
    signingKey: askKeys.privateKey, signingAlgorithm: PSS_SIGN, ...VALIDITY,
    extensions: values.map(([oid, v]) => new x509.Extension(`${AMD}.${oid}`, false, v))
  })
  const node = (c: x509.X509Certificate): X509Certificate => new X509Certificate(Buffer.from(c.rawData))
  return { vcek: node(leaf), ask: node(ask), ark: node(ark) }
}

interface Patch { tcb?: bigint, chipId?: Buffer, signer?: number, algo?: number, cpuid?: [number, number], mutate?: (raw: Buffer) => void }

// A structurally valid v2 report (version 2, policy 0x30000), patched, then signed by the fake VCEK.
function fakeReport (p: Patch = {}): Buffer {
  const raw = Buffer.alloc(0x4a0)
  raw.writeUInt32LE(2, 0x000)
  raw.writeBigUInt64LE(0x30000n, 0x008)
  raw.writeUInt32LE(p.algo ?? 1, 0x034)
  raw.writeUInt32LE((p.signer ?? 0) << 2, 0x048)
  raw.writeBigUInt64LE(p.tcb ?? encodeTcb(MILAN_TCB, 'Milan'), 0x180)
  if (p.cpuid !== undefined) {
    raw.writeUInt32LE(3, 0x000)
    raw.writeUInt8(p.cpuid[0], 0x188)
    raw.writeUInt8(p.cpuid[1], 0x189)
  }
  ;(p.chipId ?? CHIP).copy(raw, 0x1a0)
  p.mutate?.(raw)
  writeSignature(raw, sign('sha384', raw.subarray(0, SIGNED_SIZE), { key: leafPrivate, dsaEncoding: 'ieee-p1363' }))
  return raw
}

const trust = (chain: AmdChain, generation?: Generation): { trustedArkFingerprints: string[], now: Date, generation?: Generation } =>
  ({ trustedArkFingerprints: [chain.ark.fingerprint256], now: NOW, ...(generation === undefined ? {} : { generation }) })

t.test('azure-aci-milan verifies end to end', needsVectors(), async (t) => {
  const bytes = vector('azure-aci-milan', 'snp_report.bin')
  const result = verifyReport(bytes, azureChain(), { now: NOW })
  t.equal(result.report.reportedTcb, 0x7308000000000003n)
  t.equal(result.report.generation, null, 'a v2 Milan report does not name its generation')
  t.match(result.chain, { generation: 'Milan', signingKey: 'vcek', extensions: { productName: 'Milan-B0' } })
  t.ok(result.report.raw.equals(bytes))
  const bundle = parseBundlePem(vectorText('azure-aci-milan', 'uvm_host_amd_certificate.pem'))
  t.equal(verifyReport(bytes, bundle, { now: NOW }).chain.generation, 'Milan', 'the PEM bundle works the same')
  t.equal(verifyReport(new Uint8Array(bytes), bundle, { now: NOW, generation: 'Milan' }).report.generation, 'Milan')
})

t.test('virtee-milan and gsg-milan-debug verify; the debug bit is reported', needsVectors(), async (t) => {
  const virteeReport = Buffer.from(vectorText('virtee-milan', 'report_milan.hex').replace(/\s+/g, ''), 'hex')
  const virteeVcek = toPem(new X509Certificate(vector('virtee-milan', 'vcek_milan.der')))
  const virtee = verifyReport(virteeReport, parseChainPem(virteeVcek, vectorText('virtee-milan', 'cert_chain_milan')), { now: NOW })
  t.equal(virtee.report.reportedTcb, 0x7308000000000003n)
  t.equal(virtee.report.policy.debug, false)

  const gsgVcek = toPem(new X509Certificate(vector('gsg-milan-debug', 'vcek.testcer')))
  const gsg = verifyReport(vector('gsg-milan-debug', 'attestation.bin'), parseChainPem(gsgVcek, vectorText('gsg-milan-debug', 'milan.testcer')), { now: NOW })
  t.equal(gsg.report.policy.debug, true, 'verification succeeds; refusing debug is validation policy')
  t.equal(gsg.report.reportedTcb, 0x4405000000000002n)
})

t.test('every single-bit flip of the 672 signed bytes is rejected', needsVectors(), async (t) => {
  const original = vector('azure-aci-milan', 'snp_report.bin')
  const chain = azureChain()
  let rejected = 0
  let verified = 0
  const unexpected: string[] = []
  for (let bit = 0; bit < SIGNED_SIZE * 8; bit++) {
    const bytes = Buffer.from(original)
    bytes[bit >> 3] = (bytes[bit >> 3] ?? 0) ^ (1 << (bit & 7))
    try {
      verifyReport(bytes, chain, { now: NOW })
      verified++
    } catch (err) {
      if (err instanceof ReportUnverified || err instanceof ReportInvalid) rejected++
      else unexpected.push(`bit ${bit}: ${String(err)}`)
    }
  }
  t.equal(rejected, 5376, 'all 5376 flips rejected with ReportUnverified or ReportInvalid')
  t.equal(verified, 0, 'no flip verifies')
  t.same(unexpected, [], 'no other error')
})

t.test('tampered signatures, another chip, broken chains', needsVectors(), async (t) => {
  const original = vector('azure-aci-milan', 'snp_report.bin')
  const chain = azureChain()
  const flipped = Buffer.from(original)
  flipped[0x2a0] = (flipped[0x2a0] ?? 0) ^ 1
  t.throws(() => verifyReport(flipped, chain, { now: NOW }),
    { ...unverified('signature'), message: 'report signature does not verify under the VCEK' })
  const sHigh = Buffer.from(original)
  sHigh[0x2e8 + 47] = (sHigh[0x2e8 + 47] ?? 0) ^ 0x80
  t.throws(() => verifyReport(sHigh, chain, { now: NOW }), unverified('signature'), 'top bit of S')
  const upper = Buffer.from(original)
  upper[0x2a0 + 60] = 1
  t.throws(() => verifyReport(upper, chain, { now: NOW }), { code: 'ERR_SNP_REPORT_INVALID' }, 'R upper bytes must be zero')
  t.throws(() => verifyReport(original.subarray(0, 1000), chain, { now: NOW }), { code: 'ERR_SNP_REPORT_INVALID' })

  const sc = JSON.parse(Buffer.from(vectorText('azure-aci-milan', 'security-context-other-chip', 'host-amd-cert-base64'), 'base64').toString('utf8')) as
    { vcekCert: string, certificateChain: string }
  const otherChip = parseChainPem(sc.vcekCert, sc.certificateChain)
  t.throws(() => verifyReport(original, otherChip, { now: NOW }), unverified('signature'), 'a genuine VCEK of another chip')

  t.throws(() => verifyReport(original, chain, { now: new Date('2050-01-01T00:00:00Z') }), { code: 'ERR_CERT_CHAIN_INVALID', details: { check: 'validity' } })
  t.throws(() => verifyReport(original, chain, { now: NOW, trustedArkFingerprints: [] }), { code: 'ERR_CERT_CHAIN_INVALID', details: { check: 'pin' } })
  t.throws(() => verifyReport(original, { ...chain, ask: chain.ark, ark: chain.ask }, { now: NOW }), { code: 'ERR_CERT_CHAIN_INVALID' })
  t.throws(() => verifyReport(original, chain, { now: NOW, generation: 'Genoa' }),
    { ...unverified('generation'), message: 'report is from a Genoa CPU but its certificate is for Milan' })
})

t.test('compareTcb', needsVectors(), async (t) => {
  const ext = parseAmdExtensions(azureChain().vcek)
  const same = compareTcb(0x7308000000000003n, ext, 'Milan')
  t.same(same, { equal: true, reported: { bootloader: 3, tee: 0, snp: 8, microcode: 115, fmc: null }, certified: same.reported })
  const patched = compareTcb(0x7309000000000003n, ext, 'Milan')
  t.equal(patched.equal, false)
  t.equal(patched.reported.snp, 9)
  t.equal(patched.certified.snp, 8)
  t.equal(compareTcb(0x7408000000000003n, ext, 'Milan').equal, false, 'microcode')
  t.equal(compareTcb(0x7308000000000103n, ext, 'Milan').equal, false, 'tee')
  t.throws(() => compareTcb(0x7308000000000003n, ext, 'Turin'), { code: 'ERR_CERT_CHAIN_INVALID', details: { missing: 'fmcSPL' } })

  const turin = parseAmdExtensions(vector('virtee-turin', 'vcek_turin.der'))
  t.equal(compareTcb(encodeTcb({ bootloader: 0, tee: 0, snp: 0, microcode: 9, fmc: 0 }, 'Turin'), turin, 'Turin').equal, true)
  t.equal(compareTcb(encodeTcb({ bootloader: 0, tee: 0, snp: 0, microcode: 9, fmc: 1 }, 'Turin'), turin, 'Turin').equal, false, 'fmc counts on Turin')
})

t.test('a throwaway Milan chain: the VCEK binding to the report', async (t) => {
  const chain = await fakeChain()
  t.equal(verifyReport(fakeReport(), chain, trust(chain)).chain.extensions.snp, 200)
  t.throws(() => verifyReport(fakeReport(), chain, { now: NOW }), { code: 'ERR_CERT_CHAIN_INVALID', details: { check: 'pin' } })

  const otherTcb = encodeTcb({ ...MILAN_TCB, snp: 201 }, 'Milan')
  t.throws(() => verifyReport(fakeReport({ tcb: otherTcb }), chain, trust(chain)), {
    ...unverified('tcb'),
    message: "report REPORTED_TCB 73C9000000000003 (bl 3, tee 0, snp 201, ucode 115) differs from the certificate's TCB (bl 3, tee 0, snp 200, ucode 115)"
  })
  const otherChip = Buffer.from(CHIP)
  otherChip[63] = (otherChip[63] ?? 0) ^ 1
  t.throws(() => verifyReport(fakeReport({ chipId: otherChip }), chain, trust(chain)),
    { ...unverified('hwId'), message: /does not match the report CHIP_ID/ })
  t.ok(verifyReport(fakeReport({ chipId: Buffer.alloc(64) }), chain, trust(chain)), 'MASK_CHIP_ID: an all-zero CHIP_ID skips the hwID check')

  const noHwId = await fakeChain({ hwId: null })
  t.throws(() => verifyReport(fakeReport(), noHwId, trust(noHwId)), { ...unverified('hwId'), message: /has no hwID/ })
  const shortHwId = await fakeChain({ hwId: CHIP.subarray(0, 8) })
  t.throws(() => verifyReport(fakeReport(), shortHwId, trust(shortHwId)), unverified('hwId'), 'an 8-byte hwID binds only on Turin')

  t.throws(() => verifyReport(fakeReport({ signer: 7 }), chain, trust(chain)), { ...unverified('signer'), message: 'report is unsigned (SIGNING_KEY 7)' })
  t.throws(() => verifyReport(fakeReport({ signer: 1 }), chain, trust(chain)),
    { ...unverified('signer'), message: 'report is signed with the VLEK but the certificate is a VCEK' })
  t.throws(() => verifyReport(fakeReport({ algo: 2 }), chain, trust(chain)),
    { ...unverified('signatureAlgo'), message: 'report SIGNATURE_ALGO is 2, want 1 (ECDSA P-384 SHA-384)' })
  t.throws(() => verifyReport(fakeReport({ cpuid: [0x19, 0x11] }), chain, trust(chain)),
    { ...unverified('generation'), message: 'report is from a Genoa CPU but its certificate is for Milan' })
  t.ok(verifyReport(fakeReport({ cpuid: [0x19, 0x01] }), chain, trust(chain)), 'a v3 Milan report')
})

t.test('signed reports that set reserved bits and bytes verify; the unknown is kept, not refused (issue 12)', async (t) => {
  const chain = await fakeChain()
  const cases: Array<[string, (raw: Buffer) => void, (r: AttestationReport) => void]> = [
    ['PLATFORM_INFO bit 8', (raw) => { raw.writeBigUInt64LE(0x167n, 0x040) }, (r) => { t.equal(r.platformInfo.unknownBits, 0x100n) }],
    ['POLICY bit 26', (raw) => { raw.writeBigUInt64LE(0x4030000n, 0x008) }, (r) => { t.equal(r.policy.unknownBits, 0x4000000n) }],
    ['POLICY bit 17 clear', (raw) => { raw.writeBigUInt64LE(0x10000n, 0x008) }, (r) => { t.equal(r.policy.unknownBits, 0x20000n) }],
    ['signer word bit 9', (raw) => { raw.writeUInt32LE(0x200, 0x048) }, (r) => { t.match(r.signerInfo, { signingKey: 'vcek', unknownBits: 0x200 }) }],
    ['reserved byte 0x04C', (raw) => { raw[0x04c] = 7 }, (r) => { t.match(r.unknownBytes, [{ offset: 0x04c, signed: true }]) }],
    ['reserved byte 0x250', (raw) => { raw[0x250] = 7 }, (r) => { t.match(r.unknownBytes, [{ offset: 0x1f8, signed: true }]) }]
  ]
  for (const [label, mutate, check] of cases) {
    const result = verifyReport(fakeReport({ mutate }), chain, trust(chain))
    t.equal(unknownFields(result.report).length, 1, `${label}: verifies, one unknown field`)
    check(result.report)
  }
  t.throws(() => verifyReport(fakeReport({ signer: 3 }), chain, trust(chain)),
    { ...unverified('signer'), message: 'report SIGNING_KEY is 3, a value SNP ABI 56860 reserves: no key skr knows signed it' })
  const masked = fakeReport({ mutate: (raw) => { raw.writeUInt32LE(2, 0x048) } })
  masked[0x2a0] = (masked[0x2a0] ?? 0) ^ 1
  t.throws(() => verifyReport(masked, chain, trust(chain)),
    { ...unverified('signature'), message: 'report signature does not verify under the VCEK (MASK_CHIP_KEY is set: the platform may not sign with its chip key)' })
})

t.test('a throwaway VLEK chain: signer must be VLEK, no hwID binding', async (t) => {
  const chain = await fakeChain({ vlek: true, hwId: null })
  const result = verifyReport(fakeReport({ signer: 1, chipId: CHIP }), chain, trust(chain))
  t.equal(result.chain.signingKey, 'vlek')
  t.equal(result.report.signerInfo.signingKey, 'vlek')
  t.throws(() => verifyReport(fakeReport({ signer: 0 }), chain, trust(chain)),
    { ...unverified('signer'), message: 'report is signed with the VCEK but the certificate is a VLEK' })
})

t.test('a throwaway Turin chain: FMC-first TCB and 8-byte hwID', async (t) => {
  const chain = await fakeChain({ product: 'Turin', tcb: TURIN_TCB })
  const tcb = encodeTcb(TURIN_TCB, 'Turin')
  const v3 = verifyReport(fakeReport({ tcb, chipId: TURIN_CHIP, cpuid: [0x1a, 0x02] }), chain, trust(chain))
  t.equal(v3.report.generation, 'Turin')
  t.equal(verifyReport(fakeReport({ tcb, chipId: TURIN_CHIP }), chain, trust(chain)).report.generation, 'Turin', 'v2: CHIP_ID heuristic')
  t.throws(() => verifyReport(fakeReport({ tcb: encodeTcb({ ...TURIN_TCB, fmc: 4 }, 'Turin'), chipId: TURIN_CHIP }), chain, trust(chain)),
    { ...unverified('tcb'), message: /\(fmc 4, bl 4, tee 1, snp 22, ucode 72\) differs from the certificate's TCB \(fmc 3, bl 4/ })
  const wrong = Buffer.from(TURIN_CHIP)
  wrong[7] = (wrong[7] ?? 0) ^ 1
  t.throws(() => verifyReport(fakeReport({ tcb, chipId: wrong }), chain, trust(chain)), unverified('hwId'))
})

t.test('the generation must be known to compare TCBs', async (t) => {
  const chain = await fakeChain({ product: 'Venice', productName: 'Venice-A0' })
  t.throws(() => verifyReport(fakeReport(), chain, trust(chain)), { ...unverified('generation'), message: /CPU generation is unknown/ })
  t.equal(verifyReport(fakeReport(), chain, trust(chain, 'Milan')).report.generation, 'Milan', 'options.generation fills in')
})

