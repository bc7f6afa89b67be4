import { createHash } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { createAttestationService } from '../../../src/attest/attestation-service.ts'
import type { AttestationServiceDeps } from '../../../src/attest/attestation-service.ts'
import { createCollateralStore } from '../../../src/collateral/store.ts'
import type { CollateralFetch } from '../../../src/collateral/store.ts'
import type { VcekCollateral } from '../../../src/collateral/types.ts'
import { thimDocument } from '../../../src/simulated/emulated-chain.ts'
import { loadOrCreateEmulatedChain } from '../../../src/simulated/emulated-chain-cache.ts'
import { parseThimDocument } from '../../../src/collateral/thim.ts'
import { createLocalPki } from '../../../src/emulator/pki.ts'
import { startMaaEmulator } from '../../../src/emulator/maa.ts'
import { SnpDeviceUnavailable, UpstreamUnavailable } from '../../../src/errors.ts'
import { Upstream } from '../../../src/http/upstream.ts'
import { createMaaClient } from '../../../src/maa/client.ts'
import type { MaaClient } from '../../../src/maa/client.ts'
import { parseReport } from '../../../src/snp/abi.ts'
import type { QuoteProvider } from '../../../src/snp/provider.ts'
import { createSimulatedProvider } from '../../../src/simulated/provider.ts'
import { emptySecurityContext } from '../../../src/uvm/security-context.ts'
import { needsVectors, vectorText } from '../../helpers/vectors.ts'

const chain = await loadOrCreateEmulatedChain({ cacheDir: join(tmpdir(), 'skr-test-emulated-chain') })
const simulated = createSimulatedProvider({ chain, securityPolicy: 'package policy\nallow := true\n' })
const TCB = chain.reportedTcb
const OTHER_TCB = 0x7308000000000004n
const runtimeData = Buffer.from(JSON.stringify({ keys: [{ kty: 'RSA', kid: 'k', e: 'AQAB', n: 'abc' }] }))
const good = (): VcekCollateral => parseThimDocument(thimDocument(chain), 'thim')

const NO_CONTEXT = emptySecurityContext()

/** The simulated provider, counting calls; `patch` rewrites the n-th report (0-based) before it is returned. */
function countingProvider (patch?: (report: Buffer, call: number) => void): QuoteProvider & { calls: number } {
  const p = {
    backend: simulated.backend,
    simulated: simulated.simulated,
    calls: 0,
    async getReport (reportData: Uint8Array, vmpl?: number) {
      const quote = await simulated.getReport(reportData, vmpl)
      const report = Buffer.from(quote.report)
      patch?.(report, p.calls)
      p.calls++
      return { ...quote, report }
    }
  }
  return p
}

/** A fetch that counts calls and answers from a list (the last answer repeats). */
function countingFetch (...answers: Array<VcekCollateral | Error>): CollateralFetch & { calls: number } {
  const f = Object.assign(async (): Promise<VcekCollateral> => {
    const answer = answers[Math.min(f.calls, answers.length - 1)]
    f.calls++
    if (answer === undefined) throw new Error('no answer')
    if (answer instanceof Error) throw answer
    return { ...answer }
  }, { calls: 0 })
  return f
}

const unusedMaa: MaaClient = { attest: async () => { throw new Error('MAA must not be called') } }

function service (over: Partial<AttestationServiceDeps> & { initial?: VcekCollateral | null, fetch?: CollateralFetch } = {}): ReturnType<typeof createAttestationService> {
  const collateral = over.collateral ?? createCollateralStore({ initial: over.initial === undefined ? good() : over.initial, fetch: over.fetch ?? countingFetch(good()) })
  const s = createAttestationService({
    provider: countingProvider(),
    securityContext: NO_CONTEXT,
    maa: unusedMaa,
    verifyReports: true,
    trustedArkFingerprints: [chain.arkFingerprint],
    ...over,
    collateral
  })
  t.teardown(() => { s.close() })
  return s
}

const setTcb = (tcb: bigint) => (report: Buffer): void => { report.writeBigUInt64LE(tcb, 0x180) }

t.test('rawReport: REPORT_DATA is sha256(runtime data) then 32 zero bytes; no collateral needed', async (t) => {
  const provider = countingProvider()
  const fetch = countingFetch(good())
  const s = service({ provider, initial: null, fetch })
  const raw = await s.rawReport(runtimeData)
  t.equal(raw.length, 1184)
  const report = parseReport(raw)
  t.same(report.reportData, Buffer.concat([createHash('sha256').update(runtimeData).digest(), Buffer.alloc(32)]))
  t.equal(provider.calls, 1)
  t.equal(fetch.calls, 0)
})

