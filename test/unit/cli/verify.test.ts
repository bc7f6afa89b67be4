import t from 'tap'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadOrCreateEmulatedChain } from '../../../src/simulated/emulated-chain-cache.ts'
import { run as runReport } from '../../../src/cli/report.ts'
import { run } from '../../../src/cli/verify.ts'
import type { CommandIo } from '../../../src/cli/operator-kit.ts'
import { needsVectors, vector, vectorsDir } from '../../helpers/vectors.ts'

function capture (): { io: CommandIo, out: () => string, err: () => string } {
  const out: string[] = []
  const err: string[] = []
  return { io: { stdout: (s) => { out.push(s) }, stderr: (s) => { err.push(s) } }, out: () => out.join(''), err: () => err.join('') }
}

async function verify (argv: string[]): Promise<{ code: number, out: string, err: string }> {
  const c = capture()
  const code = await run(argv, {}, c.io)
  return { code, out: c.out(), err: c.err() }
}

const v = (...parts: string[]): string => join(vectorsDir, ...parts)
// Genuine Genoa/Turin vectors committed with provenance: test/fixtures/vectors/README.md.
const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'fixtures', 'vectors')
const fx = (...parts: string[]): string => join(FIXTURES, ...parts)
const tmp = mkdtempSync(join(tmpdir(), 'skr-verify-'))
const ACI = ['--report', v('azure-aci-milan', 'snp_report.bin')]
interface Json { ok: boolean, chainForm: string, checks: Array<{ name: string, status: string, detail: string }>, report: { hostData: string } | null }

t.test('--help', async t => {
  const r = await verify(['-h'])
  t.equal(r.code, 0)
  t.match(r.out, /--expect-host-data/)
})

t.test('the genuine ACI report with its THIM document, pinned at 2024-06-01', needsVectors(), async t => {
  const r = await verify([...ACI, '--chain', v('azure-aci-milan', 'uvm_host_amd_certificate.json'), '--now', '2024-06-01'])
  t.equal(r.code, 0, r.err)
  t.equal(r.err, '')
  t.match(r.out, /^chain\s+pass\s+VCEK ← ASK ← ARK/m)
  t.match(r.out, /^thim-tcbm\s+pass/m)
  t.match(r.out, /^result: PASS$/m)

  const hostData = vector('azure-aci-milan', 'snp_report.bin').subarray(0xc0, 0xe0).toString('hex')
  const json = await verify([...ACI, '--chain', v('azure-aci-milan', 'uvm_host_amd_certificate.pem'), '--now', '2024-06-01T00:00:00Z', '--expect-host-data', hostData, '--json'])
  t.equal(json.code, 0)
  const doc = JSON.parse(json.out) as Json
  t.equal(doc.ok, true)
  t.equal(doc.chainForm, 'pem-bundle')
  t.equal(doc.report?.hostData, hostData)
  t.match(doc.checks.find((c) => c.name === 'host-data'), { status: 'pass' })

  const b64 = await verify([...ACI, '--chain', v('azure-aci-milan', 'security-context-other-chip', 'host-amd-cert-base64'), '--now', '2024-06-01', '--json'])
  t.equal(b64.code, 1, 'another chip\'s THIM document (base64 file) does not verify the report')
  t.match(JSON.parse(b64.out), { ok: false, chainForm: 'thim-base64' })
  t.match(b64.err, /^skr verify: ERR_SNP_REPORT_UNVERIFIED: failed: signature, chip-id$/m)
})

t.test('the go-sev-guest debug report fails without --allow-debug and passes with it', needsVectors(), async t => {
  const args = ['--report', v('gsg-milan-debug', 'attestation.bin'), '--chain', v('gsg-milan-debug', 'milan.testcer'), '--vcek', v('gsg-milan-debug', 'vcek.testcer'), '--now', '2024-06-01']
  const refused = await verify(args)
  t.equal(refused.code, 1)
  t.match(refused.out, /^debug\s+fail\s+POLICY.DEBUG is 1/m)
  t.match(refused.out, /^result: FAIL \(1 check failed\)$/m)
  t.match(refused.err, /failed: debug/)
  const allowed = await verify([...args, '--allow-debug'])
  t.equal(allowed.code, 0, allowed.out)
  t.match(allowed.out, /^result: PASS$/m)
})

