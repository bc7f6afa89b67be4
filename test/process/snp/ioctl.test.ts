// The ioctl QuoteProvider end to end: TypeScript -> addon -> ioctl -> the LD_PRELOAD driver
// stand-in (test/shim), in a child Node process because LD_PRELOAD only applies at start-up.
// (The provider's own policy against an injected binding: test/unit/snp/ioctl.test.ts.)
import t, { type Test } from 'tap'
import { generateKeyPairSync, randomBytes, verify } from 'node:crypto'
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { runChild } from '../../helpers/child-process.ts'
import { addonPath, buildShim } from '../../helpers/shim.ts'
import { repoRoot } from '../../helpers/vectors.ts'

const addonBuilt = existsSync(addonPath)
const shim = buildShim()
const skip = !addonBuilt ? `${addonPath} is missing: run npm run build:native` : shim.ok ? false : shim.skip

interface Outcome {
  ok: boolean
  report?: string
  backend?: string
  simulated?: boolean
  code?: string
  message?: string
  details?: Record<string, unknown>
}

const CHILD = `
const [, , modulePath, planJson] = process.argv
const { createIoctlProvider } = await import(modulePath)
const plan = JSON.parse(planJson)
const provider = createIoctlProvider({ device: plan.device, retry: plan.retry })
const outcome = (p) => p.then(
  (q) => ({ ok: true, backend: q.backend, simulated: provider.simulated, report: q.report.toString('hex') }),
  (err) => ({ ok: false, code: err.code, message: err.message, details: err.details }))
const results = []
for (const step of plan.steps) {
  results.push(await Promise.all(step.map((c) => outcome(provider.getReport(Buffer.from(c.reportData, 'hex'), c.vmpl)))))
}
process.stdout.write(JSON.stringify(results))
`

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' })

interface Run { steps: Outcome[][], counts: { calls: number, maxConcurrent: number } }

async function runPlan (
  t: Test,
  plan: { device: 'sev-guest' | 'sev', steps: Array<Array<{ reportData: Buffer, vmpl?: number }>>, retry?: { attempts: number, baseDelayMs: number } },
  env: Record<string, string>
): Promise<Run> {
  if (!shim.ok) throw new Error('shim not built')
  const script = join(shim.dir, 'child.mjs')
  writeFileSync(script, CHILD)
  const keyFile = join(shim.dir, 'vcek.pem')
  writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }))
  const countFile = join(shim.dir, `count-${process.pid}-${Math.random().toString(16).slice(2)}.json`)
  const json = JSON.stringify({
    device: plan.device,
    retry: plan.retry ?? { attempts: 5, baseDelayMs: 1 },
    steps: plan.steps.map((step) => step.map((c) => ({ reportData: c.reportData.toString('hex'), vmpl: c.vmpl })))
  })
  const moduleUrl = pathToFileURL(join(repoRoot, 'src', 'snp', 'ioctl.ts')).href
  const r = await runChild(t, process.execPath, [script, moduleUrl, json], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      LD_PRELOAD: shim.shim,
      SKR_SHIM_VCEK_KEY: keyFile,
      SKR_SHIM_COUNT_FILE: countFile,
      ...env
    }
  })
  if (r.status !== 0) throw new Error(`child exited ${String(r.status)} ${String(r.signal)}: ${r.stderr}`)
  const counts = existsSync(countFile)
    ? JSON.parse(readFileSync(countFile, 'utf8')) as Run['counts']
    : { calls: 0, maxConcurrent: 0 }
  rmSync(countFile, { force: true })
  return { steps: JSON.parse(r.stdout) as Outcome[][], counts }
}

function first (run: Run, step = 0): Outcome {
  const o = run.steps[step]?.[0]
  if (o === undefined) throw new Error(`no outcome for step ${step}`)
  return o
}