t.test('combined: the reference\'s fields, decodable to the report and the PEM chain', async (t) => {
  const s = service({ securityContext: { ...NO_CONTEXT, referenceInfo: Buffer.from([0xd2, 0x84]), referenceInfoBase64: '0oQ=' } })
  const c = await s.combined(runtimeData)
  t.equal(c.endorsedTcb, '7308000000000003')
  t.equal(Buffer.from(c.endorsements, 'base64').toString('utf8'), chain.vcekPem + chain.chainPem)
  const report = parseReport(Buffer.from(c.evidence, 'base64'))
  t.equal(report.reportedTcb, TCB)
  t.equal(report.reportData.subarray(0, 32).toString('hex'), createHash('sha256').update(runtimeData).digest('hex'))
  t.equal(c.uvmEndorsements, '0oQ=', 'the reference info base64 as the UVM gave it')
  const bare = await service().combined(runtimeData)
  t.equal(bare.uvmEndorsements, '', 'empty when the UVM gave none')
})

t.test('TCB moved: a chain for another TCB is refreshed once and the request succeeds', async (t) => {
  const fetch = countingFetch(good())
  const provider = countingProvider()
  const s = service({ provider, initial: { ...good(), tcbm: OTHER_TCB, source: 'security-context' }, fetch })
  const c = await s.combined(runtimeData)
  t.equal(c.endorsedTcb, '7308000000000003')
  t.equal(fetch.calls, 1)
  t.equal(provider.calls, 1)
  await s.combined(runtimeData)
  t.equal(fetch.calls, 1, 'then cached')
})

t.test('still mismatched after the refresh: one new report, then ERR_TCB_MISMATCH naming both values', async (t) => {
  const fetch = countingFetch({ ...good(), tcbm: OTHER_TCB })
  const provider = countingProvider()
  const s = service({ provider, initial: { ...good(), tcbm: OTHER_TCB }, fetch })
  await t.rejects(s.combined(runtimeData), {
    code: 'ERR_TCB_MISMATCH',
    message: 'report REPORTED_TCB 7308000000000003 does not match the certified chain\'s TCBM 7308000000000004 after refreshing the chain from THIM'
  })
  t.equal(provider.calls, 2, 'the report was read again once')
  t.equal(fetch.calls, 1, 'the chain was not fetched again for the same TCB')
  await t.rejects(s.maaToken('127.0.0.1:1', runtimeData), { code: 'ERR_TCB_MISMATCH' }, 'MAA takes the same path (and is never called)')
})

t.test('the TCB moved between the two reports: the chain is fetched for the new one', async (t) => {
  const NEWER = 0x7308000000000005n
  const fetch = countingFetch({ ...good(), tcbm: OTHER_TCB }, { ...good(), tcbm: NEWER })
  const provider = countingProvider((report, call) => { setTcb(call === 0 ? 0x7308000000000009n : NEWER)(report) })
  const s = service({ provider, initial: { ...good(), tcbm: OTHER_TCB }, fetch })
  const c = await s.combined(runtimeData)
  t.equal(c.endorsedTcb, '7308000000000005')
  t.equal(parseReport(Buffer.from(c.evidence, 'base64')).reportedTcb, NEWER, 'the evidence is the second report')
  t.equal(provider.calls, 2)
  t.equal(fetch.calls, 2)
})

t.test('a report for other REPORT_DATA is refused (ERR_SNP_FIRMWARE)', async (t) => {
  const provider = countingProvider((report) => { report[0x50] = (report[0x50] ?? 0) ^ 0xff })
  const s = service({ provider })
  await t.rejects(s.rawReport(runtimeData), { code: 'ERR_SNP_FIRMWARE', message: /device returned a report for other data/ })
  await t.rejects(s.combined(runtimeData), { code: 'ERR_SNP_FIRMWARE' })
})

t.test('garbage from the device is ERR_SNP_REPORT_INVALID', async (t) => {
  const provider: QuoteProvider = { backend: 'tsm', simulated: false, getReport: async () => ({ report: Buffer.alloc(100), backend: 'tsm' }) }
  await t.rejects(service({ provider }).rawReport(runtimeData), { code: 'ERR_SNP_REPORT_INVALID' })
})

t.test('an aborted request stops before the device is asked', async (t) => {
  const provider = countingProvider()
  const ac = new AbortController()
  ac.abort(new Error('deadline'))
  await t.rejects(service({ provider }).combined(runtimeData, ac.signal), { message: 'deadline' })
  t.equal(provider.calls, 0)
})

t.test('no backend: every call fails with the selection error and status says why', async (t) => {
  const err = new SnpDeviceUnavailable('no SEV-SNP attestation interface found (tried tsm …)')
  const s = service({ provider: null, providerError: err, initial: null })
  await t.rejects(s.rawReport(runtimeData), err)
  await t.rejects(s.combined(runtimeData), err)
  await t.rejects(s.maaToken('127.0.0.1:1', runtimeData), err)
  t.same(await s.status(), { backend: null, simulated: false, problems: [err.message] })
  await s.warmUp()
  const bare = service({ provider: null })
  await t.rejects(bare.rawReport(runtimeData), { code: 'ERR_SNP_DEVICE_UNAVAILABLE' })
})

