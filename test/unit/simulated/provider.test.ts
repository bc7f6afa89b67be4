import { createHash, verify } from 'node:crypto'
import t from 'tap'
import { generateEmulatedChain } from '../../../src/simulated/emulated-chain-generator.ts'
import { parseReport, REPORT_SIZE, SIGNED_SIZE, signatureP1363 } from '../../../src/snp/abi.ts'
import { createSimulatedProvider, simulatedMeasurement } from '../../../src/simulated/provider.ts'
import type { SimulatedOptions } from '../../../src/simulated/provider.ts'
import { verifyReport } from '../../../src/certs/report-verify.ts'

const NOW = new Date('2025-03-01T12:00:00Z')
// The one RSA-4096 chain of this file: key generation is the slow part.
const chain = await generateEmulatedChain({ now: NOW })
const trusted = { trustedArkFingerprints: [chain.arkFingerprint], now: NOW }
const POLICY = 'package policy\napi_version := "0.10.0"\nallow_all := true\n'
const reportData = Buffer.from(Array.from({ length: 64 }, (_, i) => 255 - i))

t.test('the provider says it is simulated', async (t) => {
  const p = createSimulatedProvider({ chain })
  t.equal(p.backend, 'simulated')
  t.equal(p.simulated, true)
  const quote = await p.getReport(reportData)
  t.equal(quote.backend, 'simulated')
  t.equal(quote.certTable, undefined)
  t.equal(quote.report.length, REPORT_SIZE)
})

t.test('report fields are as specified (v3, Milan)', async (t) => {
  const p = createSimulatedProvider({ chain, securityPolicy: POLICY, guestSvn: 7 })
  const r = parseReport((await p.getReport(reportData)).report)
  t.equal(r.version, 3)
  t.equal(r.guestSvn, 7)
  t.equal(r.policy.raw, 0x3001fn)
  t.match(r.policy, { debug: false, smt: true, migrateMa: false, abiMajor: 0, abiMinor: 31 })
  t.same(r.cpuid, { family: 0x19, model: 0x01, stepping: 1 })
  t.equal(r.generation, 'Milan')
  t.equal(r.platformInfo.raw, 1n)
  t.equal(r.signerInfo.raw, 0)
  t.equal(r.signerInfo.signingKey, 'vcek')
  t.equal(r.signatureAlgo, 1)
  t.equal(r.vmpl, 0)
  for (const tcb of [r.currentTcb, r.reportedTcb, r.committedTcb, r.launchTcb]) t.equal(tcb, chain.reportedTcb)
  t.equal(r.reportedTcb, 0x7308000000000003n)
  t.same(r.currentVersion, { major: 1, minor: 55, build: 0 })
  t.same(r.committedVersion, { major: 1, minor: 55, build: 0 })
  t.ok(r.chipId.equals(chain.chipId), 'CHIP_ID is the VCEK hwID')
  t.ok(r.reportData.equals(reportData), 'REPORT_DATA echoed')
  t.ok(r.hostData.equals(createHash('sha256').update(POLICY).digest()), 'HOST_DATA = sha256(policy)')
  t.ok(r.measurement.equals(simulatedMeasurement({ chain, securityPolicy: POLICY })))
  t.equal(r.measurement.length, 48)
  t.ok(r.reportIdMa.equals(Buffer.alloc(32, 0xff)), 'REPORT_ID_MA all 0xFF')
  t.ok(r.idKeyDigest.equals(Buffer.alloc(48)) && r.authorKeyDigest.equals(Buffer.alloc(48)))
  t.equal(r.familyId.length, 16)
  t.equal(r.launchMitVector, null)
  // The simulator sets no reserved bit or byte (parseReport would keep them in unknownBits/unknownBytes).
  t.same([r.policy.unknownBits, r.platformInfo.unknownBits, r.signerInfo.unknownBits, r.unknownBytes], [0n, 0n, 0, []])
  t.ok(r.raw.subarray(0x330).every((b) => b === 0))
  t.ok(r.raw.subarray(0x18b, 0x1a0).every((b) => b === 0))
})

t.test('REPORT_ID is fixed per provider and differs between providers', async (t) => {
  const a = createSimulatedProvider({ chain })
  const b = createSimulatedProvider({ chain })
  const id = async (p: typeof a): Promise<string> => parseReport((await p.getReport(reportData)).report).reportId.toString('hex')
  const a1 = await id(a)
  t.equal(await id(a), a1)
  t.not(await id(b), a1)
  t.not(a1, '00'.repeat(32))
})

t.test('no policy: HOST_DATA is all zero; bytes and string agree', async (t) => {
  const none = parseReport((await createSimulatedProvider({ chain }).getReport(reportData)).report)
  t.ok(none.hostData.equals(Buffer.alloc(32)))
  const asBytes = simulatedMeasurement({ chain, securityPolicy: Buffer.from(POLICY) })
  t.ok(asBytes.equals(simulatedMeasurement({ chain, securityPolicy: POLICY })))
})

