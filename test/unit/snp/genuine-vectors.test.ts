// Genuine Genoa and Turin version-5 reports with the VCEKs AMD issued for them, decoded and verified
// end to end (signature under the VCEK, VCEK -> ASK -> ARK pinned), plus the negative cases: a
// flipped signed byte, a wrong size, an unknown version. Provenance: test/fixtures/vectors/README.md.
// The Turin report is the case of issue 12: PLATFORM_INFO 0x67, which skr used to refuse.
import t from 'tap'
import { createHash, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { verifyAmdChain, type AmdChain } from '../../../src/certs/amd-chain.ts'
import { AMD_ARK_FINGERPRINTS, AMD_ASK_FINGERPRINTS } from '../../../src/certs/amd-roots.ts'
import { ReportInvalid, ReportUnverified } from '../../../src/errors.ts'
import { SIGNED_SIZE, parseReport, serializeReport, unknownFields, type AttestationReport, type ReportFields } from '../../../src/snp/abi.ts'
import { verifyReport } from '../../../src/certs/report-verify.ts'

const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'fixtures', 'vectors')
const fixture = (...parts: string[]): Buffer => readFileSync(join(FIXTURES, ...parts))
const NOW = new Date('2025-09-01T00:00:00Z')
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

function chainOf (generation: 'genoa' | 'turin'): AmdChain {
  return {
    vcek: new X509Certificate(fixture('project-oak', `${generation}_oc_vcek.der`)),
    ask: new X509Certificate(fixture('virtee-sev', `${generation}_ask.pem`)),
    ark: new X509Certificate(fixture('virtee-sev', `${generation}_ark.pem`))
  }
}

function toFields (r: AttestationReport): ReportFields {
  const { raw: _raw, generation: _g, tcb: _tcb, policy, platformInfo, signerInfo, ...rest } = r
  return { ...rest, policy: policy.raw, platformInfo: platformInfo.raw, signerInfo: signerInfo.raw }
}

const GENOA = fixture('project-oak', 'genoa_oc_report.bin')
const TURIN = fixture('project-oak', 'turin_oc_report.bin')

t.test('the fixtures are the bytes the README describes', async (t) => {
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
  t.equal(sha(GENOA), '6d1ceffae6ad5caeadbc27655b2dfabf38fe3a0033e2e3b4a8a5958f893c67a3')
  t.equal(sha(TURIN), '3f44a09b769aae243b2c603c2a6f53d4b1cf5feb36b380ea29adcf47da847e20')
  t.equal(sha(fixture('project-oak', 'genoa_oc_vcek.der')), 'b6563a6c7767990bbb9e84368cf66822e3a883c16fb24b2b94fba46dac3bd809')
  t.equal(sha(fixture('project-oak', 'turin_oc_vcek.der')), '14889815724988d463b971dc409aa00ff1f24b7d3fa3b3c55efb3b2aa9bd6919')
  for (const g of ['Genoa', 'Turin'] as const) {
    const chain = chainOf(g === 'Genoa' ? 'genoa' : 'turin')
    t.equal(chain.ark.fingerprint256, AMD_ARK_FINGERPRINTS[g], `${g} ARK is AMD's pinned one`)
    t.equal(chain.ask.fingerprint256, AMD_ASK_FINGERPRINTS[g], `${g} ASK is AMD's`)
  }
})

t.test('genuine Genoa v5 (firmware 1.55.43): decoded field by field', async (t) => {
  const r = parseReport(GENOA)
  t.equal(r.version, 5)
  t.match(r.policy, { raw: 0x30000n, smt: true, debug: false, migrateMa: false, unknownBits: 0n })
  t.match(r.platformInfo, {
    raw: 0x25n, smtEnabled: true, tsmeEnabled: false, eccEnabled: true, raplDisabled: false,
    ciphertextHidingEnabled: false, aliasCheckComplete: true, iommuWriteSafe: false, tioEnabled: false, unknownBits: 0n
  })
  t.same(r.signerInfo, { raw: 0, authorKeyEn: false, maskChipKey: false, signingKey: 'vcek', signingKeyValue: 0, unknownBits: 0 })
  t.same(r.cpuid, { family: 0x19, model: 0x11, stepping: 0x01 })
  t.equal(r.generation, 'Genoa')
  t.equal(r.reportedTcb, 0x541900000000000an)
  t.same(r.tcb?.reported, { bootloader: 10, tee: 0, snp: 25, microcode: 84, fmc: null })
  t.same(r.currentVersion, { major: 1, minor: 55, build: 43 })
  t.equal(r.launchMitVector, 1n)
  t.equal(r.currentMitVector, 1n)
  t.equal(hex(r.chipId).slice(0, 16), 'd2421d976f95ce0b')
  t.same(r.unknownBytes, [])
  t.same(unknownFields(r), [])
  t.ok(serializeReport(toFields(r)).equals(GENOA), 'serializeReport gives back the genuine bytes')
})

