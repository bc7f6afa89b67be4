import t from 'tap'
import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
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
  const reserved = Buffer.alloc(1184)
  reserved.writeUInt32LE(2, 0)
  writeFileSync(join(dir, 'bad.bin'), reserved)
  const bad = await report(['--file', join(dir, 'bad.bin')])
  t.equal(bad.code, 1)
  t.match(bad.err, /ERR_SNP_REPORT_INVALID: report policy/)
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