// SNP ABI: signature over bytes 0..0x29F; R and S little-endian in 72-byte fields, low 48 bytes used.
function signatureVerifies (report: Buffer): boolean {
  const be = (off: number): Buffer => Buffer.from(report.subarray(off, off + 48)).reverse()
  return verify('sha384', report.subarray(0, 0x2A0), { key: publicKey, dsaEncoding: 'ieee-p1363' },
    Buffer.concat([be(0x2A0), be(0x2E8)]))
}

t.test('with the LD_PRELOAD driver stand-in', { skip }, async (t) => {
  t.test('/dev/sev-guest: a signed v3 report echoing REPORT_DATA and VMPL', async (t) => {
    const reportData = randomBytes(64)
    const run = await runPlan(t, { device: 'sev-guest', steps: [[{ reportData, vmpl: 2 }]] }, {})
    const o = first(run)
    t.equal(o.ok, true, o.message ?? '')
    t.equal(o.backend, 'sev-guest')
    t.equal(o.simulated, false)
    const report = Buffer.from(o.report ?? '', 'hex')
    t.equal(report.length, 0x4A0)
    t.equal(report.readUInt32LE(0), 3, 'version')
    t.equal(report.readUInt32LE(0x30), 2, 'VMPL echoed')
    t.same(report.subarray(0x50, 0x90), reportData, 'REPORT_DATA echoed')
    t.equal(signatureVerifies(report), true, 'signature verifies')
    const tampered = Buffer.from(report)
    tampered[0x50] = (tampered[0x50] ?? 0) ^ 1
    t.equal(signatureVerifies(tampered), false, 'a changed byte breaks the signature')
    t.same(run.counts, { calls: 1, maxConcurrent: 1 })
  })

  t.test('legacy /dev/sev: the 40-byte request and 1280-byte response, v2 report', async (t) => {
    const reportData = randomBytes(64)
    const run = await runPlan(t, { device: 'sev', steps: [[{ reportData }]] }, { SKR_SHIM_REPORT_VERSION: '2' })
    const o = first(run)
    t.equal(o.ok, true, o.message ?? '')
    t.equal(o.backend, 'sev')
    const report = Buffer.from(o.report ?? '', 'hex')
    t.equal(report.length, 0x4A0)
    t.equal(report.readUInt32LE(0), 2, 'version')
    t.equal(report.readUInt32LE(0x30), 0, 'default VMPL 0')
    t.same(report.subarray(0x50, 0x90), reportData)
    t.equal(signatureVerifies(report), true)
  })

  for (const device of ['sev-guest', 'sev'] as const) {
    t.test(`${device}: EIO is fatal, never retried, and later calls fail fast`, async (t) => {
      const call = { reportData: randomBytes(64) }
      const run = await runPlan(t, { device, steps: [[call], [call]] }, { SKR_SHIM_MODE: 'eio' })
      const o = first(run)
      t.equal(o.ok, false)
      t.equal(o.code, 'ERR_SNP_FIRMWARE')
      t.match(o.message, /failed with EIO.*firmware error 0x16 \(invalid parameters.*VMPCK/)
      t.match(o.details, { errno: 5, code: 'EIO', syscall: 'ioctl', fwError: 0x16, vmmError: 0, vmpckDisabled: true, attempts: 1 })
      t.same(first(run, 1), o, 'the second call gets the same error')
      t.equal(run.counts.calls, 1, 'and does not reach the device')
    })
  }

  t.test('EAGAIN twice, then success: three ioctls', async (t) => {
    const run = await runPlan(t, { device: 'sev-guest', steps: [[{ reportData: randomBytes(64) }]] }, { SKR_SHIM_MODE: 'eagain:2' })
    t.equal(first(run).ok, true, first(run).message ?? '')
    t.equal(run.counts.calls, 3)
  })

  t.test('EAGAIN beyond the retry budget: ERR_SNP_FIRMWARE after exactly `attempts` ioctls', async (t) => {
    const run = await runPlan(t, { device: 'sev-guest', retry: { attempts: 3, baseDelayMs: 1 }, steps: [[{ reportData: randomBytes(64) }]] },
      { SKR_SHIM_MODE: 'eagain:10' })
    const o = first(run)
    t.equal(o.code, 'ERR_SNP_FIRMWARE')
    t.match(o.details, { code: 'EAGAIN', attempts: 3, vmmError: 2 })
    t.equal(run.counts.calls, 3)
  })

  t.test('ioctl success with firmware status 0x16', async (t) => {
    const o = first(await runPlan(t, { device: 'sev-guest', steps: [[{ reportData: randomBytes(64) }]] }, { SKR_SHIM_MODE: 'bad-status' }))
    t.equal(o.code, 'ERR_SNP_FIRMWARE')
    t.match(o.message, /status 0x16 \(invalid parameters, e\.g\. a VMPL below the guest's\), want 0/)
    t.match(o.details, { status: 0x16 })
  })

  t.test('report_size below 0x4A0', async (t) => {
    const o = first(await runPlan(t, { device: 'sev-guest', steps: [[{ reportData: randomBytes(64) }]] }, { SKR_SHIM_MODE: 'bad-size' }))
    t.equal(o.code, 'ERR_SNP_REPORT_INVALID')
    t.equal(o.message, 'MSG_REPORT_RSP report_size is 0x400, want 0x4a0..0xf80')
    t.match(o.details, { reportSize: 0x400 })
  })

  t.test('permission denied on open', async (t) => {
    const o = first(await runPlan(t, { device: 'sev-guest', steps: [[{ reportData: randomBytes(64) }]] }, { SKR_SHIM_MODE: 'eacces' }))
    t.equal(o.code, 'ERR_SNP_DEVICE_UNAVAILABLE')
    t.match(o.message, /cannot open \/dev\/sev-guest \(EACCES, errno 13\): is the sev-guest module loaded/)
    t.match(o.details, { syscall: 'open', code: 'EACCES' })
  })

  t.test('10 concurrent calls never overlap in the device, each gets its own report', async (t) => {
    const calls = Array.from({ length: 10 }, (_, i) => ({ reportData: randomBytes(64), vmpl: i % 4 }))
    const run = await runPlan(t, { device: 'sev-guest', steps: [calls] }, {})
    t.same(run.counts, { calls: 10, maxConcurrent: 1 })
    run.steps[0]?.forEach((o, i) => {
      const report = Buffer.from(o.report ?? '', 'hex')
      t.same(report.subarray(0x50, 0x90), calls[i]?.reportData, `call ${i} REPORT_DATA`)
      t.equal(report.readUInt32LE(0x30), i % 4, `call ${i} VMPL`)
    })
  })

  t.test('the driver stand-in matches the kernel on paths the addon never takes', async (t) => {
    if (!shim.ok) throw new Error('unreachable')
    const r = await runChild(t, shim.probe, [], { env: { LD_PRELOAD: shim.shim } })
    t.equal(r.status, 0, r.stderr)
    const out = JSON.parse(r.stdout) as Record<string, unknown>
    t.same(out.msgVersion0, { rc: -1, errno: 22, exitinfo2: '0xdead' }, 'msg_version 0: EINVAL, struct not copied back')
    t.same(out.nullRequest, { rc: -1, errno: 22, exitinfo2: '0xff' }, 'NULL req_data: EINVAL, exitinfo2 0xff copied back')
    t.same(out.derivedKey, { rc: -1, errno: 25, exitinfo2: '0xff' }, 'an ioctl the stand-in does not implement: ENOTTY')
    t.same(out.legacyNumberOnGuest, { rc: -1, errno: 25, exitinfo2: '0xff' }, 'the 5.15 number on /dev/sev-guest: ENOTTY')
    t.same(out.ok, { rc: 0, errno: 0, exitinfo2: '0xdead' }, 'success does not copy exitinfo2 back')
    t.equal(out.reportSize, 0x4A0)
  })
})