t.test('the virtee report (hex) with its DER VCEK; expectations that do not hold fail', needsVectors(), async t => {
  const args = ['--report', v('virtee-milan', 'report_milan.hex'), '--chain', v('virtee-milan', 'cert_chain_milan'), '--vcek', v('virtee-milan', 'vcek_milan.der'), '--now', '2024-06-01']
  t.equal((await verify(args)).code, 0)
  const r = await verify([...args, '--expect-measurement', '00'.repeat(48), '--expect-report-data', '0102', '--json'])
  t.equal(r.code, 1)
  const doc = JSON.parse(r.out) as Json
  t.match(doc.checks.find((c) => c.name === 'measurement'), { status: 'fail' })
  t.match(doc.checks.find((c) => c.name === 'report-data'), { status: 'fail' })
  t.match(r.err, /failed: measurement, report-data/)
})

t.test('tampered copies fail', needsVectors(), async t => {
  const report = vector('azure-aci-milan', 'snp_report.bin')
  const chain = ['--chain', v('azure-aci-milan', 'uvm_host_amd_certificate.pem'), '--now', '2024-06-01']
  const hostData = Buffer.from(report)
  hostData[0xc0] = (hostData[0xc0] ?? 0) ^ 0x80
  writeFileSync(join(tmp, 'hostdata.bin'), hostData)
  const r = await verify(['--report', join(tmp, 'hostdata.bin'), ...chain])
  t.equal(r.code, 1)
  t.match(r.out, /^signature\s+fail/m)

  const sig = Buffer.from(report)
  sig[0x2a0] = (sig[0x2a0] ?? 0) ^ 1
  writeFileSync(join(tmp, 'sig.hex'), sig.toString('hex'))
  t.equal((await verify(['--report', join(tmp, 'sig.hex'), ...chain])).code, 1)

  const chainPem = vector('azure-aci-milan', 'uvm_host_amd_certificate.pem').toString('latin1')
  const blocks = chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? []
  writeFileSync(join(tmp, 'swapped.pem'), [blocks[0], blocks[2], blocks[1]].join('\n'))
  const swapped = await verify([...ACI, '--chain', join(tmp, 'swapped.pem'), '--now', '2024-06-01'])
  t.equal(swapped.code, 1)
  t.match(swapped.out, /^chain\s+fail/m)

  const expired = await verify([...ACI, '--chain', v('azure-aci-milan', 'uvm_host_amd_certificate.pem'), '--now', '2060-01-01'])
  t.equal(expired.code, 1)
  t.match(expired.out, /^chain\s+fail\s+.*not at 2060-01-01/m)
})

t.test('a simulated report verifies only when its emulated ARK is trusted', async t => {
  const cacheDir = join(tmpdir(), 'skr-test-emulated-chain')
  const chain = await loadOrCreateEmulatedChain({ cacheDir })
  const out: string[] = []
  const code = await runReport(['--attestation', 'simulated', '--hex'], { SKR_SIMULATED_CACHE_DIR: cacheDir }, { stdout: (s) => { out.push(s) }, stderr: () => {} }, { root: tmp })
  t.equal(code, 0)
  writeFileSync(join(tmp, 'sim.hex'), out.join(''))
  writeFileSync(join(tmp, 'sim-chain.pem'), chain.vcekPem + chain.chainPem)
  const args = ['--report', join(tmp, 'sim.hex'), '--chain', join(tmp, 'sim-chain.pem')]
  const untrusted = await verify(args)
  t.equal(untrusted.code, 1)
  t.match(untrusted.out, /^chain\s+fail\s+ARK fingerprint .* is not one of the 3 trusted/m)
  const trusted = await verify([...args, '--trust-ark', chain.arkFingerprint.replace(/:/g, '').toLowerCase(), '--trust-ark', chain.arkFingerprint])
  t.equal(trusted.code, 0, trusted.out)
})

