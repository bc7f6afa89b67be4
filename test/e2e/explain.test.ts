// `skr explain` against the emulated environment (issue 13 §4): the release policy read from the
// AKV emulator with an operator's token, the claims from a running sidecar or a saved token, every
// clause printed met or not; exit 0 for a key the sidecar can release, 1 for one it cannot, and
// the same answer the vault gives a real release. Never a token in the output.
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { run as explain } from '../../src/cli/explain.ts'
import { JWT_SHAPE, startSidecarEnv, startTestEnvironment } from '../helpers/sidecar-env.ts'

const env = await startTestEnvironment()
t.teardown(env.close)
const skr = await startSidecarEnv({ env })
t.teardown(skr.close)

const dir = mkdtempSync(join(tmpdir(), 'skr-explain-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
writeFileSync(join(dir, 'ca.pem'), env.pki.caCertPem)
const cliEnv = { ...env.skrEnv(0), SKR_EXTRA_CA_CERTS: join(dir, 'ca.pem') }

const encode = (policy: unknown): string => Buffer.from(JSON.stringify(policy)).toString('base64url')
const WRONG_HOSTDATA = '00'.repeat(32)
await env.akv.store.createKey('met-key', { kty: 'oct-HSM', size: 256, exportable: true, releasePolicy: { data: encode(env.releasePolicy()), immutable: false } })
await env.akv.store.createKey('unmet-key', { kty: 'oct-HSM', size: 256, exportable: true, releasePolicy: { data: encode(env.releasePolicy(WRONG_HOSTDATA)), immutable: false } })
const vaultToken = await env.bearer.mint({ aud: 'https://vault.azure.net' })

interface Outcome { code: number, out: string, err: string }
async function runExplain (args: string[]): Promise<Outcome> {
  const out: string[] = []
  const err: string[] = []
  const code = await explain(args, cliEnv, { stdout: (s) => { out.push(s) }, stderr: (s) => { err.push(s) } }, { maxRetries: 0 })
  return { code, out: out.join(''), err: err.join('') }
}
const base = (name: string): string[] => ['--vault', env.akv.endpoint, '--name', name, '--access-token', vaultToken]

// A token as an operator would save it from the app container: the JSON /attest/maa answers.
const attested = await skr.call('/attest/maa', { maa_endpoint: env.maa.endpoint, runtime_data: Buffer.from('{"saved":true}').toString('base64') })
const tokenFile = join(dir, 'maa.json')
writeFileSync(tokenFile, attested.text)

t.test('a key whose policy the sidecar meets: exit 0, every clause met', async t => {
  const r = await runExplain([...base('met-key'), '--sidecar', skr.base])
  t.equal(r.code, 0, r.err)
  t.match(r.out, new RegExp(`^key: {4}https://${env.akv.endpoint.replace(/[.]/g, '\\.')}/keys/met-key/[0-9a-f]+\n`))
  t.match(r.out, `claims: a token from the sidecar at ${skr.base} (maa_endpoint ${env.maa.endpoint}), read without verifying its signature`)
  t.match(r.out, `met      authority ${env.maa.issuer} (the token's issuer), allOf (all must hold):`)
  t.match(r.out, `    met      x-ms-sevsnpvm-hostdata equals "${env.hostData}"; actual "${env.hostData}"`)
  t.match(r.out, '    met      x-ms-sevsnpvm-is-debuggable equals "false"; actual false')
  t.match(r.out, '    met      x-ms-sevsnpvm-vmpl equals "0"; actual 0')
  t.notMatch(r.out, 'NOT MET')
  t.match(r.out, `MET: the policy of ${env.maa.issuer} allows releasing this key to these claims.`)
  t.notMatch(r.out + r.err, JWT_SHAPE, 'no token printed')
  t.equal((await skr.release('met-key')).status, 200, 'and the sidecar does release it')
})

t.test('a key whose policy pins another HOST_DATA: exit 1, the clause named with expected and actual', async t => {
  const r = await runExplain([...base('unmet-key'), '--token', tokenFile])
  t.equal(r.code, 1, r.err)
  t.match(r.out, `claims: the token in ${tokenFile}, read without verifying its signature`)
  t.match(r.out, `NOT MET  authority ${env.maa.issuer} (the token's issuer)`)
  t.match(r.out, `    NOT MET  x-ms-sevsnpvm-hostdata equals "${WRONG_HOSTDATA}"; actual "${env.hostData}"`)
  t.match(r.out, '    met      x-ms-attestation-type equals "sevsnpvm"; actual "sevsnpvm"')
  t.match(r.out, 'NOT MET: the vault will refuse to release this key to these claims')
  t.equal(r.err, '', 'a verdict, not an error')
  t.notMatch(r.out, JWT_SHAPE)
  const released = await skr.release('unmet-key')
  t.equal(released.status, 403, 'the vault agrees')
  t.match(released.json?.['error'], `x-ms-sevsnpvm-hostdata="${env.hostData}"`, 'and the denial names the claim explain showed')
})

t.test('--json', async t => {
  const r = await runExplain([...base('unmet-key'), '--sidecar', skr.base, '--json'])
  t.equal(r.code, 1, r.err)
  const json = JSON.parse(r.out) as Record<string, unknown>
  t.match(json, {
    vault: env.akv.endpoint,
    allowed: false,
    authority: null,
    issuer: env.maa.issuer,
    claimsSource: { kind: 'sidecar', url: skr.base, maaEndpoint: env.maa.endpoint },
    tokenExpired: false,
    warnings: [],
    policy: env.releasePolicy(WRONG_HOSTDATA)
  })
  const conditions = (json['authorities'] as Array<{ issuerMatches: boolean, conditions: Array<Record<string, unknown>> }>)[0]
  t.equal(conditions?.issuerMatches, true)
  t.same(conditions?.conditions.find(c => c['claim'] === 'x-ms-sevsnpvm-hostdata'),
    { kind: 'claim', claim: 'x-ms-sevsnpvm-hostdata', operator: 'equals', expected: WRONG_HOSTDATA, present: true, actual: env.hostData, met: false })
  t.notMatch(r.out, JWT_SHAPE)
})

t.test('failures: exit 1 with one line; usage errors: exit 2', async t => {
  const missing = await runExplain([...base('no-such-key'), '--token', tokenFile])
  t.equal(missing.code, 1)
  t.match(missing.err, /^skr explain: ERR_UPSTREAM_REJECTED: vault .* refused the key \(404 KeyNotFound/)
  const badToken = await runExplain(['--vault', env.akv.endpoint, '--name', 'met-key', '--access-token', 'not-a-vault-token', '--token', tokenFile])
  t.equal(badToken.code, 1)
  t.match(badToken.err, /^skr explain: ERR_ACCESS_DENIED: vault .* refused the credentials \(401\)/)
  t.notMatch(badToken.err, 'not-a-vault-token')
  const refused = await runExplain([...base('met-key'), '--sidecar', skr.base, '--maa-endpoint', 'sharedeus.eus.attest.azure.net'])
  t.equal(refused.code, 1)
  t.match(refused.err, /^skr explain: ERR_UPSTREAM_REJECTED: the sidecar at http:\/\/127\.0\.0\.1:\d+ answered 403 to POST \/attest\/maa \(ERR_ENDPOINT_NOT_ALLOWED: /)
  // A port nothing listens on (taken from a server that is closed again).
  const closed = createServer()
  await new Promise<void>(resolve => { closed.listen(0, '127.0.0.1', resolve) })
  const { port } = closed.address() as AddressInfo
  await new Promise<void>(resolve => { closed.close(() => { resolve() }) })
  const down = await runExplain([...base('met-key'), '--sidecar', `http://127.0.0.1:${port}`])
  t.equal(down.code, 1)
  t.match(down.err, `skr explain: ERR_UPSTREAM_UNAVAILABLE: the sidecar at http://127.0.0.1:${port} could not be reached (ECONNREFUSED)`)

  const usage: Array<[string[], RegExp]> = [
    [['--name', 'k', '--token', tokenFile], /--vault is required/],
    [['--vault', env.akv.endpoint, '--token', tokenFile], /--name is required/],
    [['--vault', env.akv.endpoint, '--name', 'bad name!'], /--name must be a key name/],
    [['--vault', env.akv.endpoint, '--name', 'k/v1', '--version', 'v2'], /not both/],
    [['--vault', env.akv.endpoint, '--name', 'k', '--token', tokenFile, '--sidecar', skr.base], /--sidecar and --maa-endpoint do not apply/],
    [['--vault', env.akv.endpoint, '--name', 'k', '--sidecar', 'ftp://x'], /--sidecar must be a URL/],
    [['--vault', env.akv.endpoint, '--name', 'k', '--token', join(dir, 'absent.jwt')], /--token: cannot read/],
    [['--vault', env.akv.endpoint, '--name', 'k', '--token', join(dir, 'ca.pem')], /--token: the file holds neither/],
    [['--vault', 'http://x', '--name', 'k'], /--vault must be a host name/],
    [['--vault', env.akv.endpoint, '--name', 'k', '--bogus'], /unknown flag --bogus/]
  ]
  for (const [args, message] of usage) {
    const r = await runExplain(args)
    t.equal(r.code, 2, args.join(' '))
    t.match(r.err, message, args.join(' '))
  }
  const help = await runExplain(['--help'])
  t.equal(help.code, 0)
  t.match(help.out, /^usage: skr explain --vault HOST --name KEY\[\/VERSION\]/)
})