t.test('genuine Turin v5 (firmware 1.55.61): PLATFORM_INFO 0x67 decodes, nothing unknown', async (t) => {
  const r = parseReport(TURIN)
  t.equal(r.version, 5)
  t.match(r.policy, { raw: 0x30000n, smt: true, debug: false, unknownBits: 0n })
  t.same(r.platformInfo, {
    raw: 0x67n, smtEnabled: true, tsmeEnabled: true, eccEnabled: true, raplDisabled: false,
    ciphertextHidingEnabled: false, aliasCheckComplete: true, iommuWriteSafe: true, tioEnabled: false, unknownBits: 0n
  })
  t.same(r.cpuid, { family: 0x1a, model: 0x02, stepping: 0x01 })
  t.equal(r.generation, 'Turin')
  t.equal(r.reportedTcb, 0x4700000002000100n)
  t.same(r.tcb?.reported, { bootloader: 1, tee: 0, snp: 2, microcode: 71, fmc: 0 })
  t.same(r.currentVersion, { major: 1, minor: 55, build: 61 })
  t.equal(r.launchMitVector, 0n)
  t.equal(hex(r.chipId), '3b42092f69c656d3' + '00'.repeat(56), 'Turin: an 8-byte CHIP_ID')
  t.same(unknownFields(r), [])
  t.ok(serializeReport(toFields(r)).equals(TURIN))
})

t.test('both verify end to end: signature, VCEK -> ASK -> ARK (pinned), TCB and chip binding', async (t) => {
  for (const [name, bytes, g] of [['Genoa', GENOA, 'genoa'], ['Turin', TURIN, 'turin']] as const) {
    const chain = chainOf(g)
    const verified = verifyAmdChain(chain, { now: NOW })
    t.equal(verified.generation, name, `${name}: chain`)
    const out = verifyReport(bytes, chain, { now: NOW })
    t.equal(out.report.generation, name, `${name}: report`)
    t.equal(out.chain.signingKey, 'vcek')
    t.ok(out.report.raw.equals(bytes))
  }
})

t.test('negative: a flipped signed byte fails the signature, decoding still works', async (t) => {
  const chain = chainOf('turin')
  // PLATFORM_INFO bit 3, POLICY bit 26 (reserved), MEASUREMENT, a reserved signed byte, the last signed byte.
  for (const [offset, mask] of [[0x040, 0x08], [0x00b, 0x04], [0x090, 0x01], [0x04c, 0x01], [0x190, 0x80], [SIGNED_SIZE - 1, 0x01]] as const) {
    const bytes = Buffer.from(TURIN)
    bytes[offset] = (bytes[offset] ?? 0) ^ mask
    t.ok(parseReport(bytes), `byte 0x${offset.toString(16)} ^ 0x${mask.toString(16)} decodes`)
    t.throws(() => verifyReport(bytes, chain, { now: NOW }),
      { name: 'ReportUnverified', code: 'ERR_SNP_REPORT_UNVERIFIED', details: { check: 'signature' }, message: 'report signature does not verify under the VCEK' },
      `byte 0x${offset.toString(16)} ^ 0x${mask.toString(16)} does not verify`)
  }
  t.throws(() => verifyReport(TURIN, chainOf('genoa'), { now: NOW }), ReportUnverified, 'the Genoa VCEK did not sign the Turin report')
})

t.test('negative: wrong size and unknown version are fatal before anything is verified', async (t) => {
  const chain = chainOf('genoa')
  for (const bytes of [GENOA.subarray(0, 1183), Buffer.concat([GENOA, Buffer.alloc(1)])]) {
    t.throws(() => verifyReport(bytes, chain, { now: NOW }), { name: 'ReportInvalid', code: 'ERR_SNP_REPORT_INVALID', message: /^report size 118[35], want 1184/ })
  }
  const v6 = Buffer.from(GENOA)
  v6.writeUInt32LE(6, 0)
  t.throws(() => parseReport(v6), ReportInvalid)
  t.throws(() => verifyReport(v6, chain, { now: NOW }), { code: 'ERR_SNP_REPORT_INVALID', message: /^report version 6, want 2, 3, 4 or 5: the layout of version 6 is unknown/ })
  const sigPad = Buffer.from(GENOA)
  sigPad[0x49f] = 1
  t.throws(() => verifyReport(sigPad, chain, { now: NOW }), { code: 'ERR_SNP_REPORT_INVALID', message: /^report reserved bytes 0x330\.\.0x4A0 has 0x01 at 0x49F/ })
  t.throws(() => verifyReport(GENOA, chain, { now: new Date('2025-08-01T00:00:00Z') }), { code: 'ERR_CERT_CHAIN_INVALID', details: { check: 'validity' } },
    'the VCEK did not exist yet')
})
