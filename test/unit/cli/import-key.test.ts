import t from 'tap'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { run } from '../../../src/cli/import-key.ts'
import type { CommandIo } from '../../../src/cli/operator-kit.ts'
import { startAkvEmulator } from '../../../src/emulator/akv.ts'
import { createBearerIssuer } from '../../../src/emulator/bearer.ts'
import { startEntraEmulator } from '../../../src/emulator/entra.ts'
import { createLocalPki } from '../../../src/emulator/pki.ts'

function capture (): { io: CommandIo, out: () => string, err: () => string } {
  const out: string[] = []
  const err: string[] = []
  return { io: { stdout: (s) => { out.push(s) }, stderr: (s) => { err.push(s) } }, out: () => out.join(''), err: () => err.join('') }
}

const dir = mkdtempSync(join(tmpdir(), 'skr-import-key-'))
const pki = await createLocalPki()
const tls = await pki.issue(['127.0.0.1', 'localhost'])
const bearer = await createBearerIssuer()
const vault = await startAkvEmulator({ tls, tokenVerifier: bearer.verify })
const mhsm = await startAkvEmulator({ tls, tokenVerifier: bearer.verify, kind: 'mhsm' })
t.teardown(async () => { await vault.close(); await mhsm.close() })
writeFileSync(join(dir, 'ca.pem'), pki.caCertPem)
const env = { SKR_EXTRA_CA_CERTS: join(dir, 'ca.pem') }
const vaultToken = await bearer.mint({ aud: 'https://vault.azure.net' })
const mhsmToken = await bearer.mint({ aud: 'https://managedhsm.azure.net' })
const HD = 'ab'.repeat(32)

async function importKey (argv: string[], e: Record<string, string> = env): Promise<{ code: number, out: string, err: string }> {
  const c = capture()
  const code = await run(argv, e, c.io, { root: dir, maxRetries: 0 })
  return { code, out: c.out(), err: c.err() }
}

function storedPolicy (store: typeof vault.store, name: string): unknown {
  const key = store.get(name)
  return key?.releasePolicy === null || key === undefined ? null : JSON.parse(Buffer.from(key.releasePolicy.data, 'base64url').toString())
}

interface Result { operation: string, keyId: string, keyType: string, exportable: boolean, immutable: boolean, releasePolicy: { anyOf: Array<{ authority: string, allOf: Array<{ claim: string }> }> } }

t.test('--help', async t => {
  const r = await importKey(['--help'])
  t.equal(r.code, 0)
  t.match(r.out, /--key-file/)
  t.match(r.out, /--maa-endpoint/, 'the policy flags too')
})

t.test('creates oct-HSM, RSA-HSM and EC-HSM keys with a generated policy', async t => {
  const base = ['--vault', vault.endpoint, '--access-token', vaultToken, '--host-data', HD, '--maa-endpoint', 'maa.example.net', '--json']
  for (const [name, args, kty] of [
    ['oct-key', ['--kty', 'oct-HSM'], 'oct-HSM'],
    ['rsa-key', ['--kty', 'RSA-HSM', '--size', '3072'], 'RSA-HSM'],
    ['ec-key', ['--kty', 'ec-hsm', '--curve', 'P-384'], 'EC-HSM']
  ] as const) {
    const r = await importKey(['--name', name, ...args, ...base])
    t.equal(r.code, 0, r.err)
    t.equal(r.err, '')
    const result = JSON.parse(r.out) as Result
    t.match(result, { operation: 'create', keyType: kty, exportable: true, immutable: false })
    t.match(result.keyId, new RegExp(`^https://${vault.endpoint}/keys/${name}/[0-9a-f]{32}$`))
    const stored = vault.store.get(name)
    t.equal(stored?.kty, kty)
    t.equal(stored?.exportable, true)
    t.same(storedPolicy(vault.store, name), result.releasePolicy, 'the stored policy decodes to the printed one')
    t.equal(result.releasePolicy.anyOf[0]?.authority, 'https://maa.example.net')
    t.same(result.releasePolicy.anyOf[0]?.allOf.map((c) => c.claim), ['x-ms-sevsnpvm-hostdata', 'x-ms-compliance-status', 'x-ms-sevsnpvm-is-debuggable', 'x-ms-sevsnpvm-vmpl'])
  }
  t.equal(vault.store.get('ec-key')?.crv, 'P-384')
  t.equal((vault.store.get('rsa-key')?.material as { asymmetricKeyDetails?: { modulusLength?: number } }).asymmetricKeyDetails?.modulusLength, 3072)
  t.equal((vault.store.get('oct-key')?.material as Buffer).length, 32, 'oct default 256 bits')
})

