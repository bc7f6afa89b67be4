import t from 'tap'
import { reportDataFor } from '../../../src/snp/report-data.ts'
import { parseReport } from '../../../src/snp/abi.ts'
import { needsVectors, vector } from '../../helpers/vectors.ts'

// The runtime data of csc pkg/attest/attest_test.go: the JSON {"akey" : "avalue"}.
const RUNTIME_JSON = Buffer.from('ewogICAiYWtleSIgOiAiYXZhbHVlIgp9Cg==', 'base64')
const RUNTIME_SHA256 = 'ee986ff2bd7e3f22e29f640918627816cf8e23b9d9c312767168eab68c861c71'

t.test('sha256 of the runtime data, then 32 zero bytes', async (t) => {
  const rd = reportDataFor(RUNTIME_JSON)
  t.equal(rd.length, 64)
  t.equal(rd.toString('hex'), RUNTIME_SHA256 + '00'.repeat(32))
  t.equal(reportDataFor(new Uint8Array(0)).toString('hex'),
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' + '00'.repeat(32), 'empty runtime data')
  t.equal(reportDataFor(new Uint8Array(RUNTIME_JSON)).toString('hex'), rd.toString('hex'), 'plain Uint8Array')
})

t.test('each call returns a fresh buffer', async (t) => {
  const a = reportDataFor(RUNTIME_JSON)
  a.fill(0)
  t.equal(reportDataFor(RUNTIME_JSON).subarray(0, 32).toString('hex'), RUNTIME_SHA256)
})

t.test('misuse is a TypeError', async (t) => {
  t.throws(() => reportDataFor('{"akey" : "avalue"}' as unknown as Uint8Array), { name: 'TypeError', message: 'runtimeData must be a Uint8Array' })
  t.throws(() => reportDataFor(undefined as unknown as Uint8Array), { name: 'TypeError' })
})

t.test('matches REPORT_DATA of the genuine Azure report', needsVectors(), async (t) => {
  const report = parseReport(vector('azure-aci-milan', 'snp_report.bin'))
  t.ok(reportDataFor(RUNTIME_JSON).equals(report.reportData))
  t.notOk(reportDataFor(Buffer.from('{"akey" : "avalue"}')).equals(report.reportData), 'a different runtime data does not match')
})
