import t from 'tap'
import { X509Certificate, createHash, generateKeyPairSync, sign, verify } from 'node:crypto'
import {
  REPORT_SIZE, SIGNATURE_OFFSET, SIGNED_SIZE, generationFromCpuid, parseReport, serializeReport,
  signatureP1363, signedBytes, unknownFields, writeSignature
} from '../../../src/snp/abi.ts'
import { decodePlatformInfo, decodePolicy, decodeSignerInfo } from '../../../src/snp/report-fields.ts'
import type { AttestationReport, ReportFields } from '../../../src/snp/abi.ts'
import { encodeTcb } from '../../../src/snp/tcb.ts'
import { needsVectors, vector, vectorText } from '../../helpers/vectors.ts'

type Asserts = Pick<typeof t, 'throws'>
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const pattern = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (seed + 7 * i) & 0xff))

function toFields (r: AttestationReport): ReportFields {
  const { raw: _raw, generation: _g, tcb: _tcb, policy, platformInfo, signerInfo, ...rest } = r
  return { ...rest, policy: policy.raw, platformInfo: platformInfo.raw, signerInfo: signerInfo.raw }
}

const hex3 = (n: number): string => `0x${n.toString(16).toUpperCase().padStart(3, '0')}`

// A synthetic report with a distinct pattern in every field, so a shifted offset shows up.
function synthetic (version: number, over: Partial<ReportFields> = {}): ReportFields {
  return {
    version,
    guestSvn: 0x01020304,
    policy: 0x3001fn,
    familyId: pattern(16, 0x10),
    imageId: pattern(16, 0x20),
    vmpl: 2,
    signatureAlgo: 1,
    currentTcb: 0x7308000000000003n,
    platformInfo: 0x25n,
    signerInfo: 0,
    reportData: pattern(64, 0x30),
    measurement: pattern(48, 0x40),
    hostData: pattern(32, 0x50),
    idKeyDigest: pattern(48, 0x60),
    authorKeyDigest: pattern(48, 0x70),
    reportId: pattern(32, 0x80),
    reportIdMa: Buffer.alloc(32, 0xff),
    reportedTcb: 0x7308000000000002n,
    cpuid: version >= 3 ? { family: 0x19, model: 0x01, stepping: 0x01 } : null,
    chipId: pattern(64, 0x90),
    committedTcb: 0x7308000000000001n,
    currentVersion: { major: 1, minor: 55, build: 21 },
    committedVersion: { major: 1, minor: 54, build: 20 },
    launchTcb: 0x7207000000000001n,
    launchMitVector: version >= 5 ? 0x0102030405060708n : null,
    currentMitVector: version >= 5 ? 0x1112131415161718n : null,
    signature: { r: pattern(48, 0xa0), s: pattern(48, 0xb0) },
    ...over
  }
}

function expectInvalid (t: Asserts, bytes: Uint8Array, message: string, label?: string): void {
  t.throws(() => parseReport(bytes), { code: 'ERR_SNP_REPORT_INVALID', statusCode: 500, name: 'ReportInvalid', message }, label ?? message)
}

t.test('constants', async (t) => {
  t.equal(REPORT_SIZE, 1184)
  t.equal(SIGNED_SIZE, 672)
  t.equal(SIGNATURE_OFFSET, 0x2a0)
})

