// The real @azure/identity credentials against the local doubles: workload identity against the
// Entra double over HTTPS (in this process), managed identity against the IMDS double (in a child
// process: MSAL picks the IMDS endpoint from AZURE_POD_IDENTITY_AUTHORITY_HOST once per process).
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { createBearerIssuer, DEFAULT_CLIENT_ID } from '../../../src/emulator/bearer.ts'
import { startEntraEmulator } from '../../../src/emulator/entra.ts'
import { startImdsEmulator } from '../../../src/emulator/imds.ts'
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

interface ChildResult { ok: boolean, token?: string, code?: string, message?: string, status?: number }

/** Runs the managed-identity token source in a fresh process pointed at `imdsUrl`. */
async function inChild (imdsUrl: string, clientId: string | null, resources: string[]): Promise<ChildResult[]> {
  const module = pathToFileURL(join(import.meta.dirname, '../../../src/identity/token-source.ts')).href
  const code = `
    const { createIdentityTokenSource } = await import(${JSON.stringify(module)})
    const source = createIdentityTokenSource({ managedIdentityClientId: ${JSON.stringify(clientId)}, workload: null, authorityHost: null }, { timeoutMs: 10000 })
    const out = []
    for (const r of ${JSON.stringify(resources)}) {
      try { out.push({ ok: true, token: await source.getToken(r) }) }
      catch (e) { out.push({ ok: false, code: e.code, status: e.statusCode, message: e.message }) }
    }
    process.stdout.write(JSON.stringify(out))
  `
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) {
    // Only the IMDS redirect: no workload identity, App Service or Arc variables may leak in.
    if (v !== undefined && !/^(AZURE_|IDENTITY_|MSI_|IMDS_|NODE_OPTIONS)/.test(k)) env[k] = v
  }
  env['AZURE_POD_IDENTITY_AUTHORITY_HOST'] = imdsUrl
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const exit = await new Promise<number | null>((resolve) => child.on('close', resolve))
  if (exit !== 0) throw new Error(`child failed (${String(exit)}): ${stderr.slice(0, 2000)}`)
  return JSON.parse(stdout) as ChildResult[]
}

t.test('managed identity against the IMDS double (AZURE_POD_IDENTITY_AUTHORITY_HOST, child process)', async (t) => {
  const imds = await startImdsEmulator({ tokenIssuer: bearer, clientIds: [DEFAULT_CLIENT_ID] })
  t.teardown(imds.close)

  const [first, second, hsm] = await inChild(imds.url, DEFAULT_CLIENT_ID, [VAULT, VAULT, HSM])
  t.equal(first?.ok, true, first?.message ?? 'first token')
  t.match(await claims(first?.token ?? ''), { aud: VAULT, appid: DEFAULT_CLIENT_ID })
  t.equal(second?.token, first?.token, 'cached')
  t.match(await claims(hsm?.token ?? ''), { aud: HSM })
  t.equal(imds.tokenRequests, 2, 'one IMDS request per resource')

  const [denied] = await inChild(imds.url, '11111111-2222-3333-4444-555555555555', [VAULT])
  t.same(denied, {
    ok: false,
    code: 'ERR_IDENTITY_UNAVAILABLE',
    status: 503,
    message: 'managed identity token request failed: IMDS answered 400 invalid_request: Identity not found (is the identity assigned to the container group? client_id 11111111-2222-3333-4444-555555555555)'
  })
})

t.test('managed identity with IMDS down: identity unavailable, naming IMDS', async (t) => {
  const imds = await startImdsEmulator({ tokenIssuer: bearer })
  const url = imds.url
  await imds.close()
  const [down] = await inChild(url, null, [VAULT])
  t.equal(down?.code, 'ERR_IDENTITY_UNAVAILABLE')
  t.match(down?.message, /^managed identity token request failed: IMDS unreachable \(network_error\) \(is the identity assigned to the container group\? system-assigned identity\)$/)
})
