import t from 'tap'
import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { run } from '../../../src/cli/policy.ts'
import type { CommandIo } from '../../../src/cli/operator-kit.ts'
import { parseReleasePolicy } from '../../../src/akv/release-policy.ts'
import { needsVectors, vector, vectorsDir } from '../../helpers/vectors.ts'

function capture (): { io: CommandIo, out: () => string, err: () => string } {
  const out: string[] = []
  const err: string[] = []
  return { io: { stdout: (s) => { out.push(s) }, stderr: (s) => { err.push(s) } }, out: () => out.join(''), err: () => err.join('') }
}

/** A filesystem root with an ACI-style security context holding `policyBase64` (none when null). */
function rootWith (policyBase64: string | null): string {
  const root = mkdtempSync(join(tmpdir(), 'skr-policy-root-'))
  if (policyBase64 !== null) {
    mkdirSync(join(root, 'security-context-abc'))
    writeFileSync(join(root, 'security-context-abc', 'security-policy-base64'), policyBase64)
  }
  return root
}

async function policy (argv: string[], options: { env?: Record<string, string>, root?: string } = {}): Promise<{ code: number, out: string, err: string }> {
  const c = capture()
  const code = await run(argv, options.env ?? {}, c.io, { root: options.root ?? rootWith(null) })
  return { code, out: c.out(), err: c.err() }
}

interface Policy { version: string, anyOf: Array<{ authority: string, allOf: Array<{ claim: string, equals: string }> }> }
interface Json { policy: Policy, encoded: string, hostData: string | null, hostDataSource: string, platform: string, warnings: string[] }
const ACI_HOST_DATA = (): string => vector('azure-aci-milan', 'snp_report.bin').subarray(0xc0, 0xe0).toString('hex')

t.test('--help', async t => {
  const r = await policy(['--help'])
  t.equal(r.code, 0)
  t.match(r.out, /--extra-claim/)
  t.match(r.out, /precedence/)
})

t.test('inside an ACI container group: the canonical policy from the security context', needsVectors(), async t => {
  const root = rootWith(vector('azure-aci-milan', 'uvm_security_policy.base64').toString())
  const r = await policy(['--maa-endpoint', 'sharedneu.neu.attest.azure.net'], { root })
  t.equal(r.code, 0, r.err)
  t.equal(r.err, '')
  t.same(JSON.parse(r.out), {
    version: '1.0.0',
    anyOf: [{
      authority: 'https://sharedneu.neu.attest.azure.net',
      allOf: [
        { claim: 'x-ms-sevsnpvm-hostdata', equals: ACI_HOST_DATA() },
        { claim: 'x-ms-compliance-status', equals: 'azure-compliant-uvm' },
        { claim: 'x-ms-sevsnpvm-is-debuggable', equals: 'false' },
        { claim: 'x-ms-sevsnpvm-vmpl', equals: '0' }
      ]
    }]
  })
  const json = await policy(['--json'], { root })
  const doc = JSON.parse(json.out) as Json
  t.equal(doc.hostDataSource, 'security-context')
  t.equal(doc.policy.anyOf[0]?.authority, 'https://sharedeus.eus.attest.azure.net', 'default MAA endpoint')
  t.same(parseReleasePolicy(doc.encoded).anyOf[0]?.authority, doc.policy.anyOf[0]?.authority, 'encoded is what the emulator parses')
  t.same(doc.warnings, [])

  const fromEnv = await policy(['--json'], { env: { UVM_SECURITY_POLICY: vector('azure-aci-milan', 'uvm_security_policy.base64').toString() } })
  t.equal((JSON.parse(fromEnv.out) as Json).hostData, ACI_HOST_DATA(), 'UVM_SECURITY_POLICY (older hosts)')
})

t.test('from a security policy file (base64 or raw) or --host-data', needsVectors(), async t => {
  const fromFile = JSON.parse((await policy(['--security-policy', join(vectorsDir, 'azure-aci-milan', 'uvm_security_policy.base64'), '--json'])).out) as Json
  t.equal(fromFile.hostData, ACI_HOST_DATA())
  t.equal(fromFile.hostDataSource, 'security-policy-file')
  const dir = mkdtempSync(join(tmpdir(), 'skr-policy-'))
  const rego = 'package policy\n\ndefault mount_device := {"allowed": true}\n'
  writeFileSync(join(dir, 'policy.rego'), rego)
  const raw = JSON.parse((await policy(['--security-policy', join(dir, 'policy.rego'), '--json'])).out) as Json
  t.equal(raw.hostData, createHash('sha256').update(rego).digest('hex'))
  const flag = JSON.parse((await policy(['--host-data', 'AB'.repeat(32), '--json'])).out) as Json
  t.equal(flag.hostData, 'ab'.repeat(32))
  t.equal(flag.hostDataSource, 'flag')
})

