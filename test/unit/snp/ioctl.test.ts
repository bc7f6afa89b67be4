// The ioctl QuoteProvider: its policy (queue, retries, mapping) in-process against an injected
// binding, where every branch can be forced, and the real addon's open errors. End to end through
// the addon and the LD_PRELOAD driver stand-in (test/shim), in child Node processes because
// LD_PRELOAD only applies at start-up: test/process/snp/ioctl.test.ts.
import t from 'tap'
import { existsSync } from 'node:fs'
import { createIoctlProvider } from '../../../src/snp/ioctl.ts'
import type { NativeBinding } from '../../../src/snp/native.ts'
import { addonPath } from '../../helpers/shim.ts'

const addonBuilt = existsSync(addonPath)

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
