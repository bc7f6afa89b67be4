import t from 'tap'
import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { run } from '../../../src/cli/report.ts'
import type { CommandIo } from '../../../src/cli/operator-kit.ts'
import { needsVectors, vector, vectorsDir } from '../../helpers/vectors.ts'

function capture (): { io: CommandIo, out: () => string, err: () => string } {
  const out: string[] = []
  const err: string[] = []
  return { io: { stdout: (s) => { out.push(s) }, stderr: (s) => { err.push(s) } }, out: () => out.join(''), err: () => err.join('') }
}

// A fresh filesystem root per run, so security-context discovery never sees this machine's `/`.
async function report (argv: string[], env: Record<string, string> = {}, root = mkdtempSync(join(tmpdir(), 'skr-report-root-'))): Promise<{ code: number, out: string, err: string }> {
  const c = capture()
  const code = await run(argv, env, c.io, { root })
  return { code, out: c.out(), err: c.err() }
}

const ACI = join(vectorsDir, 'azure-aci-milan', 'snp_report.bin')
// Genuine Genoa/Turin vectors committed with provenance: test/fixtures/vectors/README.md.
const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'fixtures', 'vectors')
const SIMULATED = { SKR_SIMULATED_CACHE_DIR: join(tmpdir(), 'skr-test-emulated-chain') }

t.test('--help', async t => {
  const r = await report(['--help'])
  t.equal(r.code, 0)
  t.match(r.out, /usage: skr report/)
  t.match(r.out, /--runtime-data/)
})

t.test('a report file as a table, JSON and hex', needsVectors(), async t => {
  const table = await report(['--file', ACI])
  t.equal(table.code, 0)
  t.equal(table.err, '')
  t.match(table.out, /^version\s+2$/m)
  t.match(table.out, /^host data\s+[0-9a-f]{64}$/m)
  t.match(table.out, /^reported tcb\s+7308000000000003 \(generation unknown\)$/m)

  const json = await report(['--file', ACI, '--json', '--generation', 'Milan'])
  t.equal(json.code, 0)
  const view = JSON.parse(json.out) as { policy: { raw: string }, tcb: { reported: { parts: { snp: number } } }, sha256: string, generation: string }
  t.equal(view.policy.raw, '0x000000000003001f')
  t.equal(view.tcb.reported.parts.snp, 8)
  t.equal(view.generation, 'Milan')
  t.equal(view.sha256, createHash('sha256').update(vector('azure-aci-milan', 'snp_report.bin')).digest('hex'))

  const hex = await report(['-file', join(vectorsDir, 'virtee-milan', 'report_milan.hex'), '-hex'])
  t.equal(hex.code, 0)
  t.equal(hex.out.trim(), vector('virtee-milan', 'report_milan.hex').toString('latin1').trim().toLowerCase())
})

t.test('usage errors exit 2 with one line on stderr', async t => {
  for (const [argv, message] of [
    [['--bogus'], /unknown flag --bogus/],
    [['extra'], /unexpected argument/],
    [['--file', '/nonexistent/report.bin'], /--file: cannot read \/nonexistent\/report.bin \(ENOENT\)/],
    [['--file', ACI, '--runtime-data', 'AA=='], /apply to the device only/],
    [['--file', ACI, '--hex', '--json'], /not both/],
    [['--runtime-data', '%%%'], /must be base64/],
    [['--file', '/nonexistent/report.bin', '--generation', 'Rome'], /Milan, Genoa or Turin/],
    [['--attestation', 'magic'], /SKR_ATTESTATION must be/]
  ] as const) {
    const r = await report([...argv])
    t.equal(r.code, 2, argv.join(' '))
    t.match(r.err, /^skr report: ERR_CONFIG_INVALID: /)
    t.match(r.err, message)
    t.equal(r.err.trim().split('\n').length, 1, 'one line')
    t.equal(r.out, '')
  }
})

t.test('a file that is not a report exits 1', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'skr-report-'))
  writeFileSync(join(dir, 'short.bin'), Buffer.alloc(100))
  const r = await report(['--file', join(dir, 'short.bin')])
  t.equal(r.code, 1)
  t.match(r.err, /^skr report: ERR_SNP_REPORT_INVALID: input is 100 bytes/)
  const v7 = Buffer.alloc(1184)
  v7.writeUInt32LE(7, 0)
  writeFileSync(join(dir, 'v7.bin'), v7)
  const bad = await report(['--file', join(dir, 'v7.bin')])
  t.equal(bad.code, 1)
  t.match(bad.err, /^skr report: ERR_SNP_REPORT_INVALID: report version 7, want 2, 3, 4 or 5: the layout of version 7 is unknown/)
})

t.test('reserved bits are shown, not refused (issue 12)', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'skr-report-'))
  const zero = Buffer.alloc(1184)
  zero.writeUInt32LE(2, 0)
  writeFileSync(join(dir, 'zero.bin'), zero)
  const r = await report(['--file', join(dir, 'zero.bin')])
  t.equal(r.code, 0, r.err)
  t.match(r.out, /^ {2}unknown bits\s+0x20000$/m, 'POLICY bit 17 (reserved as 1) is clear')
  t.match(r.out, /^unknown fields\s+POLICY reserved bits 0x20000; SIGNATURE_ALGO 0 \(only 1, ECDSA P-384 with SHA-384, is defined\)$/m)
})

