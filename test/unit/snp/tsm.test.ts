import t from 'tap'
import * as fsp from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { REPORT_SIZE } from '../../../src/snp/abi.ts'
import { DEFAULT_TSM_ROOT, createTsmProvider, probeTsm } from '../../../src/snp/tsm.ts'
import { nodeTsmFs } from '../../../src/snp/tsm-fs.ts'
import type { TsmFs } from '../../../src/snp/tsm-fs.ts'
import { createFakeConfigfs, errnoError } from '../../doubles/fake-configfs.ts'
import type { FakeConfigfsOptions } from '../../doubles/fake-configfs.ts'

const pattern = (seed: number): Buffer => Buffer.from(Array.from({ length: 64 }, (_, i) => (seed + 3 * i) & 0xff))

async function setup (tt: { teardown: (fn: () => unknown) => void }, options: FakeConfigfsOptions = {}) {
  const fake = await createFakeConfigfs(options)
  tt.teardown(fake.cleanup)
  const provider = createTsmProvider({ root: fake.root, fs: fake.fs })
  return { fake, provider }
}

t.test('default root is the kernel path', async (tt) => {
  tt.equal(DEFAULT_TSM_ROOT, '/sys/kernel/config/tsm/report')
})

t.test('a report carries the input at 0x50, privlevel is written, the entry is removed', async (tt) => {
  const { fake, provider } = await setup(tt)
  tt.equal(provider.backend, 'tsm')
  tt.equal(provider.simulated, false)
  const input = pattern(1)
  const quote = await provider.getReport(input, 2)
  tt.equal(quote.backend, 'tsm')
  tt.equal(quote.report.length, REPORT_SIZE)
  tt.same(quote.report.subarray(0x50, 0x90), input)
  tt.equal(quote.report.readUInt32LE(0x30), 2, 'VMPL echoes the privlevel written')
  tt.equal(quote.report.readUInt32LE(0), 2, 'version 2')
  tt.equal(quote.certTable, undefined, 'an empty auxblob means no cert table')
  tt.same(fake.writes.map((w) => [w.attribute, w.data.toString('hex')]), [['inblob', input.toString('hex')], ['privlevel', Buffer.from('2').toString('hex')]])
  tt.equal(fake.created.length, 1)
  tt.match(fake.created[0], /^skr-\d+-[0-9a-f]{16}$/)
  tt.same(fake.removed, fake.created)
  tt.same(await fake.leftovers(), [])
})

t.test('without a vmpl, privlevel is not written', async (tt) => {
  const { fake, provider } = await setup(tt)
  const quote = await provider.getReport(pattern(2))
  tt.equal(quote.report.readUInt32LE(0x30), 0)
  tt.same(fake.writes.map((w) => w.attribute), ['inblob'])
})

t.test('the caller may reuse its buffer as soon as getReport returns', async (tt) => {
  const { provider } = await setup(tt)
  const input = pattern(3)
  const pending = provider.getReport(input)
  input.fill(0)
  tt.same((await pending).report.subarray(0x50, 0x90), pattern(3))
})

t.test('a non-empty auxblob is returned as the cert table', async (tt) => {
  const { fake, provider } = await setup(tt)
  fake.faults.auxblob = Buffer.from('cert table bytes')
  const quote = await provider.getReport(pattern(4))
  tt.same(quote.certTable, Buffer.from('cert table bytes'))
})

t.test('a missing auxblob means no cert table', async (tt) => {
  const { fake, provider } = await setup(tt)
  fake.faults.auxblob = null
  const quote = await provider.getReport(pattern(5))
  tt.equal(quote.certTable, undefined)
  tt.same(await fake.leftovers(), [])
})