t.test('usage and input errors', needsVectors(), async t => {
  const chain = ['--chain', v('azure-aci-milan', 'uvm_host_amd_certificate.pem')]
  for (const [argv, code, message] of [
    [chain, 2, /--report is required/],
    [ACI, 2, /--chain is required/],
    [[...ACI, ...chain, '--now', 'yesterday'], 2, /--now must be an ISO-8601/],
    [[...ACI, ...chain, '--expect-host-data', 'abcd'], 2, /32 bytes \(64 hex digits\), got 2/],
    [[...ACI, ...chain, '--expect-measurement', 'xyz'], 2, /must be hex/],
    [[...ACI, ...chain, '--expect-report-data', '00'.repeat(65)], 2, /at most 64 bytes/],
    [[...ACI, ...chain, '--trust-ark', 'AB:CD'], 2, /SHA-256 fingerprint/],
    [[...ACI, ...chain, '--trust-ark'], 2, /needs a value/],
    [[...ACI, '--chain', '/nonexistent.pem'], 2, /--chain: cannot read/],
    [[...ACI, '--chain', v('virtee-milan', 'cert_chain_milan')], 1, /ERR_CERT_CHAIN_INVALID: chain file holds 2 certificates/],
    [['--report', v('virtee-milan', 'cert_chain_milan'), ...chain], 1, /ERR_SNP_REPORT_INVALID/]
  ] as const) {
    const r = await verify([...argv])
    t.equal(r.code, code, argv.join(' '))
    t.match(r.err, message)
    t.match(r.err, /^skr verify: ERR_[A-Z_]+: /)
  }
})

t.test('genuine Genoa and Turin v5 reports verify (issue 12: the Turin sets PLATFORM_INFO 0x67)', async t => {
  for (const g of ['genoa', 'turin']) {
    const chain = join(tmp, `${g}-ask-ark.pem`)
    writeFileSync(chain, Buffer.concat([readFileSync(fx('virtee-sev', `${g}_ask.pem`)), readFileSync(fx('virtee-sev', `${g}_ark.pem`))]))
    const args = ['--report', fx('project-oak', `${g}_oc_report.bin`), '--chain', chain, '--vcek', fx('project-oak', `${g}_oc_vcek.der`), '--now', '2025-09-01']
    const r = await verify(args)
    t.equal(r.code, 0, `${g}: ${r.out}${r.err}`)
    t.match(r.out, /^signature\s+pass\s+ECDSA P-384/m)
    t.match(r.out, /^unknown-fields\s+pass\s+no reserved bit, byte or value is set$/m)
    t.match(r.out, /^result: PASS$/m)
    t.equal((await verify([...args, '--refuse-unknown'])).code, 0, `${g}: nothing unknown to refuse`)
    const json = JSON.parse((await verify([...args, '--json'])).out) as Json & { report: { version: number, unknown: string[] } }
    t.match(json, { ok: true, chainForm: 'vcek-and-chain', report: { version: 5, unknown: [] } })
  }
})

t.test('reserved bits: a warning by default, a failure with --refuse-unknown', async t => {
  const chain = join(tmp, 'turin-ask-ark-2.pem')
  writeFileSync(chain, Buffer.concat([readFileSync(fx('virtee-sev', 'turin_ask.pem')), readFileSync(fx('virtee-sev', 'turin_ark.pem'))]))
  const bytes = readFileSync(fx('project-oak', 'turin_oc_report.bin'))
  bytes[0x041] = 0x01 // PLATFORM_INFO bit 8 (the signature breaks too: the bytes are signed)
  writeFileSync(join(tmp, 'turin-bit8.bin'), bytes)
  const args = ['--report', join(tmp, 'turin-bit8.bin'), '--chain', chain, '--vcek', fx('project-oak', 'turin_oc_vcek.der'), '--now', '2025-09-01']
  const warned = await verify(args)
  t.equal(warned.code, 1)
  t.match(warned.out, /^unknown-fields\s+warn\s+PLATFORM_INFO reserved bits 0x100: newer than/m)
  t.match(warned.err, /failed: signature$/m)
  const refused = await verify([...args, '--refuse-unknown'])
  t.match(refused.out, /^unknown-fields\s+fail\s+PLATFORM_INFO reserved bits 0x100 \(refused: --refuse-unknown\)$/m)
  t.match(refused.err, /failed: signature, unknown-fields$/m)
})

// Issue 15: the UVM endorsement beside the report, in both layouts.
const SCITT = fx('scitt-ccf-ledger', 'uvm_0.2.10.cose')
const ACI_ENDORSED = [...ACI, '--chain', v('azure-aci-milan', 'uvm_host_amd_certificate.json'), '--now', '2024-06-01']