t.test('the genuine Turin report whose PLATFORM_INFO 0x67 used to be refused', async t => {
  const turin = join(FIXTURES, 'project-oak', 'turin_oc_report.bin')
  const table = await report(['--file', turin])
  t.equal(table.code, 0, table.err)
  t.equal(table.err, '')
  t.match(table.out, /^platform info\s+0x0000000000000067$/m)
  t.match(table.out, /^ {2}iommu write safe \(bit 6\)\s+yes$/m)
  t.match(table.out, /^generation\s+Turin$/m)
  t.match(table.out, /^reported tcb\s+4700000002000100 \(fmc 0, bl 1, tee 0, snp 2, ucode 71\)$/m)
  t.match(table.out, /^unknown fields\s+none$/m)
  const json = await report(['--file', turin, '--json'])
  t.equal(json.code, 0)
  t.match(JSON.parse(json.out), { version: 5, platformInfo: { raw: '0x0000000000000067', iommuWriteSafe: true, unknownBits: '0x0' }, unknown: [] })
  const genoa = await report(['--file', join(FIXTURES, 'project-oak', 'genoa_oc_report.bin'), '--json'])
  t.equal(genoa.code, 0)
  t.match(JSON.parse(genoa.out), { version: 5, generation: 'Genoa', platformInfo: { raw: '0x0000000000000025' }, launchMitVector: '0x0000000000000001', unknown: [] })
})

t.test('from the simulated device: REPORT_DATA binds the runtime data, HOST_DATA the security policy', async t => {
  const root = mkdtempSync(join(tmpdir(), 'skr-report-root-'))
  mkdirSync(join(root, 'security-context-test'))
  const policy = Buffer.from('package policy\n')
  writeFileSync(join(root, 'security-context-test', 'security-policy-base64'), policy.toString('base64'))
  const runtime = Buffer.from('{"keys":[]}')
  const r = await report(['--attestation', 'simulated', '--runtime-data', runtime.toString('base64'), '--json'], SIMULATED, root)
  t.equal(r.code, 0, r.err)
  const view = JSON.parse(r.out) as { version: number, reportData: string, hostData: string, generation: string, familyId: string }
  t.equal(view.reportData, createHash('sha256').update(runtime).digest('hex') + '00'.repeat(32))
  t.equal(view.hostData, createHash('sha256').update(policy).digest('hex'))
  t.equal(view.generation, 'Milan')
  t.equal(Buffer.from(view.familyId, 'hex').toString('latin1'), 'skr-simulated-fm')

  const empty = await report(['--hex'], { ...SIMULATED, SKR_ATTESTATION: 'simulated' })
  t.equal(empty.code, 0, empty.err)
  const raw = Buffer.from(empty.out.trim(), 'hex')
  t.equal(raw.length, 1184)
  t.same(raw.subarray(0x50, 0x70), createHash('sha256').update(Buffer.alloc(0)).digest(), 'default runtime data is empty')
})

t.test('no attestation device: exit 1 with ERR_SNP_DEVICE_UNAVAILABLE', async t => {
  const r = await report(['--attestation', 'tsm'], { SKR_TSM_ROOT: join(tmpdir(), 'skr-no-such-tsm') })
  t.equal(r.code, 1)
  t.match(r.err, /^skr report: ERR_SNP_DEVICE_UNAVAILABLE: /)
})

t.test('a report file with an endorsement file (issue 15): table and JSON', needsVectors(), async t => {
  const endorsement = join(FIXTURES, 'scitt-ccf-ledger', 'uvm_0.2.10.cose')
  const table = await report(['--file', ACI, '--uvm-endorsement', endorsement])
  t.equal(table.code, 0, table.err)
  t.match(table.out, /^uvm endorsement\s+cwt-claims layout; verified$/m)
  t.match(table.out, /^ {2}signer\s+ContainerPlat <- Microsoft SCD Products RSA CA <- Microsoft Supply Chain RSA Root CA 2022$/m)
  t.match(table.out, /^ {2}launch measurement\s+4904167a[0-9a-f]+ \(differs from MEASUREMENT\)$/m)
  t.match(table.out, /^ {2}svn\s+104 \(report GUEST_SVN 2\)$/m)
  t.match(table.out, /^ {2}receipt\s+verified: esrp-cts-db\.confidential-ledger\.azure\.com tx 458\.12440$/m)
  const json = await report(['--file', ACI, '--uvm-endorsement', join(vectorsDir, 'azure-aci-milan', 'body.uvm_reference_info.bin'), '--json'])
  const view = JSON.parse(json.out) as { uvmEndorsement: Record<string, unknown> }
  t.match(view.uvmEndorsement, { layout: 'json-payload', verification: 'verified', measurementMatchesReport: true, guestSvn: '22', reportGuestSvn: 2, receipt: { status: 'absent' } })
})