t.test('genuine Azure ACI Milan report, field by field (test/fixtures/vectors/README.md)', needsVectors(), async (t) => {
  const bytes = vector('azure-aci-milan', 'snp_report.bin')
  t.match(createHash('sha256').update(bytes).digest('hex'), /^8aa04429.*50925$/, 'the expected vector')
  const r = parseReport(bytes)
  t.equal(r.version, 2)
  t.equal(r.guestSvn, 2)
  t.same(r.policy, {
    raw: 0x3001fn, abiMinor: 31, abiMajor: 0, smt: true, migrateMa: false, debug: false, singleSocket: false,
    cxlAllow: false, memAes256Xts: false, raplDis: false, ciphertextHiding: false, pageSwapDisable: false, unknownBits: 0n
  })
  t.equal(hex(r.familyId), '01' + '00'.repeat(15))
  t.equal(hex(r.imageId), '02' + '00'.repeat(15))
  t.equal(r.vmpl, 0)
  t.equal(r.signatureAlgo, 1)
  t.equal(r.currentTcb, 0x7308000000000003n)
  t.same(r.platformInfo, {
    raw: 1n, smtEnabled: true, tsmeEnabled: false, eccEnabled: false, raplDisabled: false,
    ciphertextHidingEnabled: false, aliasCheckComplete: false, iommuWriteSafe: false, tioEnabled: false, unknownBits: 0n
  })
  t.same(r.signerInfo, { raw: 0, authorKeyEn: false, maskChipKey: false, signingKey: 'vcek', signingKeyValue: 0, unknownBits: 0 })
  t.same(r.unknownBytes, [], 'no reserved byte is set')
  const runtime = Buffer.from('ewogICAiYWtleSIgOiAiYXZhbHVlIgp9Cg==', 'base64')
  t.equal(hex(r.reportData), createHash('sha256').update(runtime).digest('hex') + '00'.repeat(32))
  t.equal(hex(r.reportData), 'ee986ff2bd7e3f22e29f640918627816cf8e23b9d9c312767168eab68c861c71' + '00'.repeat(32))
  t.equal(hex(r.measurement), '51068107cdc7ee3d89c7821b05bca6147eb77b2005ae759050fc049b65a1b0beabc65a9d857acecf23225f5ec76849f5')
  t.equal(hex(r.hostData), 'cadd74f71ebb8fbf9782baab649612520f3c416bc5ce9ac768808ddc8d9b031c')
  t.equal(hex(r.idKeyDigest), 'd3ed82823f890b10087105c472e2957541ede92fda7bbb6bbf8660c411c78fec8128955bc6e0efbb24c0c4a781bfee59')
  t.equal(hex(r.authorKeyDigest), '00'.repeat(48))
  t.equal(hex(r.reportId), 'f577d07df6f3aadf25afb2996b7e3fcdb5979c9044ce6c99853c747fc0e98613')
  t.equal(hex(r.reportIdMa), 'ff'.repeat(32))
  t.equal(r.reportedTcb, 0x7308000000000003n)
  t.equal(r.cpuid, null, 'v2 has no CPUID')
  t.equal(hex(r.chipId), 'b12164b45a2a27426e04ab52c5781d404fe2eab35ef5c4f714ce0fc23d2fb3f3' +
    'e65631710244a4edfad191616be3366e48a6352b35128d748458bc9c282d0f5a')
  t.equal(r.committedTcb, 0x7308000000000003n)
  t.equal(r.launchTcb, 0x7308000000000003n)
  t.same(r.currentVersion, { major: 1, minor: 52, build: 4 })
  t.same(r.committedVersion, { major: 1, minor: 52, build: 4 })
  t.equal(r.launchMitVector, null)
  t.equal(r.currentMitVector, null)
  // R and S are stored little-endian (R starts 5482f716 and ends cea108 on the wire).
  t.equal(r.signature.r.length, 48)
  t.match(hex(r.signature.r), /^08a1ce.*16f78254$/)
  t.match(hex(r.signature.s), /^8bf055.*4d4c088f$/)
  t.equal(r.generation, null, 'a v2 Milan report does not say its generation')
  t.equal(r.tcb, null)
  t.ok(r.raw.equals(bytes))
  t.not(r.raw, bytes, 'raw is a copy')

  const milan = parseReport(bytes, { generation: 'Milan' })
  t.equal(milan.generation, 'Milan')
  const bl3 = { bootloader: 3, tee: 0, snp: 8, microcode: 115, fmc: null }
  t.same(milan.tcb, { current: bl3, reported: bl3, committed: bl3, launch: bl3 })
})

t.test('genuine signatures verify through signedBytes and signatureP1363', needsVectors(), async (t) => {
  const thim = JSON.parse(vectorText('azure-aci-milan', 'uvm_host_amd_certificate.json')) as { vcekCert: string }
  const cases: Array<[string, Buffer, X509Certificate]> = [
    ['azure', vector('azure-aci-milan', 'snp_report.bin'), new X509Certificate(thim.vcekCert)],
    ['gsg', vector('gsg-milan-debug', 'attestation.bin'), new X509Certificate(vector('gsg-milan-debug', 'vcek.testcer'))],
    ['virtee', Buffer.from(vectorText('virtee-milan', 'report_milan.hex').trim(), 'hex'), new X509Certificate(vector('virtee-milan', 'vcek_milan.der'))]
  ]
  for (const [name, bytes, vcek] of cases) {
    const r = parseReport(bytes)
    const key = { key: vcek.publicKey, dsaEncoding: 'ieee-p1363' as const }
    t.ok(verify('sha384', signedBytes(r.raw), key, signatureP1363(r)), `${name} verifies`)
    const unreversed = Buffer.concat([r.raw.subarray(0x2a0, 0x2d0), r.raw.subarray(0x2e8, 0x318)])
    t.notOk(verify('sha384', signedBytes(r.raw), key, unreversed), `${name}: the wire (little-endian) order does not`)
  }
})