t.test('the entry name is injectable and checked', async (tt) => {
  const fake = await createFakeConfigfs()
  tt.teardown(fake.cleanup)
  const named = createTsmProvider({ root: fake.root, fs: fake.fs, entryName: () => 'fixed' })
  await named.getReport(pattern(6))
  tt.same(fake.created, ['fixed'])
  for (const bad of ['', '.', '..', 'a/b']) {
    const p = createTsmProvider({ root: fake.root, fs: fake.fs, entryName: () => bad })
    await tt.rejects(p.getReport(pattern(6)), TypeError, `entry name ${JSON.stringify(bad)}`)
  }
})

t.test('bad inputs are refused before touching configfs', async (tt) => {
  const { fake, provider } = await setup(tt)
  for (const size of [0, 32, 63, 65]) {
    await tt.rejects(provider.getReport(Buffer.alloc(size)), { code: 'ERR_REQUEST_INVALID', details: { found: size, expected: 64 } })
  }
  for (const vmpl of [-1, 4, 1.5, Number.NaN]) {
    await tt.rejects(provider.getReport(pattern(7), vmpl), { code: 'ERR_REQUEST_INVALID' }, `vmpl ${vmpl}`)
  }
  await tt.rejects(provider.getReport('x'.repeat(64) as unknown as Uint8Array), TypeError)
  tt.same(fake.created, [])
})

t.test('a vmpl below privlevel_floor is refused and the entry removed', async (tt) => {
  const { fake, provider } = await setup(tt)
  fake.faults.privlevelFloor = 2
  await tt.rejects(provider.getReport(pattern(8), 1), { code: 'ERR_REQUEST_INVALID', details: { vmpl: 1, privlevelFloor: 2 } })
  tt.same(await fake.leftovers(), [])
  const quote = await provider.getReport(pattern(8), 3)
  tt.equal(quote.report.readUInt32LE(0x30), 3)
})

t.test('without a readable privlevel_floor the kernel refusal still maps to ERR_REQUEST_INVALID', async (tt) => {
  const { fake } = await setup(tt)
  fake.faults.privlevelFloor = null
  const fs: TsmFs = {
    ...fake.fs,
    writeFile: async (path, data) => {
      if (path.endsWith('privlevel')) throw errnoError('EINVAL', 'write', path)
      await fake.fs.writeFile(path, data)
    }
  }
  const p = createTsmProvider({ root: fake.root, fs })
  await tt.rejects(p.getReport(pattern(9), 0), { code: 'ERR_REQUEST_INVALID', details: { errno: 'EINVAL', attribute: 'privlevel' } })
  tt.same(await fake.leftovers(), [])
})

t.test('a provider other than sev_guest is named', async (tt) => {
  const { fake, provider } = await setup(tt)
  fake.faults.provider = 'tdx_guest\n'
  await tt.rejects(provider.getReport(pattern(10)), { code: 'ERR_SNP_DEVICE_UNAVAILABLE', message: /"tdx_guest"/, details: { provider: 'tdx_guest' } })
  tt.same(await fake.leftovers(), [])
})

t.test('outblob errnos map to ERR_SNP_FIRMWARE with the errno and a hint', async (tt) => {
  const hints: Record<string, RegExp> = {
    EINVAL: /privlevel_floor/,
    ENXIO: /dmesg/,
    EIO: /VMPCK/,
    ETIMEDOUT: /VMPCK/,
    ENOTTY: /restart the VM/,
    ENOMEM: /failed with ENOMEM/
  }
  for (const [errno, hint] of Object.entries(hints)) {
    const { fake, provider } = await setup(tt)
    fake.faults.outblobErrno = errno
    await tt.rejects(provider.getReport(pattern(11)), { code: 'ERR_SNP_FIRMWARE', message: hint, details: { errno, attribute: 'outblob', backend: 'tsm' } }, errno)
    tt.equal(fake.created.length, 1, `${errno} is not retried`)
    tt.same(await fake.leftovers(), [], `${errno}: entry removed`)
  }
})

