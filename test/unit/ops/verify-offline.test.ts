import t from 'tap'
import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { AMD_ARK_FINGERPRINTS } from '../../../src/certs/amd-roots.ts'
import { chainFromFiles } from '../../../src/ops/chain-input.ts'
import { verifyOffline, type OfflineVerifyOptions } from '../../../src/ops/verify-offline.ts'
import { parseReport } from '../../../src/snp/abi.ts'
import { needsVectors, vector } from '../../helpers/vectors.ts'

const AMD = Object.values(AMD_ARK_FINGERPRINTS)
const opts = (extra: Partial<OfflineVerifyOptions> = {}): OfflineVerifyOptions => ({ trustedArkFingerprints: AMD, now: new Date('2024-06-01T00:00:00Z'), allowDebug: false, ...extra })
const statusOf = (checks: Array<{ name: string, status: string }>): Record<string, string> => Object.fromEntries(checks.map((c) => [c.name, c.status]))
// Genuine Genoa/Turin vectors committed with provenance: test/fixtures/vectors/README.md.
const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'fixtures', 'vectors')
const fixture = (...parts: string[]): Buffer => readFileSync(join(FIXTURES, ...parts))
const OAK_NOW = new Date('2025-09-01T00:00:00Z')
function oak (g: 'genoa' | 'turin'): { report: Buffer, chain: ReturnType<typeof chainFromFiles>['chain'] } {
  const askArk = Buffer.concat([fixture('virtee-sev', `${g}_ask.pem`), fixture('virtee-sev', `${g}_ark.pem`)])
  return { report: fixture('project-oak', `${g}_oc_report.bin`), chain: chainFromFiles(askArk, fixture('project-oak', `${g}_oc_vcek.der`)).chain }
}

t.test('chainFromFiles reads every form', needsVectors(), async t => {
  const pem = chainFromFiles(vector('azure-aci-milan', 'uvm_host_amd_certificate.pem'))
  t.equal(pem.form, 'pem-bundle')
  t.equal(pem.tcbm, null)
  const thim = chainFromFiles(vector('azure-aci-milan', 'uvm_host_amd_certificate.json'))
  t.equal(thim.form, 'thim-json')
  t.equal(thim.tcbm, 0x7308000000000003n)
  t.equal(thim.chain.vcek.fingerprint256, pem.chain.vcek.fingerprint256)
  t.equal(chainFromFiles(vector('azure-aci-milan', 'security-context-other-chip', 'host-amd-cert-base64')).form, 'thim-base64')
  const der = chainFromFiles(vector('virtee-milan', 'cert_chain_milan'), vector('virtee-milan', 'vcek_milan.der'))
  t.equal(der.form, 'vcek-and-chain')
  const vcekPem = Buffer.from(`-----BEGIN CERTIFICATE-----\n${vector('virtee-milan', 'vcek_milan.der').toString('base64')}\n-----END CERTIFICATE-----\n`)
  t.equal(chainFromFiles(vector('virtee-milan', 'cert_chain_milan'), vcekPem).chain.vcek.fingerprint256, der.chain.vcek.fingerprint256, 'VCEK as PEM')
})

t.test('chainFromFiles refuses what it cannot use', needsVectors(), async t => {
  const askArk = vector('virtee-milan', 'cert_chain_milan')
  t.throws(() => chainFromFiles(askArk), { code: 'ERR_CERT_CHAIN_INVALID', message: /give the VCEK with --vcek/ })
  t.throws(() => chainFromFiles(Buffer.from('hello')), { code: 'ERR_CERT_CHAIN_INVALID', message: /not a PEM bundle/ })
  t.throws(() => chainFromFiles(Buffer.from('{"vcekCert": 1}')), { code: 'ERR_CERT_CHAIN_INVALID', message: /not a THIM document/ })
  t.throws(() => chainFromFiles(Buffer.from('{nope')), { message: /not JSON/ })
  t.throws(() => chainFromFiles(Buffer.from('not pem'), vector('virtee-milan', 'vcek_milan.der')), { message: /ASK and ARK as PEM/ })
  t.throws(() => chainFromFiles(askArk, Buffer.from('garbage')), { message: /neither PEM nor a DER/ })
  t.throws(() => chainFromFiles(askArk, Buffer.concat([vector('virtee-milan', 'vcek_milan.der'), Buffer.from([0])])), { message: /bytes after/ })
  t.throws(() => chainFromFiles(askArk, askArk), { message: /holds 2 certificates, want 1/ })
  t.throws(() => chainFromFiles(Buffer.concat([askArk, askArk])), { message: /holds 4 certificates/ })
})