t.test('genuine gsg debug report', needsVectors(), async (t) => {
  const r = parseReport(vector('gsg-milan-debug', 'attestation.bin'))
  t.equal(r.version, 2)
  t.equal(r.policy.raw, 0xb0000n)
  t.equal(r.policy.debug, true)
  t.equal(r.policy.smt, true)
  t.equal(r.policy.migrateMa, false)
  t.equal(r.reportedTcb, 0x4405000000000002n)
  t.equal(hex(r.reportData.subarray(0, 5)), '0102030405')
  const g = parseReport(vector('gsg-milan-debug', 'attestation.bin'), { generation: 'Milan' })
  t.same(g.tcb?.reported, { bootloader: 2, tee: 0, snp: 5, microcode: 0x44, fmc: null })
})

t.test('genuine virtee report (hex text)', needsVectors(), async (t) => {
  const text = vectorText('virtee-milan', 'report_milan.hex').trim()
  const r = parseReport(Buffer.from(text, 'hex'))
  t.equal(r.version, 2)
  t.equal(r.policy.raw, 0x30000n)
  t.equal(r.policy.debug, false)
  t.equal(r.reportedTcb, 0x7308000000000003n)
  t.equal(r.raw.toString('hex'), text.toLowerCase())
})

t.test('parse then serialize gives back the genuine bytes exactly', needsVectors(), async (t) => {
  const vectors: Array<[string, Buffer]> = [
    ['azure', vector('azure-aci-milan', 'snp_report.bin')],
    ['gsg', vector('gsg-milan-debug', 'attestation.bin')],
    ['virtee', Buffer.from(vectorText('virtee-milan', 'report_milan.hex').trim(), 'hex')]
  ]
  for (const [name, bytes] of vectors) t.ok(serializeReport(toFields(parseReport(bytes))).equals(bytes), name)
})

t.test('synthetic v3 Milan: CPUID at 0x188..0x18A decides the generation', async (t) => {
  const bytes = serializeReport(synthetic(3))
  t.equal(hex(bytes.subarray(0x188, 0x18b)), '190101', 'CPUID bytes at their offsets')
  t.equal(hex(bytes.subarray(0x1f8, 0x2a0)), '00'.repeat(0xa8), 'no mitigation vectors before v5')
  const r = parseReport(bytes)
  t.same(r.cpuid, { family: 0x19, model: 0x01, stepping: 0x01 })
  t.equal(r.generation, 'Milan')
  t.same(r.tcb?.launch, { bootloader: 1, tee: 0, snp: 7, microcode: 0x72, fmc: null })
  t.equal(r.guestSvn, 0x01020304)
  t.equal(r.vmpl, 2)
  t.same(r.platformInfo.aliasCheckComplete, true)
  t.same(r.currentVersion, { major: 1, minor: 55, build: 21 })
  t.same(r.committedVersion, { major: 1, minor: 54, build: 20 })
  t.equal(hex(bytes.subarray(0x1e8, 0x1f0)), '15370100143601' + '00')
  t.ok(serializeReport(toFields(r)).equals(bytes))
  t.same(toFields(r), { ...synthetic(3), unknownBytes: [] })
})

t.test('synthetic v4 is read with the v3 layout', async (t) => {
  const bytes = serializeReport(synthetic(4, { cpuid: { family: 0x19, model: 0x11, stepping: 0x01 } }))
  const r = parseReport(bytes)
  t.equal(r.version, 4)
  t.equal(r.generation, 'Genoa')
  t.equal(r.launchMitVector, null)
  t.ok(serializeReport(toFields(r)).equals(bytes))
})

t.test('synthetic v5 Genoa: mitigation vectors at 0x1F8 and 0x200', async (t) => {
  const bytes = serializeReport(synthetic(5, { cpuid: { family: 0x19, model: 0x11, stepping: 0x01 } }))
  t.equal(hex(bytes.subarray(0x1f8, 0x208)), '0807060504030201' + '1817161514131211')
  const r = parseReport(bytes)
  t.equal(r.launchMitVector, 0x0102030405060708n)
  t.equal(r.currentMitVector, 0x1112131415161718n)
  t.equal(r.generation, 'Genoa')
  t.ok(serializeReport(toFields(r)).equals(bytes))
})

