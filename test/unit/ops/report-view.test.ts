import t from 'tap'
import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ReportInvalid } from '../../../src/errors.ts'
import { decodeReportInput, formatReportTable, reportRows, reportView } from '../../../src/ops/report-view.ts'
import { parseReport } from '../../../src/snp/abi.ts'
import { needsVectors, vector } from '../../helpers/vectors.ts'

// Genuine Turin v5 report committed with provenance: test/fixtures/vectors/README.md.
const TURIN = readFileSync(join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'fixtures', 'vectors'), 'project-oak', 'turin_oc_report.bin'))

t.test('decodeReportInput accepts raw, hex (with whitespace) and base64', needsVectors(), async t => {
  const raw = vector('azure-aci-milan', 'snp_report.bin')
  t.same(decodeReportInput(raw), raw, 'raw')
  const hex = raw.toString('hex')
  t.same(decodeReportInput(Buffer.from(hex)), raw, 'hex')
  t.same(decodeReportInput(Buffer.from(hex.toUpperCase().replace(/(.{64})/g, '$1\n') + '\n')), raw, 'wrapped upper-case hex')
  t.same(decodeReportInput(Buffer.from(raw.toString('base64') + '\n')), raw, 'base64')
  t.same(decodeReportInput(Buffer.from(raw.toString('base64url'))), raw, 'base64url')
  t.same(decodeReportInput(vector('virtee-milan', 'report_milan.hex')).length, 1184, 'virtee hex file')
})

t.test('decodeReportInput refuses anything else, saying what it found', async t => {
  t.throws(() => decodeReportInput(Buffer.alloc(1000)), { code: 'ERR_SNP_REPORT_INVALID', message: /input is 1000 bytes/ })
  t.throws(() => decodeReportInput(Buffer.from('zz'.repeat(1184))), ReportInvalid)
  t.throws(() => decodeReportInput(Buffer.from(Buffer.alloc(100).toString('base64'))), ReportInvalid)
})

t.test('reportView decodes every field of the genuine ACI report', needsVectors(), async t => {
  const view = reportView(parseReport(vector('azure-aci-milan', 'snp_report.bin'), { generation: 'Milan' }))
  t.equal(view.version, 2)
  t.equal(view.policy.raw, '0x000000000003001f')
  t.equal(view.policy.debug, false)
  t.equal(view.policy.smt, true)
  t.equal(view.policy.abiMinor, 31)
  t.equal(view.vmpl, 0)
  t.equal(view.signatureAlgoName, 'ECDSA P-384 with SHA-384')
  t.equal(view.signer.signingKey, 'vcek')
  t.equal(view.generation, 'Milan')
  t.equal(view.cpuid, null)
  t.same(view.tcb.reported, { raw: '7308000000000003', parts: { bootloader: 3, tee: 0, snp: 8, microcode: 115, fmc: null } })
  t.equal(view.hostData.length, 64)
  t.equal(view.measurement.length, 96)
  t.equal(view.chipId.length, 128)
  t.equal(view.reportIdMa, 'ff'.repeat(32))
  t.equal(view.launchMitVector, null)
  t.equal(view.signature.r.length, 96)
  t.equal(view.sha256, '8aa044299042322a6b8027c1445cbdd691c9312db75c2da1ad7d95d328750925')
  // JSON-able as is: no bigint anywhere.
  t.doesNotThrow(() => JSON.stringify(view))
})

t.test('unknown generation: TCB parts are null and the table says so', needsVectors(), async t => {
  const view = reportView(parseReport(vector('azure-aci-milan', 'snp_report.bin')))
  t.equal(view.tcb.current.parts, null)
  const table = formatReportTable(view)
  t.match(table, /reported tcb\s+7308000000000003 \(generation unknown\)/)
  t.match(table, /debug allowed\s+no/)
  t.match(table, /cpuid\s+n\/a \(report version 2\)/)
  t.equal(reportRows(view).length, table.trim().split('\n').length, 'one line per row')
})

t.test('the genuine Turin report (PLATFORM_INFO 0x67): every bit named, nothing unknown', async t => {
  const view = reportView(parseReport(TURIN))
  t.same(view.platformInfo, {
    raw: '0x0000000000000067', smtEnabled: true, tsmeEnabled: true, eccEnabled: true, raplDisabled: false,
    ciphertextHidingEnabled: false, aliasCheckComplete: true, iommuWriteSafe: true, tioEnabled: false, unknownBits: '0x0'
  })
  t.equal(view.policy.unknownBits, '0x0')
  t.same(view.signer, { raw: '0x00000000', authorKeyEn: false, maskChipKey: false, signingKey: 'vcek', signingKeyValue: 0, unknownBits: '0x0' })
  t.same(view.unknownBytes, [])
  t.same(view.unknown, [])
  t.same(view.tcb.reported, { raw: '4700000002000100', parts: { bootloader: 1, tee: 0, snp: 2, microcode: 71, fmc: 0 } })
  t.equal(view.launchMitVector, '0x0000000000000000')
  const table = formatReportTable(view)
  t.match(table, /^platform info\s+0x0000000000000067$/m)
  t.match(table, /^ {2}iommu write safe \(bit 6\)\s+yes$/m)
  t.match(table, /^ {2}unknown bits\s+none$/m)
  t.match(table, /^unknown fields\s+none$/m)
  t.doesNotThrow(() => JSON.stringify(view))
})

t.test('reserved bits and bytes are shown, in JSON and in the table', async t => {
  const bytes = Buffer.from(TURIN)
  bytes.writeBigUInt64LE(0x8000000000030000n, 0x008) // POLICY bit 63
  bytes.writeBigUInt64LE(0x10067n, 0x040) // PLATFORM_INFO bit 16
  bytes.writeUInt32LE(0x40 | (5 << 2), 0x048) // signer bit 6, SIGNING_KEY 5
  bytes[0x1eb] = 0xab
  const view = reportView(parseReport(bytes))
  t.equal(view.policy.unknownBits, '0x8000000000000000')
  t.equal(view.platformInfo.unknownBits, '0x10000')
  t.match(view.signer, { signingKey: 'reserved', signingKeyValue: 5, unknownBits: '0x40' })
  t.same(view.unknownBytes, [{ offset: '0x1EB', end: '0x1EC', hex: 'ab', signed: true }])
  t.same(view.unknown, [
    'POLICY reserved bits 0x8000000000000000',
    'PLATFORM_INFO reserved bits 0x10000',
    'signer word (0x048) reserved bits 0x40',
    'SIGNING_KEY 5 (reserved)',
    'reserved bytes 0x1EB..0x1EC: 1 non-zero, first 0xab at 0x1EB'
  ])
  const table = formatReportTable(view)
  t.match(table, /^ {2}unknown bits\s+0x8000000000000000$/m)
  t.match(table, /^ {2}unknown bits\s+0x10000$/m)
  t.match(table, /^signer\s+0x00000054 \(SIGNING_KEY 5, reserved, author key no, mask chip key no, reserved bits 0x40\)$/m)
  t.match(table, /^unknown fields\s+POLICY reserved bits 0x8000000000000000; PLATFORM_INFO/m)
  t.equal(reportRows(view).length, table.trim().split('\n').length, 'one line per row')
  t.doesNotThrow(() => JSON.stringify(view))
})