t.test('knobs: platform, compliance, vmpl, debug check, repeated extra claims', async t => {
  const r = await policy(['--host-data', 'ab'.repeat(32), '--compliance', 'none', '--vmpl', 'none', '--no-debug-check', '--extra-claim', 'x-ms-sevsnpvm-guestsvn=2', '--extra-claim=x-ms-ver=1.0', '--json'])
  t.equal(r.code, 0, r.err)
  const doc = JSON.parse(r.out) as Json
  t.same(doc.policy.anyOf[0]?.allOf, [
    { claim: 'x-ms-sevsnpvm-hostdata', equals: 'ab'.repeat(32) },
    { claim: 'x-ms-sevsnpvm-guestsvn', equals: '2' },
    { claim: 'x-ms-ver', equals: '1.0' }
  ])
  t.match(r.err, /^skr policy: warning: the policy lets a debuggable guest/m)

  const aks = await policy(['--platform', 'aks', '--json'])
  t.equal(aks.code, 0, aks.err)
  t.same((JSON.parse(aks.out) as Json).policy.anyOf[0]?.allOf.map((c) => c.claim), ['x-ms-attestation-type', 'x-ms-sevsnpvm-is-debuggable'])
  t.match(aks.err, /warning: the policy does not pin x-ms-sevsnpvm-hostdata \(no security policy in the UVM security context\)/)
  const aksVmpl = JSON.parse((await policy(['--platform', 'AKS', '--vmpl', '0', '--compliance', 'azure-compliant-uvm', '--host-data', 'cd'.repeat(32)])).out) as Policy
  t.same(aksVmpl.anyOf[0]?.allOf.map((c) => c.claim), ['x-ms-attestation-type', 'x-ms-sevsnpvm-hostdata', 'x-ms-compliance-status', 'x-ms-sevsnpvm-is-debuggable', 'x-ms-sevsnpvm-vmpl'])
})

t.test('simulated: the host data of the simulated report', async t => {
  const policyText = Buffer.from('package simulated\n')
  const root = rootWith(policyText.toString('base64'))
  const r = await policy(['--attestation', 'simulated', '--json'], { root, env: { SKR_SIMULATED_CACHE_DIR: join(tmpdir(), 'skr-test-emulated-chain') } })
  t.equal(r.code, 0, r.err)
  const doc = JSON.parse(r.out) as Json
  t.equal(doc.hostDataSource, 'simulated-report')
  t.equal(doc.hostData, createHash('sha256').update(policyText).digest('hex'))
  t.match(r.err, /SIMULATED report/)
})

t.test('errors', async t => {
  const badContext = rootWith('***not base64***')
  for (const [argv, root, message] of [
    [[], undefined, /needs the host data: pass --security-policy FILE or --host-data HEX/],
    [['--platform', 'gke'], undefined, /--platform must be aci or aks/],
    [['--vmpl', '4', '--host-data', 'ab'.repeat(32)], undefined, /--vmpl must be 0..3 or none/],
    [['--host-data', 'ab'.repeat(32), '--security-policy', '/x'], undefined, /not both/],
    [['--host-data', 'abc'], undefined, /64 hex digits/],
    [['--host-data', 'ab'.repeat(32), '--maa-endpoint', 'http://maa'], undefined, /only https/],
    [['--host-data', 'ab'.repeat(32), '--extra-claim', 'nope'], undefined, /name=value/],
    [['--host-data', 'ab'.repeat(32), '--extra-claim', 'x-ms-sevsnpvm-vmpl=1'], undefined, /already in the policy/],
    [['--security-policy', '/nonexistent/policy'], undefined, /--security-policy: cannot read/],
    [[], badContext, /the UVM security context cannot be used: .* is not base64/]
  ] as const) {
    const r = await policy([...argv], root === undefined ? {} : { root })
    t.equal(r.code, 2, argv.join(' '))
    t.match(r.err, /^skr policy: ERR_CONFIG_INVALID: /)
    t.match(r.err, message)
    t.equal(r.out, '')
  }
  const dir = mkdtempSync(join(tmpdir(), 'skr-policy-'))
  writeFileSync(join(dir, 'empty'), '')
  t.match((await policy(['--security-policy', join(dir, 'empty')])).err, /file is empty/)
})
