// The addon loader (src/snp/native.ts) and the real addon's argument checks and error shape.
// The addon's ioctl path against a driver is covered by ioctl.test.ts through the shim; here the
// kernel itself supplies the errors (ENOENT from open, ENOTTY from an ioctl on /dev/null).
import t from 'tap'
import { existsSync } from 'node:fs'
import { isNativeIoctlError, loadNativeBinding } from '../../../src/snp/native.ts'
import type { NativeBinding } from '../../../src/snp/native.ts'
import { packagePath } from '../../../src/package-root.ts'
import { addonPath } from '../../helpers/shim.ts'

t.test('a require that throws becomes ERR_SNP_DEVICE_UNAVAILABLE with the build hint', async (t) => {
  const requested: string[] = []
  const failing = (id: string): unknown => {
    requested.push(id)
    throw Object.assign(new Error(`Cannot find module '${id}'`), { code: 'MODULE_NOT_FOUND' })
  }
  const err = (() => {
    try {
      loadNativeBinding({ platform: 'linux', require: failing })
    } catch (e) {
      return e
    }
    return undefined
  })()
  t.match(err, {
    code: 'ERR_SNP_DEVICE_UNAVAILABLE',
    statusCode: 503,
    message: /could not be loaded \(MODULE_NOT_FOUND\); run `npm run build:native`/,
    details: { loadError: 'MODULE_NOT_FOUND', addon: 'build/Release/snp_guest.node' }
  })
  t.same(requested, [packagePath('build', 'Release', 'snp_guest.node')], 'the addon in the package root, wherever the code runs from')
})

t.test('a dlopen failure without a code still maps', async (t) => {
  t.throws(() => loadNativeBinding({ platform: 'linux', require: () => { throw new Error('invalid ELF header') } }),
    { code: 'ERR_SNP_DEVICE_UNAVAILABLE', message: /\(load error\)/ })
})

t.test('not Linux: ERR_SNP_DEVICE_UNAVAILABLE without trying to load', async (t) => {
  let loaded = false
  t.throws(() => loadNativeBinding({ platform: 'darwin', require: () => { loaded = true; return {} } }),
    { code: 'ERR_SNP_DEVICE_UNAVAILABLE', message: /needs Linux, found platform darwin/, details: { platform: 'darwin' } })
  t.equal(loaded, false)
})

t.test('a module without getReport is rejected as stale', async (t) => {
  for (const mod of [{}, null, { getReport: 1 }, 'x']) {
    t.throws(() => loadNativeBinding({ platform: 'linux', require: () => mod }),
      { code: 'ERR_SNP_DEVICE_UNAVAILABLE', message: /does not export getReport/ })
  }
})

t.test('an injected binding is returned and not cached', async (t) => {
  const a: NativeBinding = { getReport: async () => Buffer.alloc(0) }
  const b: NativeBinding = { getReport: async () => Buffer.alloc(1) }
  t.equal(loadNativeBinding({ platform: 'linux', require: () => a }), a)
  t.equal(loadNativeBinding({ platform: 'linux', require: () => b }), b)
})

t.test('isNativeIoctlError', async (t) => {
  const shape = { errno: 5, code: 'EIO', syscall: 'ioctl', fwError: 0, vmmError: 0, exitinfo2: '0x0' }
  t.equal(isNativeIoctlError(Object.assign(new Error('x'), shape)), true)
  t.equal(isNativeIoctlError(shape), false, 'not an Error')
  t.equal(isNativeIoctlError(Object.assign(new Error('x'), { ...shape, syscall: 'read' })), false)
  t.equal(isNativeIoctlError(Object.assign(new Error('x'), { ...shape, exitinfo2: 0 })), false)
  t.equal(isNativeIoctlError(new Error('x')), false)
})

const missing = process.platform !== 'linux'
  ? 'the addon is Linux-only'
  : existsSync(addonPath) ? false : `${addonPath} is missing: run npm run build:native`

t.test('the real addon', { skip: missing }, async (t) => {
  const binding = loadNativeBinding()
  t.equal(typeof binding.getReport, 'function')
  t.equal(loadNativeBinding(), binding, 'loaded once')

  t.throws(() => binding.getReport(Buffer.alloc(63), 0, '/dev/null', false),
    { name: 'TypeError', message: 'reportData is 63 bytes, want exactly 64' })
  t.throws(() => binding.getReport(new Uint16Array(32) as unknown as Buffer, 0, '/dev/null', false), TypeError, 'not bytes')
  t.throws(() => binding.getReport([...Buffer.alloc(64)] as unknown as Buffer, 0, '/dev/null', false), TypeError, 'an array')
  const view = new Uint8Array(new ArrayBuffer(80), 16, 64)
  await t.rejects(binding.getReport(view as Buffer, 0, '/nonexistent/sev-guest', false), { code: 'ENOENT' },
    'a plain Uint8Array view is accepted')
  for (const vmpl of [4, -1, 0.5, Number.NaN]) {
    t.throws(() => binding.getReport(Buffer.alloc(64), vmpl, '/dev/null', false), RangeError, `vmpl ${vmpl}`)
  }
  t.throws(() => binding.getReport(Buffer.alloc(64), 0, '', false), TypeError, 'empty device')
  t.throws(() => binding.getReport(Buffer.alloc(64), 0, '/dev/null\0x', false), TypeError, 'NUL in device')
  t.throws(() => binding.getReport(Buffer.alloc(64), 0, '/dev/null', 1 as unknown as boolean), TypeError, 'legacy not boolean')
  t.throws(() => (binding.getReport as (...a: unknown[]) => unknown)(Buffer.alloc(64), 0, '/dev/null'), TypeError, 'arity')

  const enoent = await binding.getReport(Buffer.alloc(64), 0, '/nonexistent/sev-guest', false).then(() => undefined, (e: unknown) => e)
  t.ok(isNativeIoctlError(enoent))
  t.match(enoent, {
    message: 'SNP_GET_REPORT: No such file or directory',
    errno: 2, code: 'ENOENT', syscall: 'open', fwError: 0, vmmError: 0, exitinfo2: '0x0000000000000000'
  })

  for (const legacy of [false, true]) {
    const enotty = await binding.getReport(Buffer.alloc(64), 0, '/dev/null', legacy).then(() => undefined, (e: unknown) => e)
    t.match(enotty, { errno: 25, code: 'ENOTTY', syscall: 'ioctl' }, `legacy=${String(legacy)}: the kernel's ENOTTY for /dev/null`)
  }
})