t.test('a policy file, immutable, a token file and a human summary', async t => {
  const policy = { version: '1.0.0', anyOf: [{ authority: 'https://maa.example.net', allOf: [{ claim: 'x-ms-attestation-type', equals: 'sevsnpvm' }] }] }
  writeFileSync(join(dir, 'policy.json'), JSON.stringify(policy, null, 2))
  writeFileSync(join(dir, 'token'), vaultToken + '\n')
  const r = await importKey(['--vault', vault.endpoint, '--name', 'with-file', '--policy', join(dir, 'policy.json'), '--immutable', '--access-token-file', join(dir, 'token')])
  t.equal(r.code, 0, r.err)
  t.match(r.out, /^created https:\/\/127\.0\.0\.1:\d+\/keys\/with-file\/[0-9a-f]{32} \(RSA-HSM, exportable, immutable policy\)$/m)
  t.match(r.out, /^release policy:\n\{/m)
  t.same(storedPolicy(vault.store, 'with-file'), policy)
  t.equal(vault.store.get('with-file')?.releasePolicy?.immutable, true)
  t.notOk(r.out.includes(vaultToken), 'no token printed')
})

t.test('imports an oct key from a JWK file, and an RSA PEM into a Managed HSM', async t => {
  const k = randomBytes(32)
  writeFileSync(join(dir, 'oct.jwk'), JSON.stringify({ kty: 'oct', k: k.toString('base64url') }))
  const r = await importKey(['--vault', vault.endpoint, '--name', 'imported-oct', '--key-file', join(dir, 'oct.jwk'), '--access-token', vaultToken, '--host-data', HD, '--json'])
  t.equal(r.code, 0, r.err)
  t.match(JSON.parse(r.out), { operation: 'import', keyType: 'oct-HSM', exportable: true })
  t.same(vault.store.get('imported-oct')?.material, k, 'the vault holds the file\'s key')
  t.notOk(r.out.includes(k.toString('base64url')) || r.out.includes(k.toString('hex')), 'no key material printed')
  t.notOk(r.err.includes(k.toString('base64url')))

  const pem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
  writeFileSync(join(dir, 'rsa.pem'), pem)
  const m = await importKey(['--vault', mhsm.endpoint, '--mhsm', '--name', 'imported-rsa', '--key-file', join(dir, 'rsa.pem'), '--kty', 'RSA-HSM', '--access-token', mhsmToken, '--platform', 'aks', '--host-data', HD, '--json'])
  t.equal(m.code, 0, m.err)
  t.match(JSON.parse(m.out), { operation: 'import', keyType: 'RSA-HSM' })
  t.equal(mhsm.store.get('imported-rsa')?.kty, 'RSA-HSM')
  t.match(storedPolicy(mhsm.store, 'imported-rsa'), { anyOf: [{ allOf: [{ claim: 'x-ms-attestation-type', equals: 'sevsnpvm' }] }] })

  const octMhsm = await importKey(['--vault', mhsm.endpoint, '--mhsm', '--name', 'mhsm-oct', '--access-token', mhsmToken, '--host-data', HD, '--json'])
  t.equal(octMhsm.code, 0, octMhsm.err)
  t.match(JSON.parse(octMhsm.out), { keyType: 'oct-HSM' }, 'oct-HSM is the Managed HSM default')
})

t.test('workload identity from AZURE_* (Entra double) when no token is given', async t => {
  // The vault's 401 challenge names the tenant the SDK then asks tokens for: the identity's own, as in Azure.
  const tenantId = bearer.tenantId
  const clientId = '00000000-0000-4000-8000-00000000cc01'
  writeFileSync(join(dir, 'federated'), 'federated-sa-token')
  const entra = await startEntraEmulator({ tls, tokenIssuer: bearer, tenantId, clientId, federatedToken: 'federated-sa-token' })
  t.teardown(entra.close)
  const r = await importKey(['--vault', vault.endpoint, '--name', 'wi-key', '--host-data', HD, '--json'], {
    ...env, AZURE_CLIENT_ID: clientId, AZURE_TENANT_ID: tenantId, AZURE_FEDERATED_TOKEN_FILE: join(dir, 'federated'), AZURE_AUTHORITY_HOST: entra.url
  })
  t.equal(r.code, 0, r.err)
  t.equal(entra.tokenRequests, 1)
  t.ok(vault.store.get('wi-key'))

  const refused = await importKey(['--vault', vault.endpoint, '--name', 'wi-key', '--host-data', HD], {
    ...env, AZURE_CLIENT_ID: '00000000-0000-4000-8000-00000000cc02', AZURE_TENANT_ID: tenantId, AZURE_FEDERATED_TOKEN_FILE: join(dir, 'federated'), AZURE_AUTHORITY_HOST: entra.url
  })
  t.equal(refused.code, 1)
  t.match(refused.err, /^skr import-key: ERR_IDENTITY_UNAVAILABLE: workload identity token request failed/)
})

t.test('bad policy JSON: exit 2 and nothing sent', async t => {
  writeFileSync(join(dir, 'bad.json'), '{"anyOf": [')
  const before = vault.requests.length
  const r = await importKey(['--vault', vault.endpoint, '--name', 'nope', '--policy', join(dir, 'bad.json'), '--access-token', vaultToken])
  t.equal(r.code, 2)
  t.match(r.err, /^skr import-key: ERR_CONFIG_INVALID: release policy file is not JSON$/m)
  writeFileSync(join(dir, 'http.json'), JSON.stringify({ anyOf: [{ authority: 'http://maa', allOf: [{ claim: 'a', equals: 'b' }] }] }))
  const http = await importKey(['--vault', vault.endpoint, '--name', 'nope', '--policy', join(dir, 'http.json'), '--access-token', vaultToken])
  t.equal(http.code, 2)
  t.match(http.err, /authority must be an https URL/)
  t.equal(vault.requests.length, before)
})

t.test('vault 401: exit 1 with ERR_ACCESS_DENIED and no token in the output', async t => {
  const wrongAudience = await bearer.mint({ aud: 'https://storage.azure.com' })
  const r = await importKey(['--vault', vault.endpoint, '--name', 'denied', '--access-token', wrongAudience, '--host-data', HD])
  t.equal(r.code, 1)
  t.match(r.err, /^skr import-key: ERR_ACCESS_DENIED: vault 127\.0\.0\.1:\d+ refused the credentials \(401\)/)
  t.equal(r.err.trim().split('\n').length, 1)
  t.notOk(r.err.includes(wrongAudience) || r.out.includes(wrongAudience))
  t.equal(r.out, '')
  t.equal(vault.store.get('denied'), undefined)
})

t.test('other vault refusals and transport failures exit 1', async t => {
  const badVersion = await importKey(['--vault', vault.endpoint, '--name', 'v', '--access-token', vaultToken, '--host-data', HD, '--api-version', '1.0'])
  t.equal(badVersion.code, 1)
  t.match(badVersion.err, /ERR_UPSTREAM_REJECTED: vault .* refused the key \(400 BadParameter: The api-version/)
  const untrusted = await importKey(['--vault', vault.endpoint, '--name', 'v', '--access-token', vaultToken, '--host-data', HD], {})
  t.equal(untrusted.code, 1)
  t.match(untrusted.err, /ERR_UPSTREAM_UNAVAILABLE: .*set SKR_EXTRA_CA_CERTS/)
  const ok = await importKey(['--vault', `https://${vault.endpoint}/`, '--name', 'v73', '--access-token', vaultToken, '--host-data', HD, '--api-version', '7.3'])
  t.equal(ok.code, 0, ok.err)
})

t.test('usage errors exit 2 before any request', async t => {
  writeFileSync(join(dir, 'oct16.hex'), randomBytes(16).toString('hex'))
  const before = vault.requests.length
  const v = ['--vault', vault.endpoint]
  const tok = ['--access-token', vaultToken]
  for (const [argv, message] of [
    [['--name', 'x'], /--vault is required/],
    [[...v], /--name is required/],
    [[...v, '--name', 'bad_name'], /--name is required: 1-127/],
    [['--vault', 'http://x', '--name', 'x'], /only https/],
    [[...v, '--name', 'x', '--kty', 'DES', ...tok, '--host-data', HD], /--kty must be/],
    [[...v, '--name', 'x', '--kty', 'RSA-HSM', '--size', '1024', ...tok, '--host-data', HD], /--size for RSA-HSM must be 2048, 3072, 4096/],
    [[...v, '--name', 'x', '--kty', 'EC-HSM', '--size', '256', ...tok, '--host-data', HD], /use --curve/],
    [[...v, '--name', 'x', '--kty', 'EC-HSM', '--curve', 'P-521', ...tok, '--host-data', HD], /P-256 or P-384/],
    [[...v, '--name', 'x', '--curve', 'P-256', ...tok, '--host-data', HD], /EC-HSM keys only/],
    [[...v, '--name', 'x', '--key-file', join(dir, 'oct16.hex'), '--size', '128', ...tok, '--host-data', HD], /not with --key-file/],
    [[...v, '--name', 'x', '--key-file', join(dir, 'oct16.hex'), '--kty', 'RSA-HSM', ...tok, '--host-data', HD], /does not match the key file \(oct 128-bit\)/],
    [[...v, '--name', 'x', '--policy', join(dir, 'policy.json'), '--host-data', HD, ...tok], /--policy is a complete policy: --host-data does not apply/],
    [[...v, '--name', 'x', '--policy', join(dir, 'policy.json'), '--extra-claim', 'a=b', ...tok], /--extra-claim does not apply/],
    [[...v, '--name', 'x', ...tok, '--access-token-file', join(dir, 'token'), '--host-data', HD], /not both/],
    [[...v, '--name', 'x', '--access-token', 'two words', '--host-data', HD], /one printable word/],
    [[...v, '--name', 'x', ...tok], /needs the host data/],
    [['--vault', 'kv.vault.azure.net', '--name', 'x', '--kty', 'oct-HSM', ...tok, '--host-data', HD], /oct-HSM keys need a Managed HSM/]
  ] as const) {
    const r = await importKey([...argv])
    t.equal(r.code, 2, argv.map((a) => a === vaultToken ? '<token>' : a).join(' '))
    t.match(r.err, /^skr import-key: ERR_CONFIG_INVALID: /)
    t.match(r.err, message)
    t.notOk(r.err.includes(vaultToken))
  }
  t.equal(vault.requests.length, before)
  const missingCa = await importKey([...v, '--name', 'x', ...tok, '--host-data', HD], { SKR_EXTRA_CA_CERTS: join(dir, 'missing.pem') })
  t.equal(missingCa.code, 2)
  t.match(missingCa.err, /SKR_EXTRA_CA_CERTS names a file that cannot be read \(ENOENT\)/)
})