t.test('auxblob errors other than ENOENT are reported', async (tt) => {
  const { fake } = await setup(tt)
  const fs: TsmFs = {
    ...fake.fs,
    readFile: async (path) => {
      if (path.endsWith('auxblob')) throw errnoError('EIO', 'read', path)
      return await fake.fs.readFile(path)
    }
  }
  const p = createTsmProvider({ root: fake.root, fs })
  await tt.rejects(p.getReport(pattern(12)), { code: 'ERR_SNP_FIRMWARE', details: { errno: 'EIO', attribute: 'auxblob' } })
  tt.same(await fake.leftovers(), [])
})

t.test('an outblob of the wrong size is ERR_SNP_REPORT_INVALID', async (tt) => {
  for (const size of [1000, 1185, 0]) {
    const { fake, provider } = await setup(tt)
    fake.faults.outblobSize = size
    await tt.rejects(provider.getReport(pattern(13)), { code: 'ERR_SNP_REPORT_INVALID', details: { found: size, expected: REPORT_SIZE } }, `size ${size}`)
    tt.same(await fake.leftovers(), [])
  }
})

t.test('mkdir errnos map to ERR_SNP_DEVICE_UNAVAILABLE', async (tt) => {
  const cases: Record<string, RegExp> = {
    ENOENT: /kernel < 6\.7, configfs not mounted, or no TSM provider/,
    ENXIO: /kernel < 6\.7, configfs not mounted, or no TSM provider/,
    EACCES: /needs root/,
    EPERM: /needs root/,
    EROFS: /needs root/,
    ENOSPC: /ENOSPC/
  }
  for (const [errno, message] of Object.entries(cases)) {
    const { fake, provider } = await setup(tt)
    fake.faults.mkdirErrno = errno
    await tt.rejects(provider.getReport(pattern(14)), { code: 'ERR_SNP_DEVICE_UNAVAILABLE', message, details: { errno } }, errno)
    tt.same(fake.created, [])
  }
})

t.test('a read-only inblob is ERR_SNP_DEVICE_UNAVAILABLE', async (tt) => {
  const { fake, provider } = await setup(tt)
  fake.faults.inblobErrno = 'EACCES'
  await tt.rejects(provider.getReport(pattern(15)), { code: 'ERR_SNP_DEVICE_UNAVAILABLE', message: /needs root/, details: { attribute: 'inblob', operation: 'write' } })
  tt.same(await fake.leftovers(), [])
})

t.test('a generation race is retried once in a fresh entry', async (tt) => {
  const { fake, provider } = await setup(tt)
  fake.faults.races = 1
  const quote = await provider.getReport(pattern(16))
  tt.same(quote.report.subarray(0x50, 0x90), pattern(16))
  tt.equal(fake.created.length, 2)
  tt.not(fake.created[0], fake.created[1])
  tt.same(await fake.leftovers(), [])
})

t.test('a second race is ERR_SNP_FIRMWARE', async (tt) => {
  const { fake, provider } = await setup(tt)
  fake.faults.races = 2
  await tt.rejects(provider.getReport(pattern(17)), { code: 'ERR_SNP_FIRMWARE', message: /generation changed/, details: { found: 2, expected: 1, attempts: 2 } })
  tt.equal(fake.created.length, 2)
  tt.same(await fake.leftovers(), [])
})

t.test('EBUSY is retried once, then ERR_SNP_FIRMWARE', async (tt) => {
  const { fake, provider } = await setup(tt)
  fake.faults.outblobErrno = 'EBUSY'
  fake.faults.outblobErrnoTimes = 1
  await provider.getReport(pattern(18))
  tt.equal(fake.created.length, 2)
  fake.faults.outblobErrnoTimes = 2
  await tt.rejects(provider.getReport(pattern(18)), { code: 'ERR_SNP_FIRMWARE', message: /EBUSY twice/, details: { errno: 'EBUSY' } })
  fake.faults.outblobErrno = null
  fake.faults.mkdirErrno = 'EBUSY'
  await tt.rejects(provider.getReport(pattern(18)), { code: 'ERR_SNP_FIRMWARE', details: { errno: 'EBUSY', operation: 'mkdir' } })
  tt.same(await fake.leftovers(), [])
})