t.test('synthetic v5 Turin: family 0x1A model 0x02 selects the FMC TCB layout', async (t) => {
  const current = { bootloader: 2, tee: 3, snp: 4, microcode: 0x48, fmc: 1 }
  const reported = { bootloader: 2, tee: 3, snp: 3, microcode: 0x44, fmc: 1 }
  const turinChip = Buffer.concat([pattern(8, 0x5a), Buffer.alloc(56)])
  const fields = synthetic(5, {
    cpuid: { family: 0x1a, model: 0x02, stepping: 0x00 },
    currentTcb: encodeTcb(current, 'Turin'),
    reportedTcb: encodeTcb(reported, 'Turin'),
    committedTcb: encodeTcb(reported, 'Turin'),
    launchTcb: encodeTcb(reported, 'Turin'),
    chipId: turinChip
  })
  const bytes = serializeReport(fields)
  t.equal(hex(bytes.subarray(0x038, 0x040)), '0102030400000048', 'CURRENT_TCB wire bytes: fmc, bl, tee, snp, -, -, -, ucode')
  const r = parseReport(bytes, { generation: 'Milan' })
  t.equal(r.generation, 'Turin', 'the report CPUID wins over options.generation')
  t.same(r.tcb, { current, reported, committed: reported, launch: reported })
  t.ok(serializeReport(toFields(r)).equals(bytes))
})

t.test('generation detection', async (t) => {
  const turinChip = Buffer.concat([pattern(8, 0x5a), Buffer.alloc(56)])
  t.equal(parseReport(serializeReport(synthetic(2, { chipId: turinChip }))).generation, 'Turin', 'v2: 8-byte CHIP_ID means Turin')
  t.same(parseReport(serializeReport(synthetic(2, { chipId: turinChip, currentTcb: 0x4800000004030201n }))).tcb?.current,
    { bootloader: 2, tee: 3, snp: 4, microcode: 0x48, fmc: 1 })
  t.equal(parseReport(serializeReport(synthetic(2, { chipId: Buffer.alloc(64) }))).generation, null, 'v2: masked CHIP_ID says nothing')
  t.equal(parseReport(serializeReport(synthetic(2, { chipId: Buffer.alloc(64) })), { generation: 'Genoa' }).generation, 'Genoa')
  t.equal(parseReport(serializeReport(synthetic(2)), { generation: 'Genoa' }).generation, 'Genoa', 'v2 Milan/Genoa: the caller decides')
  const venice = serializeReport(synthetic(5, { cpuid: { family: 0x1a, model: 0x50, stepping: 0 }, chipId: turinChip }))
  t.equal(parseReport(venice).generation, null, 'an unknown CPUID is not guessed from CHIP_ID')
  t.equal(parseReport(venice).tcb, null)
  t.equal(parseReport(venice, { generation: 'Turin' }).generation, 'Turin', 'unknown CPUID falls back to options.generation')
  t.throws(() => parseReport(serializeReport(synthetic(2)), { generation: 'milan' as 'Milan' }),
    { name: 'TypeError', message: 'options.generation "milan" is not Milan, Genoa or Turin' })
})

t.test('generationFromCpuid', async (t) => {
  const cases: Array<[number, number, string | null]> = [
    [0x19, 0x00, 'Milan'], [0x19, 0x01, 'Milan'], [0x19, 0x0f, 'Milan'],
    [0x19, 0x10, 'Genoa'], [0x19, 0x11, 'Genoa'], [0x19, 0x1f, 'Genoa'], [0x19, 0xa0, 'Genoa'], [0x19, 0xaf, 'Genoa'],
    [0x19, 0x20, null], [0x19, 0x9f, null], [0x19, 0xb0, null],
    [0x1a, 0x00, 'Turin'], [0x1a, 0x02, 'Turin'], [0x1a, 0x11, 'Turin'], [0x1a, 0x12, null], [0x1a, 0x50, null],
    [0x17, 0x31, null], [0x00, 0x00, null]
  ]
  for (const [family, model, want] of cases) t.equal(generationFromCpuid(family, model), want, `family ${family.toString(16)} model ${model.toString(16)}`)
})

// ---- what stays fatal: only what the spec leaves no room for (docs/snp-report.md) ----------------