t.test('the genuine ACI report passes every check, THIM tcbm included', needsVectors(), async t => {
  const { chain, tcbm } = chainFromFiles(vector('azure-aci-milan', 'uvm_host_amd_certificate.json'))
  const report = vector('azure-aci-milan', 'snp_report.bin')
  const parsed = parseReport(report)
  const out = verifyOffline(report, chain, opts({
    tcbm,
    expectHostData: parsed.hostData,
    expectMeasurement: parsed.measurement,
    expectReportData: parsed.reportData.subarray(0, 32)
  }))
  t.ok(out.ok)
  t.same(statusOf(out.checks), { report: 'pass', chain: 'pass', signature: 'pass', tcb: 'pass', 'chip-id': 'pass', 'thim-tcbm': 'pass', 'unknown-fields': 'pass', debug: 'pass', 'host-data': 'pass', measurement: 'pass', 'report-data': 'pass' })
})

t.test('tampered copies and wrong inputs fail the right checks', needsVectors(), async t => {
  const { chain } = chainFromFiles(vector('azure-aci-milan', 'uvm_host_amd_certificate.pem'))
  const report = vector('azure-aci-milan', 'snp_report.bin')
  const flipped = Buffer.from(report)
  flipped[0x90] = (flipped[0x90] ?? 0) ^ 1 // MEASUREMENT
  let out = verifyOffline(flipped, chain, opts())
  t.notOk(out.ok)
  t.equal(statusOf(out.checks).signature, 'fail')
  t.equal(statusOf(out.checks).chain, 'pass')

  const tcb = Buffer.from(report)
  tcb[0x186] = 9 // REPORTED_TCB snp 8 → 9 (and the signature breaks too)
  out = verifyOffline(tcb, chain, opts({ tcbm: 0x7308000000000003n }))
  t.match(statusOf(out.checks), { tcb: 'fail', 'thim-tcbm': 'fail', signature: 'fail' })

  const reserved = Buffer.from(report)
  reserved[0x04c] = 1
  out = verifyOffline(reserved, chain, opts())
  t.match(statusOf(out.checks), { report: 'pass', signature: 'fail', 'unknown-fields': 'warn' }, 'a reserved byte decodes; the signature catches the change')
  t.match(out.checks.find((c) => c.name === 'unknown-fields'), { detail: /^reserved bytes 0x04C\.\.0x050: 1 non-zero, first 0x01 at 0x04C: newer than/ })

  const short = verifyOffline(report.subarray(0, 1000), chain, opts())
  t.same(short.checks.map((c) => c.name), ['report'], 'a wrong size stops at decoding')
  t.equal(short.report, null)

  out = verifyOffline(report, chain, opts({ now: new Date('2051-01-01T00:00:00Z') }))
  t.match(out.checks.find((c) => c.name === 'chain'), { status: 'fail', detail: /valid from/ })
  out = verifyOffline(report, chain, opts({ trustedArkFingerprints: [AMD_ARK_FINGERPRINTS.Genoa] }))
  t.match(out.checks.find((c) => c.name === 'chain'), { status: 'fail', detail: /not one of the 1 trusted/ })

  const other = chainFromFiles(vector('azure-aci-milan', 'security-context-other-chip', 'host-amd-cert-base64'))
  out = verifyOffline(report, other.chain, opts())
  t.match(statusOf(out.checks), { chain: 'pass', signature: 'fail', 'chip-id': 'fail' })

  out = verifyOffline(report, chain, opts({ expectHostData: Buffer.alloc(32), expectMeasurement: Buffer.alloc(48), expectReportData: Buffer.alloc(65) }))
  t.match(statusOf(out.checks), { 'host-data': 'fail', measurement: 'fail', 'report-data': 'fail' })
  t.match(out.checks.find((c) => c.name === 'report-data'), { detail: /65 bytes/ })
})