t.test('status and warmUp: the first chain is fetched at start-up, failures are shown, not thrown', async (t) => {
  const ready = service()
  t.same(await ready.status(), { backend: 'simulated', simulated: true, problems: [] })

  const fetch = countingFetch(new UpstreamUnavailable('thim 169.254.169.254: connection refused'), good())
  const s = service({ initial: null, fetch, startupProblems: ['security context unusable: x'] })
  t.same((await s.status()).problems, ['security context unusable: x', 'no VCEK certificate chain yet: it is fetched on the first request'])
  await s.warmUp()
  t.same((await s.status()).problems, ['security context unusable: x', 'no VCEK certificate chain yet: thim 169.254.169.254: connection refused'])
  t.equal(fetch.calls, 1)
  const c = await s.combined(runtimeData)
  t.equal(c.endorsedTcb, '7308000000000003', 'the first request retries')
  t.same((await s.status()).problems, ['security context unusable: x'])

  const broken = countingProvider((report) => { report.fill(0) })
  const w = service({ provider: broken, initial: null })
  await w.warmUp()
  t.match((await w.status()).problems, [/^no VCEK certificate chain yet: report version 0/])
})

t.test('maaToken against the MAA emulator, evidence verified first', async (t) => {
  const pki = await createLocalPki()
  const emulator = await startMaaEmulator({ tls: await pki.issue(['127.0.0.1']), trustedArkFingerprints: [chain.arkFingerprint] })
  t.teardown(emulator.close)
  const upstream = new Upstream({ name: 'maa', ca: pki.caCertPem })
  t.teardown(async () => { await upstream.close() })
  const maa = createMaaClient({ upstream, apiVersion: '2020-10-01', userAgent: 'skr-test', verifyToken: true })

  t.test('a token bound to the runtime data', async (t) => {
    const s = service({ maa })
    const token = await s.maaToken(emulator.endpoint, runtimeData)
    const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>
    t.equal(claims['x-ms-sevsnpvm-reportdata'], createHash('sha256').update(runtimeData).digest('hex') + '0'.repeat(64))
    t.equal(claims.iss, emulator.issuer)
    const again = await s.maaToken(emulator.endpoint, runtimeData)
    t.type(again, 'string', 'the memoised chain serves a second call')
  })

  t.test('another chip\'s VCEK fails verification before anything reaches MAA', needsVectors(), async (t) => {
    const doc = JSON.parse(Buffer.from(vectorText('azure-aci-milan', 'security-context-other-chip', 'host-amd-cert-base64'), 'base64').toString('utf8')) as unknown
    const other = parseThimDocument(doc, 'security-context')
    t.equal(other.tcbm, TCB, 'same TCB, so no refresh hides the problem')
    const before = emulator.requests
    const s = service({ maa, initial: other, trustedArkFingerprints: [chain.arkFingerprint, '69:D0:63:B4:53:44:D2:6A:2E:94:E1:F4:21:0D:E4:9E:F5:55:30:82:87:D4:C1:74:44:5C:95:63:9A:54:0B:CD'] })
    await t.rejects(s.maaToken(emulator.endpoint, runtimeData), { code: 'ERR_SNP_REPORT_UNVERIFIED' })
    t.equal(emulator.requests, before, 'MAA request count unchanged')
  })

  t.test('with verification off the evidence goes to MAA, which refuses it', needsVectors(), async (t) => {
    const doc = JSON.parse(Buffer.from(vectorText('azure-aci-milan', 'security-context-other-chip', 'host-amd-cert-base64'), 'base64').toString('utf8')) as unknown
    const before = emulator.requests
    const s = service({ maa, initial: parseThimDocument(doc, 'security-context'), verifyReports: false })
    await t.rejects(s.maaToken(emulator.endpoint, runtimeData), { code: 'ERR_UPSTREAM_REJECTED' })
    t.equal(emulator.requests, before + 1)
  })
})

t.test('maaToken hands MAA the report, the PEM chain and the UVM reference info', async (t) => {
  const seen: Array<Parameters<MaaClient['attest']>> = []
  const maa: MaaClient = { attest: async (...args) => { seen.push(args); return { token: 'a.b.c', claims: {} } } }
  const referenceInfo = Buffer.from([0xd2, 0x84, 1, 2])
  const s = service({ maa, securityContext: { ...NO_CONTEXT, referenceInfo, referenceInfoBase64: referenceInfo.toString('base64') } })
  const ac = new AbortController()
  t.equal(await s.maaToken('maa.example:443', runtimeData, ac.signal), 'a.b.c')
  const [endpoint, input, signal] = seen[0] ?? []
  t.equal(endpoint, 'maa.example:443')
  t.equal(input?.vcekCertChainPem, chain.vcekPem + chain.chainPem)
  t.equal(input?.uvmReferenceInfo, referenceInfo)
  t.equal(input?.runtimeData, runtimeData)
  t.equal(input?.report.length, 1184)
  t.equal(signal, ac.signal)
})