t.test('fatal: a size other than 1184 (ATTESTATION_REPORT is 4A0h bytes)', async (t) => {
  for (const size of [0, 1183, 1185, 4000]) {
    expectInvalid(t, new Uint8Array(size), `report size ${size}, want 1184 (SNP ABI 56860: ATTESTATION_REPORT is 4A0h bytes for versions 2..5)`)
  }
  t.throws(() => parseReport('x'.repeat(1184) as unknown as Uint8Array), { name: 'TypeError' })
})

t.test('fatal: a VERSION whose layout is unknown', async (t) => {
  for (const version of [0, 1, 6, 0x102, 0xffffffff]) {
    const bytes = serializeReport(synthetic(2))
    bytes.writeUInt32LE(version, 0)
    expectInvalid(t, bytes, `report version ${version}, want 2, 3, 4 or 5: the layout of version ${version} is unknown (SNP ABI 56860 ATTESTATION_REPORT VERSION)`)
  }
})

t.test('fatal for SIGNATURE_ALGO 1: non-zero signature padding (unsigned bytes)', async (t) => {
  const note = '(SNP ABI 56860 ECDSA P-384 SHA-384 signature format: R and S are 48-byte values zero-extended to 72 bytes, the rest reserved; these bytes are not signed)'
  const rules: Array<[number, number, string]> = [
    [2, 0x2d0, 'signature R upper bytes 0x2D0..0x2E8'], [5, 0x2e7, 'signature R upper bytes 0x2D0..0x2E8'],
    [2, 0x318, 'signature S upper bytes 0x318..0x330'], [3, 0x32f, 'signature S upper bytes 0x318..0x330'],
    [2, 0x330, 'reserved bytes 0x330..0x4A0'], [5, 0x49f, 'reserved bytes 0x330..0x4A0']
  ]
  for (const [version, offset, range] of rules) {
    const bytes = serializeReport(synthetic(version))
    bytes[offset] = 0x01
    expectInvalid(t, bytes, `report ${range} has 0x01 at ${hex3(offset)}, want all zero ${note}`, `v${version} byte ${hex3(offset)}`)
  }
})

// ---- what is never fatal: reserved bits and bytes are decoded and kept (go-sev-guest TestReportMbz, inverted)

t.test('reserved signed bytes: one byte set, decoded into unknownBytes, round trip exact', async (t) => {
  // [version, byte offset set to 0x5a, the reserved range [start, end) it belongs to]
  const rules: Array<[number, number, number, number]> = [
    [2, 0x04c, 0x04c, 0x050], [5, 0x04f, 0x04c, 0x050],
    [2, 0x188, 0x188, 0x1a0], [2, 0x18a, 0x188, 0x1a0], [2, 0x19f, 0x188, 0x1a0],
    [3, 0x18b, 0x18b, 0x1a0], [4, 0x19f, 0x18b, 0x1a0], [5, 0x190, 0x18b, 0x1a0],
    [2, 0x1eb, 0x1eb, 0x1ec], [5, 0x1eb, 0x1eb, 0x1ec],
    [2, 0x1ef, 0x1ef, 0x1f0], [3, 0x1ef, 0x1ef, 0x1f0],
    [2, 0x1f8, 0x1f8, 0x2a0], [3, 0x1ff, 0x1f8, 0x2a0], [4, 0x200, 0x1f8, 0x2a0], [4, 0x207, 0x1f8, 0x2a0], [2, 0x29f, 0x1f8, 0x2a0],
    [5, 0x208, 0x208, 0x2a0], [5, 0x29f, 0x208, 0x2a0]
  ]
  for (const [version, offset, start, end] of rules) {
    const bytes = serializeReport(synthetic(version))
    bytes[offset] = 0x5a
    const label = `v${version} byte ${hex3(offset)}`
    const r = parseReport(bytes)
    const expected = Buffer.alloc(end - start)
    expected[offset - start] = 0x5a
    t.same(r.unknownBytes, [{ offset: start, bytes: expected, signed: true }], `${label}: kept as reserved ${hex3(start)}..${hex3(end)}`)
    t.same(unknownFields(r), [`reserved bytes ${hex3(start)}..${hex3(end)}: 1 non-zero, first 0x5a at ${hex3(offset)}`], `${label}: summarised`)
    t.ok(serializeReport(toFields(r)).equals(bytes), `${label}: serializeReport writes it back`)
  }
})