t.test('concurrent calls run one at a time in distinct entries', async (tt) => {
  const { fake, provider } = await setup(tt)
  const quotes = await Promise.all(Array.from({ length: 10 }, async (_, i) => await provider.getReport(pattern(100 + i), i % 4)))
  quotes.forEach((q, i) => {
    tt.same(q.report.subarray(0x50, 0x90), pattern(100 + i), `call ${i} got its own report data`)
    tt.equal(q.report.readUInt32LE(0x30), i % 4)
  })
  tt.equal(new Set(fake.created).size, 10)
  tt.equal(fake.maxLive, 1, 'no two entries existed at once')
  tt.same(await fake.leftovers(), [])
})

t.test('a failed call does not block the next one', async (tt) => {
  const { fake, provider } = await setup(tt)
  fake.faults.outblobErrno = 'EIO'
  fake.faults.outblobErrnoTimes = 1
  const results = await Promise.allSettled([provider.getReport(pattern(20)), provider.getReport(pattern(21))])
  tt.equal(results[0]?.status, 'rejected')
  tt.equal(results[1]?.status, 'fulfilled')
})

t.test('a failing rmdir does not hide the result', async (tt) => {
  const { fake } = await setup(tt)
  const fs: TsmFs = { ...fake.fs, rmdir: async (path) => { throw errnoError('EBUSY', 'rmdir', path) } }
  const quote = await createTsmProvider({ root: fake.root, fs }).getReport(pattern(22))
  tt.equal(quote.report.length, REPORT_SIZE)
})

t.test('with node:fs, a missing root or a plain directory is ERR_SNP_DEVICE_UNAVAILABLE', async (tt) => {
  const base = await fsp.mkdtemp(join(tmpdir(), 'skr-tsm-'))
  tt.teardown(async () => { await fsp.rm(base, { recursive: true, force: true }) })
  const missing = createTsmProvider({ root: join(base, 'missing') })
  await tt.rejects(missing.getReport(pattern(23)), { code: 'ERR_SNP_DEVICE_UNAVAILABLE', details: { errno: 'ENOENT', operation: 'mkdir' } })
  const plain = createTsmProvider({ root: base })
  await tt.rejects(plain.getReport(pattern(23)), { code: 'ERR_SNP_DEVICE_UNAVAILABLE', details: { errno: 'ENOENT', attribute: 'generation' } })
  tt.same(await fsp.readdir(base), [], 'the entry made in the plain directory was removed')
})

t.test('a generation that is not a number is ERR_SNP_DEVICE_UNAVAILABLE', async (tt) => {
  const { fake } = await setup(tt)
  const fs: TsmFs = {
    ...fake.fs,
    readFile: async (path) => path.endsWith('generation') ? Buffer.from('lots\n') : await fake.fs.readFile(path)
  }
  await tt.rejects(createTsmProvider({ root: fake.root, fs }).getReport(pattern(25)),
    { code: 'ERR_SNP_DEVICE_UNAVAILABLE', message: /generation reads "lots"/, details: { attribute: 'generation' } })
  tt.same(await fake.leftovers(), [])
})

t.test('an fs failure without an errno is still a typed error', async (tt) => {
  const { fake } = await setup(tt)
  const fs: TsmFs = { ...fake.fs, writeFile: async () => { throw new Error('boom') } }
  await tt.rejects(createTsmProvider({ root: fake.root, fs }).getReport(pattern(26)),
    { code: 'ERR_SNP_FIRMWARE', details: { errno: 'unknown', attribute: 'inblob' } })
  tt.same(await fake.leftovers(), [])
})