t.test('debug reports are refused unless allowed (go-sev-guest vector)', needsVectors(), async t => {
  const { chain } = chainFromFiles(vector('gsg-milan-debug', 'milan.testcer'), vector('gsg-milan-debug', 'vcek.testcer'))
  const report = vector('gsg-milan-debug', 'attestation.bin')
  const refused = verifyOffline(report, chain, opts())
  t.notOk(refused.ok)
  t.match(refused.checks.find((c) => c.name === 'debug'), { status: 'fail', detail: /--allow-debug/ })
  const allowed = verifyOffline(report, chain, opts({ allowDebug: true }))
  t.ok(allowed.ok)
  t.match(allowed.checks.find((c) => c.name === 'debug'), { status: 'pass', detail: /accepted/ })
  const vlekChain = chainFromFiles(vector('gsg-milan-debug', 'milanvlek.testcer'), vector('gsg-milan-debug', 'vcek.testcer'))
  const vlek = verifyOffline(report, vlekChain.chain, opts({ allowDebug: true }))
  t.match(vlek.checks.find((c) => c.name === 'chain'), { status: 'fail', detail: /SEV-VLEK/ })
})

t.test('the virtee report verifies with its DER VCEK', needsVectors(), async t => {
  const { chain } = chainFromFiles(vector('virtee-milan', 'cert_chain_milan'), vector('virtee-milan', 'vcek_milan.der'))
  const hex = vector('virtee-milan', 'report_milan.hex').toString('latin1').trim()
  const out = verifyOffline(Buffer.from(hex, 'hex'), chain, opts())
  t.ok(out.ok, JSON.stringify(out.checks.filter((c) => c.status === 'fail')))
})

t.test('genuine Genoa and Turin v5 reports pass every check (the Turin sets PLATFORM_INFO 0x67)', async t => {
  for (const g of ['genoa', 'turin'] as const) {
    const { report, chain } = oak(g)
    const out = verifyOffline(report, chain, opts({ now: OAK_NOW }))
    t.ok(out.ok, `${g}: ${JSON.stringify(out.checks.filter((c) => c.status !== 'pass'))}`)
    t.same(statusOf(out.checks), {
      report: 'pass', chain: 'pass', signature: 'pass', tcb: 'pass', 'chip-id': 'pass', 'unknown-fields': 'pass', debug: 'pass', 'host-data': 'skip', measurement: 'skip', 'report-data': 'skip'
    }, g)
    t.ok(verifyOffline(report, chain, opts({ now: OAK_NOW, refuseUnknown: true })).ok, `${g}: nothing unknown to refuse`)
  }
  const { chain } = oak('turin')
  t.match(verifyOffline(oak('turin').report, chain, opts({ now: OAK_NOW })).checks.find((c) => c.name === 'chip-id'), { detail: 'VCEK hwID equals CHIP_ID (8 bytes)' })
})

t.test('unknown fields: a warning by default, a failure when refused', async t => {
  const { report, chain } = oak('turin')
  const flipped = Buffer.from(report)
  flipped[0x041] = 0x01 // PLATFORM_INFO bit 8: reserved (and the signature no longer verifies)
  const warned = verifyOffline(flipped, chain, opts({ now: OAK_NOW }))
  t.match(warned.checks.find((c) => c.name === 'unknown-fields'), { status: 'warn', detail: /^PLATFORM_INFO reserved bits 0x100: newer than the SNP ABI revision skr decodes; accepted/ })
  t.match(statusOf(warned.checks), { signature: 'fail' })
  const refused = verifyOffline(flipped, chain, opts({ now: OAK_NOW, refuseUnknown: true }))
  t.match(refused.checks.find((c) => c.name === 'unknown-fields'), { status: 'fail', detail: /\(refused: --refuse-unknown\)$/ })
  const reserved = Buffer.from(report)
  reserved.writeUInt32LE(3 << 2, 0x048) // SIGNING_KEY 3
  const out = verifyOffline(reserved, chain, opts({ now: OAK_NOW }))
  t.match(out.checks.find((c) => c.name === 'report'), { status: 'pass', detail: /signed by reserved SIGNING_KEY 3$/ })
  t.match(out.checks.find((c) => c.name === 'signature'), { status: 'fail', detail: /SIGNING_KEY is 3, a reserved value/ })
  t.match(out.checks.find((c) => c.name === 'chip-id'), { status: 'skip' })
  t.notOk(out.checks.some((c) => c.name === 'signer'), 'no VCEK/VLEK mismatch line for an unknown key')
})
