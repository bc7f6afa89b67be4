import t from 'tap'
import * as fsp from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SnpFirmwareError } from '../../../src/errors.ts'
import type { AttestationBackend, QuoteProvider } from '../../../src/snp/provider.ts'
import { DEFAULT_SEV_GUEST_PATH, DEFAULT_SEV_PATH, parseAttestationMode, selectQuoteProvider } from '../../../src/snp/select.ts'
import type { SelectOptions } from '../../../src/snp/select.ts'

function stub (backend: AttestationBackend): QuoteProvider {
  return {
    backend,
    simulated: backend === 'simulated',
    getReport: async () => { throw new Error('not called in these tests') }
  }
}

// Records every probe and factory call so a test can prove only the chosen backend was built.
function harness (present: { tsm?: boolean, 'sev-guest'?: boolean, sev?: boolean }, extra: Partial<SelectOptions> = {}) {
  const calls: string[] = []
  const options = (mode: SelectOptions['mode']): SelectOptions => ({
    mode,
    exists: async (path) => {
      calls.push(`exists ${path}`)
      return (path === DEFAULT_SEV_GUEST_PATH && present['sev-guest'] === true) || (path === DEFAULT_SEV_PATH && present.sev === true)
    },
    probeTsm: async (root) => {
      calls.push(`probe ${root}`)
      return present.tsm === true ? { usable: true, reason: `${root}: provider sev_guest` } : { usable: false, reason: `${root}: ENOENT: absent` }
    },
    factories: {
      tsm: (root) => { calls.push(`tsm ${root}`); return stub('tsm') },
      ioctl: async (device, path) => { calls.push(`ioctl ${device} ${path}`); return stub(device) },
      simulated: async () => { calls.push('simulated'); return stub('simulated') }
    },
    ...extra
  })
  return { calls, options }
}

t.test('parseAttestationMode', async (tt) => {
  for (const mode of ['auto', 'tsm', 'sev-guest', 'sev', 'simulated']) tt.equal(parseAttestationMode(mode), mode)
  tt.equal(parseAttestationMode(' SEV-Guest\n'), 'sev-guest')
  for (const bad of ['', 'fake', 'sev_guest', 'sevguest', 'autos']) tt.equal(parseAttestationMode(bad), null, JSON.stringify(bad))
})

t.test('auto picks tsm when the probe says it is usable', async (tt) => {
  const h = harness({ tsm: true, 'sev-guest': true, sev: true })
  const { provider, tried } = await selectQuoteProvider(h.options('auto'))
  tt.equal(provider.backend, 'tsm')
  tt.same(tried, ['tsm /sys/kernel/config/tsm/report: provider sev_guest'])
  tt.same(h.calls, ['probe /sys/kernel/config/tsm/report', 'tsm /sys/kernel/config/tsm/report'])
})

t.test('auto falls to /dev/sev-guest, then /dev/sev', async (tt) => {
  const a = harness({ 'sev-guest': true, sev: true })
  const first = await selectQuoteProvider(a.options('auto'))
  tt.equal(first.provider.backend, 'sev-guest')
  tt.equal(first.tried.length, 2)
  tt.equal(first.tried[1], 'sev-guest /dev/sev-guest: present')
  tt.same(a.calls, ['probe /sys/kernel/config/tsm/report', 'exists /dev/sev-guest', 'ioctl sev-guest /dev/sev-guest'])

  const b = harness({ sev: true })
  const second = await selectQuoteProvider(b.options('auto'))
  tt.equal(second.provider.backend, 'sev')
  tt.same(second.tried.slice(1), ['sev-guest /dev/sev-guest: not found', 'sev /dev/sev: present'])
  tt.same(b.calls.filter((c) => !c.startsWith('probe') && !c.startsWith('exists')), ['ioctl sev /dev/sev'])
})

t.test('auto with nothing present fails clearly and never simulates', async (tt) => {
  const h = harness({})
  const err = await selectQuoteProvider(h.options('auto')).then(() => null, (e: unknown) => e)
  tt.match(err, { code: 'ERR_SNP_DEVICE_UNAVAILABLE', details: { mode: 'auto' } })
  const message = err instanceof Error ? err.message : ''
  for (const path of ['/sys/kernel/config/tsm/report', '/dev/sev-guest', '/dev/sev']) tt.match(message, path, `names ${path}`)
  tt.match(message, '--attestation simulated')
  tt.match(message, 'SKR_ATTESTATION=simulated')
  tt.notOk(h.calls.some((c) => c === 'simulated' || c.startsWith('tsm ') || c.startsWith('ioctl')), 'no factory invoked')
})

t.test('paths are configurable', async (tt) => {
  const seen: string[] = []
  const { provider, tried } = await selectQuoteProvider({
    mode: 'auto',
    tsmRoot: '/x/tsm',
    sevGuestPath: '/x/sev-guest',
    sevPath: '/x/sev',
    probeTsm: async (root) => { seen.push(root); return { usable: false, reason: `${root}: no` } },
    exists: async (path) => { seen.push(path); return path === '/x/sev' },
    factories: { ioctl: (device, path) => { seen.push(`${device}@${path}`); return stub(device) } }
  })
  tt.equal(provider.backend, 'sev')
  tt.same(seen, ['/x/tsm', '/x/sev-guest', '/x/sev', 'sev@/x/sev'])
  tt.equal(tried.length, 3)
})

