// The real @azure/identity credentials against the local doubles: workload identity against the
// Entra double over HTTPS, in this process. Managed identity against the IMDS double runs in a
// child process (MSAL picks the IMDS endpoint from AZURE_POD_IDENTITY_AUTHORITY_HOST once per
// process): test/process/identity/credentials.test.ts.
import t from 'tap'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createBearerIssuer } from '../../../src/emulator/bearer.ts'
import { startEntraEmulator } from '../../../src/emulator/entra.ts'
import { createLocalPki } from '../../../src/emulator/pki.ts'
import { createIdentityTokenSource } from '../../../src/identity/token-source.ts'

const VAULT = 'https://vault.azure.net'
const HSM = 'https://managedhsm.azure.net'
const TENANT = '00000000-5e4b-4c4a-8000-00000000e171'
const CLIENT = '00000000-5e4b-4c4a-8000-00000000a11d'
const FEDERATED = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDpza3IifQ.c2ln'

const pki = await createLocalPki()
const bearer = await createBearerIssuer({ tenantId: TENANT })
const work = await mkdtemp(join(tmpdir(), 'skr-identity-'))
t.teardown(async () => { await rm(work, { recursive: true, force: true }) })

async function claims (token: string): Promise<Record<string, unknown>> {
  const c = await bearer.verify(token)
  if (c === null) throw new Error('token does not verify')
  return c
}

t.test('workload identity against the Entra double (https, authority host, no instance discovery)', async (t) => {
  const entra = await startEntraEmulator({ tls: await pki.issue(['127.0.0.1']), tokenIssuer: bearer, tenantId: TENANT, clientId: CLIENT, federatedToken: FEDERATED })
  t.teardown(entra.close)
  const tokenFile = join(work, 'token')
  await writeFile(tokenFile, `${FEDERATED}\n`)
  const workload = { clientId: CLIENT, tenantId: TENANT, tokenFile }

  const source = createIdentityTokenSource({ managedIdentityClientId: 'not-used', workload, authorityHost: entra.url, extraCa: [pki.caCertPem] })
  t.equal(source.kind, 'workload identity')
  const vault = await source.getToken(VAULT)
  t.match(await claims(vault), { aud: VAULT, appid: CLIENT, tid: TENANT })
  t.equal(await source.getToken(VAULT), vault, 'cached')
  const before = entra.tokenRequests
  t.match(await claims(await source.getToken(HSM)), { aud: HSM })
  t.equal(entra.tokenRequests, before + 1, 'one more exchange for the other resource')

  t.test('a federated token Entra does not accept', async (t) => {
    const badFile = join(work, 'bad-token')
    await writeFile(badFile, 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ3cm9uZyJ9.')
    const bad = createIdentityTokenSource({ managedIdentityClientId: null, workload: { ...workload, tokenFile: badFile }, authorityHost: entra.url, extraCa: [pki.caCertPem] })
    const err = await bad.getToken(VAULT).then(() => null, (e: unknown) => e as Error & { code?: string })
    t.equal(err?.code, 'ERR_IDENTITY_UNAVAILABLE')
    t.match(err?.message, /^workload identity token request failed: Entra ID answered .*invalid_client.*AADSTS700211/)
    t.match(err?.message, /check AZURE_CLIENT_ID 00000000-5e4b-4c4a-8000-00000000a11d/)
    t.notMatch(err?.message, /eyJ/)
  })

  t.test('without the double\'s CA the TLS handshake fails: identity unavailable', async (t) => {
    const untrusting = createIdentityTokenSource({ managedIdentityClientId: null, workload, authorityHost: entra.url })
    await t.rejects(untrusting.getToken(VAULT), { code: 'ERR_IDENTITY_UNAVAILABLE', message: /^workload identity token request failed: / })
  })
})