t.test('bytes just outside the reserved ranges are fields, not unknown bytes', async (t) => {
  const ok: Array<[number, number]> = [
    [2, 0x048], [2, 0x050], [3, 0x18a], [2, 0x1a0], [2, 0x1ea], [2, 0x1ec], [2, 0x1ee], [2, 0x1f0], [2, 0x1f7],
    [5, 0x1f8], [5, 0x207], [2, 0x2cf], [2, 0x2e8], [2, 0x317]
  ]
  for (const [version, offset] of ok) {
    const bytes = serializeReport(synthetic(version))
    bytes[offset] = (bytes[offset] ?? 0) ^ 0x01
    const r = parseReport(bytes)
    t.same(r.unknownBytes, [], `v${version} byte 0x${offset.toString(16)} is a field`)
    t.ok(serializeReport(toFields(r)).equals(bytes), `v${version} byte 0x${offset.toString(16)} is carried through`)
  }
})

t.test('another SIGNATURE_ALGO: the signature area is opaque, kept, and not refused', async (t) => {
  const bytes = serializeReport(synthetic(5, { signatureAlgo: 2 }))
  bytes[0x2d0] = 0x11
  bytes[0x49f] = 0x22
  const r = parseReport(bytes)
  t.equal(r.signatureAlgo, 2)
  t.same(r.unknownBytes.map((u) => [u.offset, u.bytes.length, u.signed]), [[0x2d0, 24, false], [0x330, 0x170, false]])
  t.same(unknownFields(r), [
    'SIGNATURE_ALGO 2 (only 1, ECDSA P-384 with SHA-384, is defined)',
    'reserved bytes 0x2D0..0x2E8: 1 non-zero, first 0x11 at 0x2D0 (not signed)',
    'reserved bytes 0x330..0x4A0: 1 non-zero, first 0x22 at 0x49F (not signed)'
  ])
  t.ok(serializeReport(toFields(r)).equals(bytes), 'round trip exact')
})

t.test('reserved bits: one bit at a time, decoded into unknownBits, never refused', async (t) => {
  // [label, over, the word's decoded unknownBits, the summary line]
  const cases: Array<[string, Partial<ReportFields>, 'policy' | 'platformInfo' | 'signerInfo', bigint | number, string]> = [
    ['policy bit 17 clear (reserved as 1)', { policy: 0x1001fn }, 'policy', 0x20000n, 'POLICY reserved bits 0x20000'],
    ['policy bit 26', { policy: 0x403001fn }, 'policy', 0x4000000n, 'POLICY reserved bits 0x4000000'],
    ['policy bit 63', { policy: 0x800000000003001fn }, 'policy', 0x8000000000000000n, 'POLICY reserved bits 0x8000000000000000'],
    ['policy bit 17 clear and bit 40', { policy: 0x1000001001fn }, 'policy', 0x10000020000n, 'POLICY reserved bits 0x10000020000'],
    ['platform bit 8', { platformInfo: 0x101n }, 'platformInfo', 0x100n, 'PLATFORM_INFO reserved bits 0x100'],
    ['platform bit 63', { platformInfo: 1n << 63n }, 'platformInfo', 1n << 63n, 'PLATFORM_INFO reserved bits 0x8000000000000000'],
    ['signer bit 5', { signerInfo: 0x20 }, 'signerInfo', 0x20, 'signer word (0x048) reserved bits 0x20'],
    ['signer bit 31', { signerInfo: 0x80000001 }, 'signerInfo', 0x80000000, 'signer word (0x048) reserved bits 0x80000000']
  ]
  for (const [label, over, word, unknownBits, line] of cases) {
    const bytes = serializeReport(synthetic(3, over))
    const r = parseReport(bytes)
    t.equal(r[word].unknownBits, unknownBits, `${label}: unknownBits`)
    t.same(unknownFields(r), [line], `${label}: summarised`)
    t.ok(serializeReport(toFields(r)).equals(bytes), `${label}: round trip exact`)
  }
  for (let key = 2; key <= 6; key++) {
    const r = parseReport(serializeReport(synthetic(3, { signerInfo: key << 2 })))
    t.match(r.signerInfo, { signingKey: 'reserved', signingKeyValue: key, unknownBits: 0 }, `SIGNING_KEY ${key} is reserved, not refused`)
    t.same(unknownFields(r), [`SIGNING_KEY ${key} (reserved)`])
  }
})