t.test('the measurement is stable per configuration and changes with it', async (t) => {
  const base: SimulatedOptions = { chain, securityPolicy: POLICY, measurementSeed: 'uvm-1' }
  const m = async (o: SimulatedOptions): Promise<string> =>
    parseReport((await createSimulatedProvider(o).getReport(reportData, 3)).report).measurement.toString('hex')
  const first = await m(base)
  t.equal(await m({ ...base }), first, 'two providers, same options, same measurement')
  t.equal(await m({ ...base, guestSvn: 3, vmplFloor: 1 }), first, 'options that do not shape the image do not move it')
  const others = [
    await m({ ...base, measurementSeed: 'uvm-2' }),
    await m({ ...base, securityPolicy: POLICY + ' ' }),
    await m({ ...base, securityPolicy: undefined }),
    await m({ ...base, debug: true }),
    await m({ ...base, version: 5 })
  ]
  for (const other of others) t.not(other, first)
  t.equal(new Set(others).size, others.length, 'each change gives its own measurement')
})

t.test('signature: ECDSA P-384/SHA-384 over 0x000..0x29F, verifiable with node:crypto', async (t) => {
  const { report } = await createSimulatedProvider({ chain }).getReport(reportData)
  const parsed = parseReport(report)
  const check = (bytes: Buffer): boolean =>
    verify('sha384', bytes.subarray(0, SIGNED_SIZE), { key: chain.vcek.publicKey, dsaEncoding: 'ieee-p1363' }, signatureP1363(parseReport(bytes)))
  t.ok(check(report))
  t.ok(parsed.raw.subarray(0x2a0 + 48, 0x2a0 + 72).every((b) => b === 0), 'R upper bytes zero')
  const flipped = Buffer.from(report)
  flipped[0x50] = (flipped[0x50] ?? 0) ^ 1
  t.notOk(check(flipped), 'a flipped REPORT_DATA bit breaks it')
})

t.test('verifyReport accepts it when the emulated ARK is trusted, and only then', async (t) => {
  for (const version of [2, 3, 5] as const) {
    const { report } = await createSimulatedProvider({ chain, version, securityPolicy: POLICY }).getReport(reportData, 1)
    const { report: r, chain: c } = verifyReport(report, chain, trusted)
    t.equal(r.version, version)
    t.equal(r.vmpl, 1)
    t.equal(c.generation, 'Milan')
    t.equal(r.cpuid === null, version === 2, `v${version} CPUID presence`)
    t.equal(r.launchMitVector === null, version !== 5, `v${version} mit vector presence`)
    t.throws(() => verifyReport(report, chain, { now: NOW }),
      { code: 'ERR_CERT_CHAIN_INVALID', details: { link: 'ark', check: 'pin' } }, `v${version}: AMD's ARKs alone reject it`)
  }
})

t.test('debug sets POLICY bit 19', async (t) => {
  const r = parseReport((await createSimulatedProvider({ chain, debug: true }).getReport(reportData)).report)
  t.equal(r.policy.raw, 0xb001fn)
  t.equal(r.policy.debug, true)
})

t.test('requests are validated like the hardware', async (t) => {
  const p = createSimulatedProvider({ chain, vmplFloor: 2 })
  t.equal(parseReport((await p.getReport(reportData, 3)).report).vmpl, 3)
  t.equal(parseReport((await p.getReport(reportData, 2)).report).vmpl, 2)
  await t.rejects(p.getReport(reportData), { code: 'ERR_SNP_FIRMWARE', statusCode: 500, details: { firmwareStatus: 0x16, vmpl: 0, vmplFloor: 2 } },
    'default VMPL 0 is below the floor')
  await t.rejects(p.getReport(reportData, 1), { code: 'ERR_SNP_FIRMWARE', details: { firmwareStatus: 0x16 } })
  for (const bad of [4, -1, 1.5, Number.NaN]) {
    await t.rejects(p.getReport(reportData, bad), { code: 'ERR_REQUEST_INVALID', details: { field: 'vmpl' } }, `vmpl ${bad}`)
  }
  for (const size of [0, 32, 63, 65]) {
    await t.rejects(p.getReport(Buffer.alloc(size), 3), { code: 'ERR_REQUEST_INVALID', statusCode: 400, details: { field: 'reportData' } }, `${size} bytes`)
  }
  await t.rejects(p.getReport('x'.repeat(64) as unknown as Uint8Array, 3), { code: 'ERR_REQUEST_INVALID' }, 'a string is not bytes')
})

t.test('REPORT_DATA is copied, not aliased', async (t) => {
  const p = createSimulatedProvider({ chain })
  const data = Buffer.alloc(64, 1)
  const { report } = await p.getReport(data)
  data.fill(2)
  t.ok(parseReport(report).reportData.equals(Buffer.alloc(64, 1)))
})

t.test('misuse is a TypeError', async (t) => {
  t.throws(() => createSimulatedProvider({ chain, version: 4 as 3 }), TypeError)
  t.throws(() => createSimulatedProvider({ chain, vmplFloor: 4 }), TypeError)
  t.throws(() => createSimulatedProvider({ chain, guestSvn: -1 }), TypeError)
  t.throws(() => createSimulatedProvider({ chain, securityPolicy: 5 as unknown as string }), TypeError)
  t.throws(() => createSimulatedProvider({ chain: { ...chain, chipId: Buffer.alloc(8) } }), TypeError)
  t.throws(() => simulatedMeasurement({ chain, measurementSeed: 1 as unknown as string }), TypeError)
})
