// Issue 12 §5: a new user's first flow, in the emulated environment. `skr import-key` with its
// defaults writes the ACI release policy, which requires x-ms-compliance-status
// "azure-compliant-uvm" (MAA issues it only after validating the UVM endorsement, which every ACI
// container group has). The emulated environment used to have no endorsement, so that key was
// refused; now its security context carries one and its MAA trusts the emulated signing root.
import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeJwt } from 'jose'
import { run as importKey } from '../../src/cli/import-key.ts'
import { verifyUvmReferenceInfo } from '../../src/uvm/reference-info.ts'
import { readFile } from 'node:fs/promises'
import { startSidecarEnv, startTestEnvironment } from '../helpers/sidecar-env.ts'

const env = await startTestEnvironment()
t.teardown(env.close)

t.test('skr import-key with its defaults, then a release through the sidecar', async t => {
  const skr = await startSidecarEnv({ env })
  t.teardown(skr.close)
  const dir = mkdtempSync(join(tmpdir(), 'skr-first-hour-'))
  writeFileSync(join(dir, 'ca.pem'), env.pki.caCertPem)
  const out: string[] = []
  const err: string[] = []
  // What the README's walk-through runs: the host data comes from the security context.
  const code = await importKey(
    ['--vault', env.akv.endpoint, '--name', 'first-key', '--maa-endpoint', env.maa.endpoint, '--access-token', await env.bearer.mint({ aud: 'https://vault.azure.net' }), '--json'],
    { ...env.skrEnv(0), SKR_EXTRA_CA_CERTS: join(dir, 'ca.pem') },
    { stdout: (s) => { out.push(s) }, stderr: (s) => { err.push(s) } }
  )
  t.equal(code, 0, err.join(''))
  const policy = (JSON.parse(out.join('')) as { releasePolicy: { anyOf: Array<{ allOf: Array<{ claim: string, equals: unknown }> }> } }).releasePolicy
  t.same(policy.anyOf[0]?.allOf.find(c => c.claim === 'x-ms-compliance-status')?.equals, 'azure-compliant-uvm', 'the default ACI policy requires the compliance claim')

  const released = await skr.release('first-key')
  t.equal(released.status, 200, `released (${released.text.slice(0, 200)})`)

  const attested = await skr.call('/attest/maa', { maa_endpoint: env.maa.endpoint, runtime_data: Buffer.from('{"n":1}').toString('base64') })
  const claims = decodeJwt(String(attested.json?.['token']))
  t.equal(claims['x-ms-compliance-status'], 'azure-compliant-uvm', 'MAA validated the emulated UVM endorsement')
  t.equal((claims['x-ms-sevsnpvm-uvm-endorsement'] as Record<string, unknown>)['x-ms-sevsnpvm-launchmeasurement'], claims['x-ms-sevsnpvm-launchmeasurement'])
})

t.test('the emulated endorsement verifies under the emulated root, and not under Microsoft\'s', async t => {
  const cose = Buffer.from((await readFile(join(env.securityContextDir, 'reference-info-base64'), 'utf8')).trim(), 'base64')
  const endorsement = verifyUvmReferenceInfo(cose, { trustedRootFingerprints: [env.uvmEndorser.rootFingerprint] })
  t.equal(endorsement.feed, 'ContainerPlat-AMD-UVM')
  t.equal(endorsement.guestSvn, '0')
  t.match(endorsement.launchMeasurement, /^[0-9a-f]{96}$/)
  t.throws(() => verifyUvmReferenceInfo(cose), { code: 'ERR_UVM_ENDORSEMENT_INVALID', details: { check: 'root' } }, 'a real verifier refuses it')
})
