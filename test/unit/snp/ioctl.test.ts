// The ioctl QuoteProvider end to end: TypeScript -> addon -> ioctl -> the LD_PRELOAD driver
// stand-in (test/shim), in a child Node process because LD_PRELOAD only applies at start-up.
// The provider's own policy (queue, retries, mapping) is also tested in-process against an
// injected binding, where every branch can be forced.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { generateKeyPairSync, randomBytes, verify } from 'node:crypto'
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { createIoctlProvider } from '../../../src/snp/ioctl.ts'
import type { NativeBinding } from '../../../src/snp/native.ts'
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

function runChild (
  plan: { device: 'sev-guest' | 'sev', steps: Array<Array<{ reportData: Buffer, vmpl?: number }>>, retry?: { attempts: number, baseDelayMs: number } },
  env: Record<string, string>
): Run {
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
  const r = spawnSync(process.execPath, [script, moduleUrl, json], {
    encoding: 'utf8',
    timeout: 60_000,
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
    const run = runChild({ device: 'sev-guest', steps: [[{ reportData, vmpl: 2 }]] }, {})
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
    const run = runChild({ device: 'sev', steps: [[{ reportData }]] }, { SKR_SHIM_REPORT_VERSION: '2' })
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
      const run = runChild({ device, steps: [[call], [call]] }, { SKR_SHIM_MODE: 'eio' })
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
    const run = runChild({ device: 'sev-guest', steps: [[{ reportData: randomBytes(64) }]] }, { SKR_SHIM_MODE: 'eagain:2' })
    t.equal(first(run).ok, true, first(run).message ?? '')
    t.equal(run.counts.calls, 3)
  })

  t.test('EAGAIN beyond the retry budget: ERR_SNP_FIRMWARE after exactly `attempts` ioctls', async (t) => {
    const run = runChild({ device: 'sev-guest', retry: { attempts: 3, baseDelayMs: 1 }, steps: [[{ reportData: randomBytes(64) }]] },
      { SKR_SHIM_MODE: 'eagain:10' })
    const o = first(run)
    t.equal(o.code, 'ERR_SNP_FIRMWARE')
    t.match(o.details, { code: 'EAGAIN', attempts: 3, vmmError: 2 })
    t.equal(run.counts.calls, 3)
  })

  t.test('ioctl success with firmware status 0x16', async (t) => {
    const o = first(runChild({ device: 'sev-guest', steps: [[{ reportData: randomBytes(64) }]] }, { SKR_SHIM_MODE: 'bad-status' }))
    t.equal(o.code, 'ERR_SNP_FIRMWARE')
    t.match(o.message, /status 0x16 \(invalid parameters, e\.g\. a VMPL below the guest's\), want 0/)
    t.match(o.details, { status: 0x16 })
  })

  t.test('report_size below 0x4A0', async (t) => {
    const o = first(runChild({ device: 'sev-guest', steps: [[{ reportData: randomBytes(64) }]] }, { SKR_SHIM_MODE: 'bad-size' }))
    t.equal(o.code, 'ERR_SNP_REPORT_INVALID')
    t.equal(o.message, 'MSG_REPORT_RSP report_size is 0x400, want 0x4a0..0xf80')
    t.match(o.details, { reportSize: 0x400 })
  })

  t.test('permission denied on open', async (t) => {
    const o = first(runChild({ device: 'sev-guest', steps: [[{ reportData: randomBytes(64) }]] }, { SKR_SHIM_MODE: 'eacces' }))
    t.equal(o.code, 'ERR_SNP_DEVICE_UNAVAILABLE')
    t.match(o.message, /cannot open \/dev\/sev-guest \(EACCES, errno 13\): is the sev-guest module loaded/)
    t.match(o.details, { syscall: 'open', code: 'EACCES' })
  })

  t.test('10 concurrent calls never overlap in the device, each gets its own report', async (t) => {
    const calls = Array.from({ length: 10 }, (_, i) => ({ reportData: randomBytes(64), vmpl: i % 4 }))
    const run = runChild({ device: 'sev-guest', steps: [calls] }, {})
    t.same(run.counts, { calls: 10, maxConcurrent: 1 })
    run.steps[0]?.forEach((o, i) => {
      const report = Buffer.from(o.report ?? '', 'hex')
      t.same(report.subarray(0x50, 0x90), calls[i]?.reportData, `call ${i} REPORT_DATA`)
      t.equal(report.readUInt32LE(0x30), i % 4, `call ${i} VMPL`)
    })
  })

  t.test('the driver stand-in matches the kernel on paths the addon never takes', async (t) => {
    if (!shim.ok) throw new Error('unreachable')
    const r = spawnSync(shim.probe, { encoding: 'utf8', env: { LD_PRELOAD: shim.shim } })
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

t.test('a missing device node: ERR_SNP_DEVICE_UNAVAILABLE with the open errno', { skip: addonBuilt ? false : `${addonPath} is missing` }, async (t) => {
  const provider = createIoctlProvider({ device: 'sev-guest', path: '/nonexistent/sev-guest' })
  const err = await provider.getReport(Buffer.alloc(64)).then(() => undefined, (e: unknown) => e)
  t.match(err, { code: 'ERR_SNP_DEVICE_UNAVAILABLE', details: { errno: 2, code: 'ENOENT', syscall: 'open' } })
  t.match(err, { message: /are you root\?$/ })
})

// ---- the provider's policy against an injected binding --------------------------------------

function nativeError (code: string, errno: number, syscall: 'open' | 'ioctl' = 'ioctl', exitinfo2 = 0n): Error {
  return Object.assign(new Error(`SNP_GET_REPORT: ${code}`), {
    errno, code, syscall,
    fwError: Number(exitinfo2 & 0xffffffffn),
    vmmError: Number(exitinfo2 >> 32n),
    exitinfo2: `0x${exitinfo2.toString(16).padStart(16, '0')}`
  })
}

function response (opts: { size?: number, status?: number, reportSize?: number, fill?: number } = {}): Buffer {
  const buf = Buffer.alloc(opts.size ?? 4000)
  buf.writeUInt32LE(opts.status ?? 0, 0)
  buf.writeUInt32LE(opts.reportSize ?? 0x4A0, 4)
  buf.fill(opts.fill ?? 0xab, 0x20, 0x20 + 0x4A0)
  return buf
}

function scripted (answers: Array<Buffer | Error>): NativeBinding & { calls: Array<{ data: Buffer, vmpl: number, device: string, legacy: boolean }> } {
  const calls: Array<{ data: Buffer, vmpl: number, device: string, legacy: boolean }> = []
  return {
    calls,
    async getReport (data, vmpl, device, legacy) {
      calls.push({ data, vmpl, device, legacy })
      const next = answers.shift()
      if (next === undefined) throw new Error('unexpected call')
      if (next instanceof Error) throw next
      return next
    }
  }
}

t.test('request validation: ERR_REQUEST_INVALID before the device is touched', async (t) => {
  const binding = scripted([])
  const provider = createIoctlProvider({ device: 'sev-guest', binding })
  await t.rejects(provider.getReport(new Uint8Array(63)), { code: 'ERR_REQUEST_INVALID', message: 'reportData is 63 bytes, want exactly 64' })
  await t.rejects(provider.getReport(new Uint8Array(65)), { code: 'ERR_REQUEST_INVALID' })
  await t.rejects(provider.getReport('x'.repeat(64) as unknown as Uint8Array), { code: 'ERR_REQUEST_INVALID' })
  for (const vmpl of [-1, 4, 1.5, Number.NaN]) {
    await t.rejects(provider.getReport(new Uint8Array(64), vmpl), { code: 'ERR_REQUEST_INVALID' }, `vmpl ${vmpl}`)
  }
  t.equal(binding.calls.length, 0)
})

t.test('arguments reach the binding; the report is a copy', async (t) => {
  const resp = response()
  const binding = scripted([resp, response({ size: 1280 })])
  const q = await createIoctlProvider({ device: 'sev-guest', binding }).getReport(new Uint8Array(64).fill(7), 1)
  t.match(binding.calls[0], { vmpl: 1, device: '/dev/sev-guest', legacy: false })
  t.same(binding.calls[0]?.data, Buffer.alloc(64, 7))
  t.equal(q.report.length, 0x4A0)
  resp.fill(0, 0x20)
  t.equal(q.report[0], 0xab, 'mutating the native buffer does not change the report')
  await createIoctlProvider({ device: 'sev', path: '/dev/x', binding }).getReport(new Uint8Array(64))
  t.match(binding.calls[1], { vmpl: 0, device: '/dev/x', legacy: true })
})

t.test('MSG_REPORT_RSP checks', async (t) => {
  const cases: Array<[string, Buffer, 'sev-guest' | 'sev', { code: string, message?: string | RegExp }]> = [
    ['short buffer', Buffer.alloc(100), 'sev-guest', { code: 'ERR_SNP_REPORT_INVALID', message: 'the /dev/sev-guest response is 100 bytes, want 4000' }],
    ['status 0x27', response({ status: 0x27 }), 'sev-guest', { code: 'ERR_SNP_FIRMWARE', message: /status 0x27 \(invalid key selection\)/ }],
    ['report_size 0', response({ reportSize: 0 }), 'sev-guest', { code: 'ERR_SNP_REPORT_INVALID' }],
    ['report_size past the buffer', response({ reportSize: 4000 - 0x1f }), 'sev-guest', { code: 'ERR_SNP_REPORT_INVALID' }],
    ['legacy report_size past 1280', response({ size: 1280, reportSize: 1280 - 0x1f }), 'sev', { code: 'ERR_SNP_REPORT_INVALID', message: /want 0x4a0\.\.0x4e0$/ }]
  ]
  for (const [name, buf, device, want] of cases) {
    await t.rejects(createIoctlProvider({ device, binding: scripted([buf]) }).getReport(new Uint8Array(64)), want, name)
  }
  const big = await createIoctlProvider({ device: 'sev-guest', binding: scripted([response({ reportSize: 4000 - 0x20 })]) })
    .getReport(new Uint8Array(64))
  t.equal(big.report.length, 4000 - 0x20, 'a larger future report is accepted whole')
})

t.test('EAGAIN/EBUSY back off exponentially, then give up', async (t) => {
  const busy = (): Error => nativeError('EBUSY', 16)
  const delays: number[] = []
  const binding = scripted([busy(), busy(), busy(), busy(), busy()])
  const provider = createIoctlProvider({ device: 'sev-guest', binding, sleep: async (ms) => { delays.push(ms) } })
  await t.rejects(provider.getReport(new Uint8Array(64)), { code: 'ERR_SNP_FIRMWARE', details: { code: 'EBUSY', attempts: 5 } })
  t.same(delays, [200, 400, 800, 1600])
  t.equal(binding.calls.length, 5)
})

t.test('error mapping', async (t) => {
  const cases: Array<[string, unknown, { code: string, message?: string | RegExp, details?: object }]> = [
    ['ENOTTY', nativeError('ENOTTY', 25, 'ioctl', 0xffn), { code: 'ERR_SNP_FIRMWARE', message: /VMPCK\) is disabled .* or \/dev\/sev-guest does not support this ioctl/ }],
    ['EINVAL', nativeError('EINVAL', 22), { code: 'ERR_SNP_FIRMWARE', message: /may not speak this ABI/ }],
    ['EBADMSG', nativeError('EBADMSG', 74), { code: 'ERR_SNP_FIRMWARE', details: { vmpckDisabled: true } }],
    ['ETIMEDOUT', nativeError('ETIMEDOUT', 110, 'ioctl', 2n << 32n), { code: 'ERR_SNP_FIRMWARE', message: /VMM error 2 \(host busy\)/, details: { vmmError: 2, exitinfo2: '0x0000000200000000' } }],
    ['EFAULT', nativeError('EFAULT', 14), { code: 'ERR_SNP_FIRMWARE', message: 'SNP_GET_REPORT on /dev/sev-guest failed with EFAULT (errno 14)' }],
    ['ENODEV on open', nativeError('ENODEV', 19, 'open'), { code: 'ERR_SNP_DEVICE_UNAVAILABLE', message: /sev-guest module loaded/ }],
    ['EMFILE on open', nativeError('EMFILE', 24, 'open'), { code: 'ERR_SNP_DEVICE_UNAVAILABLE', message: 'cannot open /dev/sev-guest (EMFILE, errno 24)' }],
    ['a foreign error', new RangeError('boom'), { code: 'ERR_INTERNAL' }]
  ]
  for (const [name, err, want] of cases) {
    const binding = scripted([err as Error])
    await t.rejects(createIoctlProvider({ device: 'sev-guest', binding }).getReport(new Uint8Array(64)), want, name)
    t.equal(binding.calls.length, 1, `${name}: not retried`)
  }
  const binding = scripted([nativeError('ENOTTY', 25), response()])
  const provider = createIoctlProvider({ device: 'sev-guest', binding })
  await t.rejects(provider.getReport(new Uint8Array(64)), { code: 'ERR_SNP_FIRMWARE' })
  t.equal((await provider.getReport(new Uint8Array(64))).report.length, 0x4A0, 'ENOTTY does not latch the provider')
})

t.test('one request in flight; a fatal error fails the queued ones fast', async (t) => {
  let inFlight = 0
  let maxInFlight = 0
  let calls = 0
  const binding: NativeBinding = {
    async getReport () {
      calls++
      inFlight++
      maxInFlight = Math.max(maxInFlight, inFlight)
      await new Promise((resolve) => setImmediate(resolve))
      inFlight--
      if (calls === 3) throw nativeError('EIO', 5, 'ioctl', 0x16n)
      return response()
    }
  }
  const provider = createIoctlProvider({ device: 'sev-guest', binding })
  const results = await Promise.allSettled(Array.from({ length: 6 }, async () => await provider.getReport(new Uint8Array(64))))
  t.equal(maxInFlight, 1)
  t.same(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected', 'rejected', 'rejected', 'rejected'])
  t.equal(calls, 3, 'nothing reaches the device after the VMPCK wipe')
  const reasons = results.flatMap((r) => r.status === 'rejected' ? [r.reason as unknown] : [])
  t.ok(reasons.every((r) => r === reasons[0]), 'the same error every time')
})

t.test('programmer misuse is a TypeError', async (t) => {
  t.throws(() => createIoctlProvider({ device: 'tsm' as 'sev' }), TypeError)
  t.throws(() => createIoctlProvider({ device: 'sev', retry: { attempts: 0, baseDelayMs: 1 } }), TypeError)
  t.throws(() => createIoctlProvider({ device: 'sev', retry: { attempts: 2, baseDelayMs: -1 } }), TypeError)
})
