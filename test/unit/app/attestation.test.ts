import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import t from 'tap'
import { buildAttestation } from '../../../src/app/attestation.ts'
import type { BuiltAttestation } from '../../../src/app/attestation.ts'
import { thimDocument } from '../../../src/simulated/emulated-chain.ts'
import { loadOrCreateEmulatedChain } from '../../../src/simulated/emulated-chain-cache.ts'
import { loadConfig } from '../../../src/config/config.ts'
import { createBearerIssuer } from '../../../src/emulator/bearer.ts'
import { startImdsEmulator } from '../../../src/emulator/imds.ts'
import { startMaaEmulator } from '../../../src/emulator/maa.ts'
import { createLocalPki } from '../../../src/emulator/pki.ts'
import { createMetricsRegistry } from '../../../src/observability/registry.ts'
import { parseReport } from '../../../src/snp/abi.ts'
import { needsVectors, vector } from '../../helpers/vectors.ts'

// The shared test chain is generated once per machine; copying its cache file into a fresh
// directory exercises SKR_SIMULATED_CACHE_DIR without paying for RSA-4096 key generation again.
const SHARED = join(tmpdir(), 'skr-test-emulated-chain')
const sharedChain = await loadOrCreateEmulatedChain({ cacheDir: SHARED })
const work = await mkdtemp(join(tmpdir(), 'skr-attest-build-'))
t.teardown(async () => { await rm(work, { recursive: true, force: true }) })

let dirs = 0
async function freshDir (name: string): Promise<string> {
  const dir = join(work, `${name}-${dirs++}`)
  await mkdir(dir, { recursive: true })
  return dir
}

async function simulatedCacheDir (): Promise<string> {
  const dir = await freshDir('cache')
  await copyFile(join(SHARED, 'emulated-amd-chain.json'), join(dir, 'emulated-amd-chain.json'))
  return dir
}

function capture (): { log: pino.Logger, lines: () => Array<Record<string, unknown>> } {
  const out: string[] = []
  const stream = new Writable({ write (chunk: Buffer, _enc, cb) { out.push(chunk.toString('utf8')); cb() } })
  return { log: pino({ level: 'debug' }, stream), lines: () => out.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) }
}

function cleanup (built: BuiltAttestation): void {
  t.teardown(async () => {
    built.service.close()
    await Promise.all(Object.values(built.upstreams).map(async (u) => { await u.close() }))
  })
}

const runtimeData = Buffer.from('{"keys":[]}')

t.test('simulated end to end: report, combined, status and an MAA token', async (t) => {
  const cacheDir = await simulatedCacheDir()
  const root = await freshDir('root')
  const config = loadConfig([], { SKR_ATTESTATION: 'simulated', SKR_SIMULATED_CACHE_DIR: cacheDir })
  const logs = capture()
  const pki = await createLocalPki()
  const built = await buildAttestation(config, { root, log: logs.log, extraCa: [pki.caCertPem] })
  cleanup(built)
  await built.ready
  t.equal(built.provider?.backend, 'simulated')
  t.equal(built.simulatedChain?.arkFingerprint, sharedChain.arkFingerprint, 'the chain came from the configured cache dir')
  t.same(await built.service.status(), { backend: 'simulated', simulated: true, problems: [] })

  const raw = parseReport(await built.service.rawReport(runtimeData))
  t.equal(raw.reportData.subarray(0, 32).toString('hex'), createHash('sha256').update(runtimeData).digest('hex'))
  const combined = await built.service.combined(runtimeData)
  t.equal(combined.endorsedTcb, '7308000000000003')
  t.equal(Buffer.from(combined.endorsements, 'base64').toString(), sharedChain.vcekPem + sharedChain.chainPem)

  const emulator = await startMaaEmulator({ tls: await pki.issue(['127.0.0.1']), trustedArkFingerprints: [sharedChain.arkFingerprint] })
  t.teardown(emulator.close)
  const token = await built.service.maaToken(emulator.endpoint, runtimeData)
  t.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/)

  const lines = logs.lines()
  t.ok(lines.some((l) => l.level === 40 && /attestation is SIMULATED/.test(String(l.msg))), 'a loud warning')
  t.ok(lines.every((l) => l.component === undefined || l.component === 'attest'))
  t.notOk(lines.some((l) => JSON.stringify(l).includes(runtimeData.toString('base64')) || JSON.stringify(l).includes('{\\"keys\\"')), 'no runtime data in logs')
})

