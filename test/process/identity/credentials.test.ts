// The real @azure/identity managed-identity credential against the IMDS double, in a child
// process each time: MSAL picks the IMDS endpoint from AZURE_POD_IDENTITY_AUTHORITY_HOST once per
// process. (Workload identity, in-process: test/unit/identity/credentials.test.ts.)
import t from 'tap'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { createBearerIssuer, DEFAULT_CLIENT_ID } from '../../../src/emulator/bearer.ts'
import { startImdsEmulator } from '../../../src/emulator/imds.ts'
import { runChild, type Owner } from '../../helpers/child-process.ts'

const VAULT = 'https://vault.azure.net'
const HSM = 'https://managedhsm.azure.net'
const TENANT = '00000000-5e4b-4c4a-8000-00000000e171'

const bearer = await createBearerIssuer({ tenantId: TENANT })

async function claims (token: string): Promise<Record<string, unknown>> {
  const c = await bearer.verify(token)
  if (c === null) throw new Error('token does not verify')
  return c
}

interface ChildResult { ok: boolean, token?: string, code?: string, message?: string, status?: number }

/** Runs the managed-identity token source in a fresh process pointed at `imdsUrl`. */
async function inChild (owner: Owner, imdsUrl: string, clientId: string | null, resources: string[]): Promise<ChildResult[]> {
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
  const r = await runChild(owner, process.execPath, ['--input-type=module', '-e', code], { env })
  if (r.status !== 0) throw new Error(`child failed (${String(r.status)}): ${r.stderr.slice(0, 2000)}`)
  return JSON.parse(r.stdout) as ChildResult[]
}

t.test('managed identity against the IMDS double (AZURE_POD_IDENTITY_AUTHORITY_HOST, child process)', async (t) => {
  const imds = await startImdsEmulator({ tokenIssuer: bearer, clientIds: [DEFAULT_CLIENT_ID] })
  t.teardown(imds.close)

  const [first, second, hsm] = await inChild(t, imds.url, DEFAULT_CLIENT_ID, [VAULT, VAULT, HSM])
  t.equal(first?.ok, true, first?.message ?? 'first token')
  t.match(await claims(first?.token ?? ''), { aud: VAULT, appid: DEFAULT_CLIENT_ID })
  t.equal(second?.token, first?.token, 'cached')
  t.match(await claims(hsm?.token ?? ''), { aud: HSM })
  t.equal(imds.tokenRequests, 2, 'one IMDS request per resource')

  const [denied] = await inChild(t, imds.url, '11111111-2222-3333-4444-555555555555', [VAULT])
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
  const [down] = await inChild(t, url, null, [VAULT])
  t.equal(down?.code, 'ERR_IDENTITY_UNAVAILABLE')
  t.match(down?.message, /^managed identity token request failed: IMDS unreachable \(network_error\) \(is the identity assigned to the container group\? system-assigned identity\)$/)
})