t.test('the genuine ACI report with its genuine (older layout) endorsement', needsVectors(), async t => {
  const r = await verify([...ACI_ENDORSED, '--uvm-endorsement', v('azure-aci-milan', 'body.uvm_reference_info.bin'), '--expect-uvm-svn', '22'])
  t.equal(r.code, 0, r.err)
  t.match(r.out, /^uvm-endorsement\s+pass\s+json-payload layout, signed by ContainerPlat \(root Microsoft Supply Chain RSA Root CA 2022\)/m)
  t.match(r.out, /^uvm-feed\s+pass\s+feed ContainerPlat-AMD-UVM$/m)
  t.match(r.out, /^uvm-measurement\s+pass/m)
  t.match(r.out, /^uvm-svn\s+pass\s+endorsement SVN 22, report GUEST_SVN 2; want at least 22$/m)
  t.match(r.out, /^uvm-receipt\s+skip\s+the endorsement carries no transparency receipt/m)
  // The base64 form the security context holds is read the same way.
  const b64 = join(tmp, 'reference-info-base64')
  writeFileSync(b64, vector('azure-aci-milan', 'body.uvm_reference_info.bin').toString('base64') + '\n')
  t.equal((await verify([...ACI_ENDORSED, '--uvm-endorsement', b64])).code, 0)

  const floor = await verify([...ACI_ENDORSED, '--uvm-endorsement', b64, '--expect-uvm-svn', '23'])
  t.equal(floor.code, 1)
  t.match(floor.err, /^skr verify: ERR_UVM_ENDORSEMENT_INVALID: failed: uvm-svn$/m)
  const receipt = await verify([...ACI_ENDORSED, '--uvm-endorsement', b64, '--require-receipt'])
  t.equal(receipt.code, 1)
  t.match(receipt.out, /^uvm-receipt\s+fail/m)
  const feed = await verify([...ACI_ENDORSED, '--uvm-endorsement', b64, '--expect-uvm-feed', 'Other-Feed'])
  t.match(feed.out, /^uvm-feed\s+fail\s+feed ContainerPlat-AMD-UVM is not Other-Feed/m)
})

t.test('the genuine newer-layout endorsement: verified with its receipt, but for another UVM', needsVectors(), async t => {
  const r = await verify([...ACI_ENDORSED, '--uvm-endorsement', SCITT, '--require-receipt', '--json'])
  t.equal(r.code, 1)
  const json = JSON.parse(r.out) as Json & { uvmEndorsement: { layout: string, guestSvn: string, measurementMatchesReport: boolean, receipt: { status: string } } }
  const status = Object.fromEntries(json.checks.map((c) => [c.name, c.status]))
  t.match(status, { 'uvm-endorsement': 'pass', 'uvm-feed': 'pass', 'uvm-measurement': 'fail', 'uvm-receipt': 'pass', signature: 'pass' })
  t.match(json.uvmEndorsement, { layout: 'cwt-claims', guestSvn: '104', measurementMatchesReport: false, receipt: { status: 'verified' } })
  t.match(r.err, /ERR_UVM_ENDORSEMENT_INVALID: failed: uvm-measurement/)

  // (A receipt under a key skr does not know is covered with the emulated service in test/e2e/uvm-endorsement.test.ts.)
  const tampered = join(tmp, 'tampered.cose')
  const bytes = readFileSync(SCITT)
  const at = bytes.length - 1 // last byte of the statement's signature: the statement fails, the receipt is not checked
  writeFileSync(tampered, Buffer.concat([bytes.subarray(0, at), Buffer.from([(bytes[at] ?? 0) ^ 1])]))
  const bad = await verify([...ACI_ENDORSED, '--uvm-endorsement', tampered])
  t.match(bad.out, /^uvm-endorsement\s+fail\s+.*signature/m)
  t.match(bad.out, /^uvm-receipt\s+skip\s+not checked/m)

  const junk = join(tmp, 'junk.txt')
  writeFileSync(junk, 'hello')
  const j = await verify([...ACI_ENDORSED, '--uvm-endorsement', junk])
  t.equal(j.code, 1)
  t.match(j.err, /ERR_UVM_ENDORSEMENT_INVALID/)
  const usage = await verify([...ACI_ENDORSED, '--uvm-endorsement', SCITT, '--expect-uvm-svn', 'ten'])
  t.equal(usage.code, 2)
  const keysUsage = await verify([...ACI_ENDORSED, '--uvm-endorsement', SCITT, '--transparency-keys', junk])
  t.equal(keysUsage.code, 2)
  t.match(keysUsage.err, /--transparency-keys/)
})