const hasDevice = existsSync('/dev/sev-guest') || existsSync('/dev/sev')
t.test('auto on a machine without SEV-SNP: no throw, calls fail with ERR_SNP_DEVICE_UNAVAILABLE, status says why',
  { skip: hasDevice ? 'this machine has an SEV-SNP guest device' : false }, async (t) => {
  const config = loadConfig([], { SKR_ATTESTATION: 'auto', SKR_TSM_ROOT: join(work, 'no-tsm') })
  const built = await buildAttestation(config, { root: await freshDir('root') })
  cleanup(built)
  await built.ready
  t.equal(built.provider, null)
  t.equal(built.simulatedChain, null)
  await t.rejects(built.service.rawReport(runtimeData), { code: 'ERR_SNP_DEVICE_UNAVAILABLE' })
  await t.rejects(built.service.combined(runtimeData), { code: 'ERR_SNP_DEVICE_UNAVAILABLE' })
  const status = await built.service.status()
  t.equal(status.backend, null)
  t.equal(status.simulated, false)
  t.ok(status.problems.length > 0)
  t.match(status.problems[0], /no SEV-SNP attestation interface found/)
})

t.test('simulated with LocalTHIM pointed at the IMDS emulator (the demo\'s wiring)', async (t) => {
  const imds = await startImdsEmulator({ thim: () => thimDocument(sharedChain), tokenIssuer: await createBearerIssuer() })
  t.teardown(imds.close)
  const args = JSON.stringify({ certcache: { endpoint_type: 'LocalTHIM', endpoint: `${imds.host}/metadata/THIM/amd/certification` } })
  const config = loadConfig([], { SKR_ATTESTATION: 'simulated', SKR_SIMULATED_CACHE_DIR: await simulatedCacheDir(), SkrSideCarArgs: args })
  const built = await buildAttestation(config, { root: await freshDir('root') })
  cleanup(built)
  await built.ready
  t.equal(imds.thimRequests, 1, 'fetched at start-up')
  t.same((await built.service.status()).problems, [])
  const c = await built.service.combined(runtimeData)
  t.equal(c.endorsedTcb, '7308000000000003')
  t.equal(imds.thimRequests, 1, 'then cached')
})

t.test('deferWarmUp: the start-up chain fetch waits for start()', async (t) => {
  const imds = await startImdsEmulator({ thim: () => thimDocument(sharedChain), tokenIssuer: await createBearerIssuer() })
  t.teardown(imds.close)
  const args = JSON.stringify({ certcache: { endpoint_type: 'LocalTHIM', endpoint: `${imds.host}/metadata/THIM/amd/certification` } })
  const config = loadConfig([], { SKR_ATTESTATION: 'simulated', SKR_SIMULATED_CACHE_DIR: await simulatedCacheDir(), SkrSideCarArgs: args })
  const built = await buildAttestation(config, { root: await freshDir('root'), deferWarmUp: true })
  cleanup(built)
  let ready = false
  void built.ready.then(() => { ready = true })
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(imds.thimRequests, 0, 'nothing fetched yet')
  t.equal(ready, false)
  t.match((await built.service.status()).problems, [/it is fetched on the first request/])
  await Promise.all([built.start(), built.start()])
  t.equal(ready, true, 'ready settles with start()')
  t.equal(imds.thimRequests, 1, 'fetched once')
  t.same((await built.service.status()).problems, [])
})