t.test('explicit modes use only their own backend and do not fall through', async (tt) => {
  const all = harness({ tsm: true, 'sev-guest': true, sev: true })
  for (const mode of ['tsm', 'sev-guest', 'sev'] as const) {
    all.calls.length = 0
    const { provider, tried } = await selectQuoteProvider(all.options(mode))
    tt.equal(provider.backend, mode)
    tt.equal(tried.length, 1)
    tt.equal(all.calls.length, 2, `${mode}: one probe, one factory`)
  }

  const none = harness({ tsm: false, 'sev-guest': false, sev: true })
  await tt.rejects(selectQuoteProvider(none.options('tsm')),
    { code: 'ERR_SNP_DEVICE_UNAVAILABLE', message: /`--attestation tsm` was requested.*\/sys\/kernel\/config\/tsm\/report.*--attestation auto/s, details: { mode: 'tsm' } })
  await tt.rejects(selectQuoteProvider(none.options('sev-guest')),
    { code: 'ERR_SNP_DEVICE_UNAVAILABLE', message: /\/dev\/sev-guest: not found/, details: { mode: 'sev-guest', tried: 'sev-guest /dev/sev-guest: not found' } })
  tt.same(none.calls, ['probe /sys/kernel/config/tsm/report', 'exists /dev/sev-guest'], 'no fall-through to /dev/sev, no factory')
})

t.test('simulated', async (tt) => {
  const h = harness({ tsm: true })
  const { provider, tried } = await selectQuoteProvider(h.options('simulated'))
  tt.equal(provider.simulated, true)
  tt.same(tried, ['simulated'])
  tt.same(h.calls, ['simulated'], 'no hardware probed')

  const bare = harness({ tsm: true }, { factories: {} })
  await tt.rejects(selectQuoteProvider(bare.options('simulated')),
    { code: 'ERR_SNP_DEVICE_UNAVAILABLE', message: /no simulator was supplied/, details: { mode: 'simulated' } })
  tt.same(bare.calls, [])
})

t.test('a factory that returns the wrong kind of provider is refused', async (tt) => {
  const h = harness({ 'sev-guest': true }, { factories: { ioctl: () => stub('simulated') } })
  await tt.rejects(selectQuoteProvider(h.options('auto')), TypeError)
  const s = harness({}, { factories: { simulated: async () => stub('tsm') } })
  await tt.rejects(selectQuoteProvider(s.options('simulated')), TypeError)
})

t.test('factory failures: typed errors pass through, others become ERR_SNP_DEVICE_UNAVAILABLE', async (tt) => {
  const untyped = harness({ 'sev-guest': true }, {
    factories: { ioctl: () => { throw Object.assign(new Error('x'), { code: 'NOPE' }) } }
  })
  await tt.rejects(selectQuoteProvider(untyped.options('sev-guest')),
    { code: 'ERR_SNP_DEVICE_UNAVAILABLE', message: 'the sev-guest backend for /dev/sev-guest could not be started', details: { backend: 'sev-guest' } })
  const passes = harness({ tsm: true }, { factories: { tsm: () => { throw new SnpFirmwareError('dead') } } })
  await tt.rejects(selectQuoteProvider(passes.options('tsm')), { code: 'ERR_SNP_FIRMWARE', message: 'dead' })
})

t.test('an unknown mode is a programmer error', async (tt) => {
  await tt.rejects(selectQuoteProvider({ mode: 'fake' as unknown as SelectOptions['mode'] }), TypeError)
})

t.test('defaults: real probes over the filesystem, the real tsm factory', async (tt) => {
  const base = await fsp.mkdtemp(join(tmpdir(), 'skr-select-'))
  tt.teardown(async () => { await fsp.rm(base, { recursive: true, force: true }) })
  const device = join(base, 'sev-guest')
  await fsp.writeFile(device, '')
  const missing = join(base, 'missing')

  const picked = await selectQuoteProvider({
    mode: 'auto',
    tsmRoot: missing,
    sevGuestPath: device,
    sevPath: missing,
    factories: { ioctl: (d) => stub(d) }
  })
  tt.equal(picked.provider.backend, 'sev-guest')
  tt.match(picked.tried[0], /^tsm .*ENOENT/)

  await tt.rejects(selectQuoteProvider({ mode: 'auto', tsmRoot: missing, sevGuestPath: missing, sevPath: join(device, 'x') }),
    { code: 'ERR_SNP_DEVICE_UNAVAILABLE' }, 'ENOTDIR counts as absent')

  const tsm = await selectQuoteProvider({ mode: 'tsm', probeTsm: async () => ({ usable: true, reason: 'ok' }) })
  tt.equal(tsm.provider.backend, 'tsm')
  tt.equal(tsm.provider.simulated, false)

  // The real ioctl module may or may not be built here; either way the outcome is a provider of
  // the right kind or a typed error, never a raw module-loading error.
  const ioctl = await selectQuoteProvider({ mode: 'sev-guest', sevGuestPath: join(base, 'no-device'), exists: async () => true })
    .then((r) => r.provider.backend, (e: unknown) => (e as { code?: unknown }).code)
  tt.ok(ioctl === 'sev-guest' || ioctl === 'ERR_SNP_DEVICE_UNAVAILABLE' || ioctl === 'ERR_SNP_FIRMWARE', `default ioctl factory: ${String(ioctl)}`)
})