t.test('nodeTsmFs reads attributes to their end and round-trips', async (tt) => {
  const base = await fsp.mkdtemp(join(tmpdir(), 'skr-tsm-'))
  tt.teardown(async () => { await fsp.rm(base, { recursive: true, force: true }) })
  const dir = join(base, 'entry')
  await nodeTsmFs.mkdir(dir)
  await nodeTsmFs.access(dir)
  const big = Buffer.alloc(200_000, 7) // larger than one read chunk
  await nodeTsmFs.writeFile(join(dir, 'outblob'), big)
  await nodeTsmFs.writeFile(join(dir, 'privlevel'), '2')
  tt.same(await nodeTsmFs.readFile(join(dir, 'outblob')), big)
  tt.equal((await nodeTsmFs.readFile(join(dir, 'privlevel'))).toString(), '2')
  await tt.rejects(nodeTsmFs.readFile(join(dir, 'missing')), { code: 'ENOENT' })
  await tt.rejects(nodeTsmFs.rmdir(dir), { code: 'ENOTEMPTY' })
  await fsp.rm(join(dir, 'outblob'))
  await fsp.rm(join(dir, 'privlevel'))
  await nodeTsmFs.rmdir(dir)
  tt.same(await fsp.readdir(base), [])
})

t.test('probeTsm', async (tt) => {
  tt.test('usable with sev_guest, probe entry removed', async (t2) => {
    const fake = await createFakeConfigfs()
    t2.teardown(fake.cleanup)
    const r = await probeTsm({ root: fake.root, fs: fake.fs })
    t2.equal(r.usable, true)
    t2.match(r.reason, /sev_guest/)
    t2.equal(fake.created.length, 1)
    t2.match(fake.created[0], /^skr-probe-/)
    t2.same(await fake.leftovers(), [])
  })
  tt.test('another provider is named', async (t2) => {
    const fake = await createFakeConfigfs()
    t2.teardown(fake.cleanup)
    fake.faults.provider = 'tdx_guest\n'
    const r = await probeTsm({ root: fake.root, fs: fake.fs })
    t2.same(r, { usable: false, reason: `${fake.root}: provider is "tdx_guest", want "sev_guest"` })
    t2.same(await fake.leftovers(), [])
  })
  tt.test('mkdir refusals', async (t2) => {
    const fake = await createFakeConfigfs()
    t2.teardown(fake.cleanup)
    for (const [errno, reason] of [['ENXIO', /no TSM provider/], ['EACCES', /needs root/], ['ENOSPC', /mkdir failed with ENOSPC/]] as const) {
      fake.faults.mkdirErrno = errno
      const r = await probeTsm({ root: fake.root, fs: fake.fs })
      t2.equal(r.usable, false)
      t2.match(r.reason, reason)
    }
  })
  tt.test('unreadable provider', async (t2) => {
    const fake = await createFakeConfigfs()
    t2.teardown(fake.cleanup)
    const fs: TsmFs = { ...fake.fs, readFile: async (path) => { throw errnoError('EIO', 'read', path) } }
    const r = await probeTsm({ root: fake.root, fs })
    t2.same(r, { usable: false, reason: `${fake.root}: provider failed with EIO` })
    t2.same(await fake.leftovers(), [])
  })
  tt.test('with node:fs, a missing root is not usable', async (t2) => {
    const root = join(tmpdir(), `skr-no-such-dir-${process.pid}`)
    const r = await probeTsm({ root })
    t2.equal(r.usable, false)
    t2.match(r.reason, /ENOENT: configfs-tsm not available/)
  })
  tt.test('with node:fs, a plain directory is not usable and the probe entry is removed', async (t2) => {
    const base = await fsp.mkdtemp(join(tmpdir(), 'skr-tsm-'))
    t2.teardown(async () => { await fsp.rm(base, { recursive: true, force: true }) })
    const r = await probeTsm({ root: base })
    t2.equal(r.usable, false)
    t2.match(r.reason, /provider failed with ENOENT/)
    t2.same(await fsp.readdir(base), [])
  })
})