t.test('a THIM that does not answer at start-up is not fatal and is retried on the first request', async (t) => {
  const imds = await startImdsEmulator({ thim: () => thimDocument(sharedChain), tokenIssuer: await createBearerIssuer(), faults: { thimStatus: 404 } })
  t.teardown(imds.close)
  const args = JSON.stringify({ certcache: { endpoint_type: 'LocalTHIM', endpoint: `${imds.host}/metadata/THIM/amd/certification` } })
  const config = loadConfig([], { SKR_ATTESTATION: 'simulated', SKR_SIMULATED_CACHE_DIR: await simulatedCacheDir(), SkrSideCarArgs: args })
  const built = await buildAttestation(config, { root: await freshDir('root') })
  cleanup(built)
  await built.ready
  t.match((await built.service.status()).problems, [/^no VCEK certificate chain yet: /])
  imds.faults.thimStatus = undefined
  t.equal((await built.service.combined(runtimeData)).endorsedTcb, '7308000000000003')
  t.same((await built.service.status()).problems, [])
})

t.test('the UVM security context: policy into HOST_DATA, reference info into combined; the host\'s chain is ignored when simulated', needsVectors(), async (t) => {
  const root = await freshDir('root')
  const dir = join(root, 'security-context-test')
  await mkdir(dir)
  const policy = 'package policy\nallow := true\n'
  await writeFile(join(dir, 'security-policy-base64'), Buffer.from(policy).toString('base64'))
  const referenceInfo = vector('azure-aci-milan', 'body.uvm_reference_info.bin')
  await writeFile(join(dir, 'reference-info-base64'), referenceInfo.toString('base64'))
  await writeFile(join(dir, 'host-amd-cert-base64'), vector('azure-aci-milan', 'security-context-other-chip', 'host-amd-cert-base64'))
  const config = loadConfig([], { SKR_ATTESTATION: 'simulated', SKR_SIMULATED_CACHE_DIR: await simulatedCacheDir() })
  const built = await buildAttestation(config, { root })
  cleanup(built)
  await built.ready
  t.equal(built.securityContext.dir, dir)
  t.not(built.securityContext.hostAmdCert, null)
  const c = await built.service.combined(runtimeData)
  t.equal(c.uvmEndorsements, referenceInfo.toString('base64'))
  t.equal(Buffer.from(c.endorsements, 'base64').toString(), sharedChain.vcekPem + sharedChain.chainPem, 'the emulated chain, not the host\'s')
  t.equal(parseReport(Buffer.from(c.evidence, 'base64')).hostData.toString('hex'), createHash('sha256').update(policy).digest('hex'))
})

t.test('an unusable security context is reported, not fatal', async (t) => {
  const root = await freshDir('root')
  await mkdir(join(root, 'security-context-bad'))
  await writeFile(join(root, 'security-context-bad', 'host-amd-cert-base64'), '!!! not base64 !!!')
  const config = loadConfig([], { SKR_ATTESTATION: 'simulated', SKR_SIMULATED_CACHE_DIR: await simulatedCacheDir() })
  const built = await buildAttestation(config, { root })
  cleanup(built)
  await built.ready
  t.match((await built.service.status()).problems, [/^security context unusable: .*host-amd-cert-base64/])
  t.equal((await built.service.combined(runtimeData)).endorsedTcb, '7308000000000003', 'attestation still works')
})

t.test('AllowTestingMismatchedTCB sends the first request down the refresh path', async (t) => {
  const logs = capture()
  const config = loadConfig([], { SKR_ATTESTATION: 'simulated', SKR_SIMULATED_CACHE_DIR: await simulatedCacheDir(), AllowTestingMismatchedTCB: 'true' })
  const built = await buildAttestation(config, { root: await freshDir('root'), log: logs.log })
  cleanup(built)
  await built.ready
  t.equal((await built.service.combined(runtimeData)).endorsedTcb, '7308000000000003')
  const msgs = logs.lines().map((l) => String(l.msg))
  t.ok(msgs.includes('REPORTED_TCB differs from the cached chain; refreshing it'))
  t.ok(msgs.some((m) => m.startsWith('TESTING')))
})

t.test('an unreadable SKR_EXTRA_CA_CERTS is a configuration error', async (t) => {
  const config = loadConfig([], { SKR_ATTESTATION: 'simulated', SKR_SIMULATED_CACHE_DIR: await simulatedCacheDir(), SKR_EXTRA_CA_CERTS: join(work, 'missing.pem') })
  await t.rejects(buildAttestation(config, { root: await freshDir('root') }), { code: 'ERR_CONFIG_INVALID', message: /SKR_EXTRA_CA_CERTS/ })
})

