// Issue 15, end to end in the emulated environment, for both layouts ACI has shipped: the
// sidecar forwards the security context's endorsement and the emulated MAA validates it (the
// compliance claim appears); `skr report` from the device shows it verified against the report;
// `skr verify` checks it with the receipt; and a tampered receipt is refused by MAA's stand-in and
// by `skr verify`.
import t from 'tap'
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decode, encode, Tagged } from 'cborg'
import { decodeJwt } from 'jose'
import { run as runReport } from '../../src/cli/report.ts'
import { run as runVerify } from '../../src/cli/verify.ts'
import type { CommandIo } from '../../src/cli/operator-kit.ts'
import type { UvmEndorsementLayout } from '../../src/uvm/reference-info.ts'
import { startSidecarEnv, startTestEnvironment } from '../helpers/sidecar-env.ts'

function capture (): { io: CommandIo, out: () => string, err: () => string } {
  const out: string[] = []
  const err: string[] = []
  return { io: { stdout: (s) => { out.push(s) }, stderr: (s) => { err.push(s) } }, out: () => out.join(''), err: () => err.join('') }
}

// Flips the last byte of the first receipt's signature, leaving the statement intact.
function tamperReceipt (cose: Buffer): Buffer {
  const tags: Array<(inner: () => unknown) => unknown> = []
  tags[18] = (inner) => inner()
  tags[1] = (inner) => new Tagged(1, inner())
  const parts = decode(cose, { useMaps: true, tags }) as [Uint8Array, Map<unknown, unknown>, Uint8Array, Uint8Array]
  const receipt = decode((parts[1].get(394) as Uint8Array[])[0] as Uint8Array, { useMaps: true, tags }) as [Uint8Array, Map<unknown, unknown>, null, Uint8Array]
  const sig = Uint8Array.from(receipt[3])
  sig[sig.length - 1] = (sig[sig.length - 1] ?? 0) ^ 1
  parts[1].set(394, [encode([receipt[0], receipt[1], null, sig])])
  return Buffer.from(encode(new Tagged(18, parts)))
}

for (const layout of ['json-payload', 'cwt-claims'] as UvmEndorsementLayout[]) {
  t.test(`layout ${layout}`, async t => {
    const env = await startTestEnvironment({ uvmEndorsementLayout: layout })
    t.teardown(env.close)
    const work = mkdtempSync(join(tmpdir(), 'skr-uvm-e2e-'))
    const cose = Buffer.from(readFileSync(join(env.securityContextDir, 'reference-info-base64'), 'utf8').trim(), 'base64')
    const jwks = join(work, 'transparency-jwks.json')
    writeFileSync(jwks, JSON.stringify(env.uvmEndorser.transparency.jwks()))
    const trust = ['--trust-uvm-root', env.uvmEndorser.rootFingerprint, '--transparency-keys', jwks]

    const skr = await startSidecarEnv({ env })
    t.teardown(skr.close)
    const attested = await skr.call('/attest/maa', { maa_endpoint: env.maa.endpoint, runtime_data: Buffer.from('{"n":1}').toString('base64') })
    t.equal(attested.status, 200, attested.text.slice(0, 300))
    const claims = decodeJwt(String(attested.json?.['token']))
    t.equal(claims['x-ms-compliance-status'], 'azure-compliant-uvm', 'MAA\'s stand-in validated the endorsement')

    // skr report from the (simulated) device: the security context's endorsement, verified.
    const rep = capture()
    t.equal(await runReport(['--json', ...trust], env.skrEnv(0), rep.io), 0, rep.err())
    const view = JSON.parse(rep.out()) as { measurement: string, uvmEndorsement: Record<string, unknown> }
    t.match(view.uvmEndorsement, {
      layout,
      verification: 'verified',
      measurementMatchesReport: true,
      guestSvn: '0',
      receipt: { status: layout === 'cwt-claims' ? 'verified' : 'absent' }
    })
    t.equal(view.uvmEndorsement['launchMeasurement'], view.measurement)

    // skr verify, offline, with the saved report and the emulated chain.
    const reportFile = join(work, 'report.hex')
    const raw = capture()
    t.equal(await runReport(['--hex'], env.skrEnv(0), raw.io), 0, raw.err())
    writeFileSync(reportFile, raw.out())
    const chain = join(work, 'chain.pem')
    writeFileSync(chain, env.chain.vcekPem + env.chain.chainPem)
    const endorsement = join(env.securityContextDir, 'reference-info-base64')
    const base = ['--report', reportFile, '--chain', chain, '--trust-ark', env.chain.arkFingerprint, '--uvm-endorsement', endorsement]
    const ok = capture()
    const code = await runVerify([...base, ...trust, '--require-receipt'], {}, ok.io)
    if (layout === 'cwt-claims') {
      t.equal(code, 0, ok.out() + ok.err())
      t.match(ok.out(), /^uvm-receipt\s+pass\s+transparency receipt verified/m)
      // Without the emulated service's keys the receipt's signature cannot be checked: a warning.
      const warn = capture()
      t.equal(await runVerify([...base, '--trust-uvm-root', env.uvmEndorser.rootFingerprint], {}, warn.io), 0, warn.err())
      t.match(warn.out(), /^uvm-receipt\s+warn\s+inclusion proof matches the statement/m)
    } else {
      t.equal(code, 1, 'the older layout has no receipt to require')
      t.match(ok.out(), /^uvm-receipt\s+fail/m)
    }
    const untrusted = capture()
    t.equal(await runVerify(base, {}, untrusted.io), 1, 'Microsoft\'s root only: the emulated signer is refused')
    t.match(untrusted.out(), /^uvm-endorsement\s+fail\s+.*root/m)

    if (layout === 'cwt-claims') {
      // A tampered receipt: skr forwards it unchanged; MAA's stand-in refuses it, and so does skr verify.
      const context = join(work, 'security-context-tampered')
      cpSync(env.securityContextDir, context, { recursive: true })
      const bad = tamperReceipt(cose)
      writeFileSync(join(context, 'reference-info-base64'), bad.toString('base64'))
      const tampered = await startSidecarEnv({ env, overrides: { UVM_SECURITY_CONTEXT_DIR: context } })
      t.teardown(tampered.close)
      const refused = await tampered.call('/attest/maa', { maa_endpoint: env.maa.endpoint, runtime_data: Buffer.from('{"n":2}').toString('base64') })
      t.not(refused.status, 200)
      t.match(refused.text, /ERR_/, 'a typed error')
      const v = capture()
      t.equal(await runVerify(['--report', reportFile, '--chain', chain, '--trust-ark', env.chain.arkFingerprint, '--uvm-endorsement', join(context, 'reference-info-base64'), ...trust], {}, v.io), 1)
      t.match(v.out(), /^uvm-endorsement\s+pass/m)
      t.match(v.out(), /^uvm-receipt\s+fail\s+.*signature does not verify/m)
    }
  })
}
