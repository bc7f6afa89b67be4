import t from 'tap'
import { ReportInvalid } from '../../../src/errors.ts'
import { decodeReportInput, formatReportTable, reportRows, reportView } from '../../../src/ops/report-view.ts'
import { parseReport } from '../../../src/snp/abi.ts'
import { needsVectors, vector } from '../../helpers/vectors.ts'

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