t.test('SKR_EXTRA_CA_CERTS roots reach the MAA upstream', async (t) => {
  const pki = await createLocalPki()
  const caFile = join(await freshDir('ca'), 'ca.pem')
  await writeFile(caFile, pki.caCertPem)
  const config = loadConfig([], { SKR_ATTESTATION: 'simulated', SKR_SIMULATED_CACHE_DIR: await simulatedCacheDir(), SKR_EXTRA_CA_CERTS: caFile })
  const built = await buildAttestation(config, { root: await freshDir('root') })
  cleanup(built)
  const emulator = await startMaaEmulator({ tls: await pki.issue(['127.0.0.1']), trustedArkFingerprints: [sharedChain.arkFingerprint] })
  t.teardown(emulator.close)
  t.match(await built.service.maaToken(emulator.endpoint, runtimeData), /^[\w-]+\./)
})

t.test('the metrics given reach the VCEK chain store (vcek_chain) and the MAA signing-key cache (maa_keys)', async (t) => {
  const metrics = createMetricsRegistry({ defaultMetrics: false })
  const pki = await createLocalPki()
  const config = loadConfig([], { SKR_ATTESTATION: 'simulated', SKR_SIMULATED_CACHE_DIR: await simulatedCacheDir() })
  const built = await buildAttestation(config, { root: await freshDir('root'), extraCa: [pki.caCertPem], metrics })
  cleanup(built)
  await built.ready
  const emulator = await startMaaEmulator({ tls: await pki.issue(['127.0.0.1']), trustedArkFingerprints: [sharedChain.arkFingerprint] })
  t.teardown(emulator.close)
  await built.service.combined(runtimeData)
  await built.service.maaToken(emulator.endpoint, runtimeData)
  await built.service.maaToken(emulator.endpoint, runtimeData)
  const lines = (await metrics.render()).split('\n').filter(line => line.startsWith('skr_cache_lookups_total{') && !line.endsWith(' 0'))
  t.same(lines.sort(), [
    'skr_cache_lookups_total{cache="maa_keys",result="hit"} 1',
    'skr_cache_lookups_total{cache="maa_keys",result="miss"} 1',
    'skr_cache_lookups_total{cache="vcek_chain",result="hit"} 3',
    'skr_cache_lookups_total{cache="vcek_chain",result="miss"} 1'
  ], 'the start-up fetch missed, every request after it hit; /certs was fetched once')
})

t.test('every upstream is routed by the configuration\'s proxy settings (config.proxy), not by process.env', async (t) => {
  const config = loadConfig([], { SKR_ATTESTATION: 'simulated', SKR_SIMULATED_CACHE_DIR: await simulatedCacheDir(), HTTPS_PROXY: 'socks5://proxy.corp:1080' })
  const built = await buildAttestation(config, { root: await freshDir('root') })
  cleanup(built)
  await built.ready
  t.same(Object.keys(built.upstreams).sort(), ['azcache', 'kds', 'maa', 'thim'])
  for (const [name, upstream] of Object.entries(built.upstreams)) t.equal(upstream.proxy, config.proxy, `${name} has the config's settings`)
  // The unusable HTTPS_PROXY fails the MAA call before anything is sent: no network is involved.
  await t.rejects(built.service.maaToken('sharedeus.eus.attest.azure.net', runtimeData),
    { code: 'ERR_UPSTREAM_UNAVAILABLE', details: { upstream: 'maa', errorCode: 'PROXY_UNUSABLE', proxyVariable: 'HTTPS_PROXY' } })

  const direct = loadConfig([], { SKR_ATTESTATION: 'simulated', SKR_SIMULATED_CACHE_DIR: await simulatedCacheDir() })
  const plain = await buildAttestation(direct, { root: await freshDir('root') })
  cleanup(plain)
  for (const [name, upstream] of Object.entries(plain.upstreams)) t.equal(upstream.proxy, direct.proxy, `${name}: no proxy variables in the config, none used`)
})