t.test('PLATFORM_INFO bit 6 (a genuine Turin sets it) is a named bit, not an unknown one', async (t) => {
  const r = parseReport(serializeReport(synthetic(5, { platformInfo: 0x67n })))
  t.match(r.platformInfo, {
    raw: 0x67n, smtEnabled: true, tsmeEnabled: true, eccEnabled: true, raplDisabled: false,
    ciphertextHidingEnabled: false, aliasCheckComplete: true, iommuWriteSafe: true, tioEnabled: false, unknownBits: 0n
  })
  t.same(unknownFields(r), [])
})

t.test('every defined bit decodes', async (t) => {
  const r = parseReport(serializeReport(synthetic(5, { policy: 0x3ff0102n, platformInfo: 0xffn, signerInfo: 0x07 })))
  t.same(r.policy, {
    raw: 0x3ff0102n, abiMinor: 2, abiMajor: 1, smt: true, migrateMa: true, debug: true, singleSocket: true,
    cxlAllow: true, memAes256Xts: true, raplDis: true, ciphertextHiding: true, pageSwapDisable: true, unknownBits: 0n
  })
  t.same(r.platformInfo, {
    raw: 0xffn, smtEnabled: true, tsmeEnabled: true, eccEnabled: true, raplDisabled: true,
    ciphertextHidingEnabled: true, aliasCheckComplete: true, iommuWriteSafe: true, tioEnabled: true, unknownBits: 0n
  })
  t.same(r.signerInfo, { raw: 0x07, authorKeyEn: true, maskChipKey: true, signingKey: 'vlek', signingKeyValue: 1, unknownBits: 0 })
  t.equal(parseReport(serializeReport(synthetic(5, { signerInfo: 0x1c }))).signerInfo.signingKey, 'none')
  const bare = parseReport(serializeReport(synthetic(2, { policy: 0x20000n, platformInfo: 0n })))
  t.same([bare.policy.smt, bare.policy.debug, bare.platformInfo.smtEnabled], [false, false, false])
})

t.test('the decoders on their own (every bit of every word)', async (t) => {
  for (let n = 0; n < 64; n++) {
    const v = 1n << BigInt(n)
    const policyUnknown = n === 17 ? 0n : (n >= 26 ? v : 0n)
    t.equal(decodePolicy(v | 0x20000n).unknownBits, policyUnknown, `policy bit ${n}`)
    t.equal(decodePlatformInfo(v).unknownBits, n >= 8 ? v : 0n, `platform info bit ${n}`)
  }
  t.equal(decodePolicy(0n).unknownBits, 0x20000n, 'bit 17 clear')
  for (let n = 0; n < 32; n++) {
    const v = (2 ** n) >>> 0
    t.equal(decodeSignerInfo(v).unknownBits, n >= 5 ? v : 0, `signer bit ${n}`)
  }
})

t.test('parseReport works on its own copy', async (t) => {
  const input = serializeReport(synthetic(3))
  const original = Buffer.from(input)
  const r = parseReport(input)
  input.fill(0xee)
  t.ok(r.raw.equals(original), 'later writes to the input do not reach raw')
  t.equal(hex(r.measurement), hex(pattern(48, 0x40)))
  r.measurement.fill(0)
  r.signature.r.fill(0)
  t.ok(r.raw.equals(original), 'writes to decoded fields do not reach raw')
  t.ok(parseReport(new Uint8Array(original)).raw.equals(original), 'a plain Uint8Array is accepted')
})

t.test('signing a synthetic report with a real P-384 key', async (t) => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'secp384r1' })
  const bytes = serializeReport(synthetic(5))
  const sig = sign('sha384', signedBytes(bytes), { key: privateKey, dsaEncoding: 'ieee-p1363' })
  writeSignature(bytes, sig)
  t.equal(hex(bytes.subarray(0x2a0, 0x2d0)), hex(Buffer.from(sig.subarray(0, 48)).reverse()), 'R little-endian at 0x2A0')
  t.equal(hex(bytes.subarray(0x2e8, 0x318)), hex(Buffer.from(sig.subarray(48)).reverse()), 'S little-endian at 0x2E8')
  const r = parseReport(bytes)
  t.ok(signatureP1363(r).equals(sig))
  const key = { key: publicKey, dsaEncoding: 'ieee-p1363' as const }
  t.ok(verify('sha384', signedBytes(r.raw), key, signatureP1363(r)))
  const tampered = Buffer.from(r.raw)
  tampered[0x090] = (tampered[0x090] ?? 0) ^ 1
  t.notOk(verify('sha384', signedBytes(tampered), key, signatureP1363(r)), 'a changed MEASUREMENT breaks it')
})

t.test('writeSignature clears the upper bytes and checks its arguments', async (t) => {
  const bytes = serializeReport(synthetic(2))
  bytes.fill(0xff, 0x2a0, 0x330)
  writeSignature(bytes, Buffer.concat([Buffer.alloc(48, 1), Buffer.alloc(48, 2)]))
  t.equal(hex(bytes.subarray(0x2d0, 0x2e8)), '00'.repeat(24))
  t.equal(hex(bytes.subarray(0x318, 0x330)), '00'.repeat(24))
  t.equal(parseReport(bytes).signature.s.every((b) => b === 2), true)
  t.throws(() => writeSignature(bytes, new Uint8Array(95)), { name: 'TypeError', message: 'signature must be 96 bytes r||s' })
  t.throws(() => writeSignature(Buffer.alloc(100), new Uint8Array(96)), { name: 'TypeError', message: 'report must be 1184 bytes' })
  t.throws(() => signatureP1363({ signature: { r: Buffer.alloc(47), s: Buffer.alloc(48) } }), { name: 'TypeError' })
})

t.test('signedBytes', async (t) => {
  const bytes = serializeReport(synthetic(3))
  const signed = signedBytes(bytes)
  t.equal(signed.length, 0x2a0)
  t.ok(signed.equals(bytes.subarray(0, 0x2a0)))
  signed.fill(0)
  t.equal(bytes.readUInt32LE(0), 3, 'a copy, not a view')
  t.throws(() => signedBytes(new Uint8Array(0x2a0)), { code: 'ERR_SNP_REPORT_INVALID', message: /^report size 672, want 1184 / })
})

t.test('serializeReport rejects fields it cannot encode', async (t) => {
  const cases: Array<[Partial<ReportFields>, string, number]> = [
    [{ cpuid: { family: 0x19, model: 1, stepping: 1 } }, 'cpuid exists from report version 3, version is 2', 2],
    [{ launchMitVector: 1n }, 'launchMitVector exists from report version 5, version is 3', 3],
    [{ currentMitVector: 1n }, 'currentMitVector exists from report version 5, version is 4', 4],
    [{ measurement: Buffer.alloc(47) }, 'measurement must be 48 bytes', 2],
    [{ chipId: Buffer.alloc(65) }, 'chipId must be 64 bytes', 2],
    [{ vmpl: -1 }, 'vmpl must be an integer in 0..4294967295', 2],
    [{ guestSvn: 2 ** 32 }, 'guestSvn must be an integer in 0..4294967295', 2],
    [{ policy: 1n << 64n }, 'policy must be a bigint in 0..2^64-1', 2],
    [{ reportedTcb: 3 as unknown as bigint }, 'reportedTcb must be a bigint in 0..2^64-1', 2],
    [{ currentVersion: { major: 256, minor: 0, build: 0 } }, 'currentVersion.major must be an integer in 0..255', 2],
    [{ cpuid: { family: 0x19, model: 1, stepping: 300 } }, 'cpuid.stepping must be an integer in 0..255', 3]
  ]
  for (const [over, message, version] of cases) t.throws(() => serializeReport(synthetic(version, over)), { name: 'TypeError', message })
  const noCpuid = parseReport(serializeReport(synthetic(3, { cpuid: null })))
  t.same(noCpuid.cpuid, { family: 0, model: 0, stepping: 0 }, 'a v3 without cpuid is written as zeros')
  const at = (offset: number, length: number): Partial<ReportFields> => ({ unknownBytes: [{ offset, bytes: Buffer.alloc(length, 1), signed: true }] })
  const bad: Array<[Partial<ReportFields>, number, string]> = [
    [at(0x1f8, 0xa8), 5, 'unknownBytes at 504 is not a whole reserved range of a version 5 report with SIGNATURE_ALGO 1'],
    [at(0x04c, 3), 2, 'unknownBytes at 76 is not a whole reserved range of a version 2 report with SIGNATURE_ALGO 1'],
    [at(0x090, 4), 2, 'unknownBytes at 144 is not a whole reserved range of a version 2 report with SIGNATURE_ALGO 1'],
    [at(0x330, 0x170), 2, 'unknownBytes at 816 is not a whole reserved range of a version 2 report with SIGNATURE_ALGO 1']
  ]
  for (const [over, version, message] of bad) t.throws(() => serializeReport(synthetic(version, over)), { name: 'TypeError', message })
})
