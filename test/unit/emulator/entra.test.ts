import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { decodeJwt } from 'jose'
import { WorkloadIdentityCredential } from '@azure/identity'
import type { PipelinePolicy } from '@azure/core-rest-pipeline'
import { createBearerIssuer } from '../../../src/emulator/bearer.ts'
import { startEntraEmulator } from '../../../src/emulator/entra.ts'
import { createLocalPki } from '../../../src/emulator/pki.ts'

const TENANT = 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee'
const CLIENT = '12345678-1234-1234-1234-123456789abc'
const FEDERATED = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDpza3IifQ.c2ln'

const pki = await createLocalPki()
const issuer = await createBearerIssuer({ tenantId: TENANT })
const entra = await startEntraEmulator({ tls: await pki.issue(['127.0.0.1', 'localhost']), tokenIssuer: issuer, tenantId: TENANT, clientId: CLIENT, federatedToken: FEDERATED })
const dispatcher = new Agent({ connect: { ca: pki.caCertPem } })
t.teardown(async () => { await entra.close(); await dispatcher.close() })

const dir = mkdtempSync(join(tmpdir(), 'entra-'))
const tokenFile = join(dir, 'token')
writeFileSync(tokenFile, FEDERATED + '\n')
const badFile = join(dir, 'bad-token')
writeFileSync(badFile, 'eyJhbGciOiJub25lIn0.e30.')

// Trust the emulator's CA for this credential only (its pipeline honours request.tlsSettings).
const tlsSettings = { ca: pki.caCertPem }
const trust: PipelinePolicy = { name: 'trust-test-ca', sendRequest: async (req, next) => { req.tlsSettings = tlsSettings; return await next(req) } }
const credentialFor = (tokenFilePath: string, clientId = CLIENT): WorkloadIdentityCredential => new WorkloadIdentityCredential({
  tenantId: TENANT, clientId, tokenFilePath, authorityHost: entra.url, disableInstanceDiscovery: true,
  additionalPolicies: [{ policy: trust, position: 'perCall' }], retryOptions: { maxRetries: 0 }
})

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- untyped JSON from the wire, walked by assertions
async function post (form: Record<string, string>, path = `/${TENANT}/oauth2/v2.0/token`): Promise<{ status: number, json: any }> {
  const res = await request(`${entra.url}${path}?client-request-id=x`, {
    dispatcher, method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString()
  })
  return { status: res.statusCode, json: await res.body.json() }
}

const goodForm = {
  client_id: CLIENT,
  scope: 'https://managedhsm.azure.net/.default',
  grant_type: 'client_credentials',
  client_assertion: FEDERATED,
  client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
  'x-client-SKU': 'msal.js.node',
  'x-client-VER': '5.6.0',
  'x-ms-lib-capability': 'retry-after, h429',
  'x-client-current-telemetry': '5|771,2,,,|,'
}

t.test('a real WorkloadIdentityCredential gets a token for the requested resource', async (t) => {
  const token = await credentialFor(tokenFile).getToken('https://vault.azure.net/.default')
  const claims = decodeJwt(token.token)
  t.equal(claims.aud, 'https://vault.azure.net')
  t.equal(claims['appid'], CLIENT)
  t.equal(claims['tid'], TENANT)
  t.ok(await issuer.verify(token.token), 'signed by the shared issuer')
  t.ok(token.expiresOnTimestamp > Date.now() + 3000_000)
  t.equal(entra.tokenRequests, 1)
})

t.test('a wrong assertion or client id fails', async (t) => {
  const err = await credentialFor(badFile).getToken('https://vault.azure.net/.default').then(() => null, (e: unknown) => e)
  t.ok(err instanceof Error, 'wrong assertion refused')
  t.match(String((err as Error).message), /AADSTS700211/)
  const err2 = await credentialFor(tokenFile, '00000000-0000-0000-0000-000000000001').getToken('https://vault.azure.net/.default').then(() => null, (e: unknown) => e)
  t.match(String((err2 as Error | null)?.message), /AADSTS700016/, 'unknown client id refused')
})

t.test('openid-configuration and keys', async (t) => {
  const res = await request(`${entra.url}/${TENANT}/v2.0/.well-known/openid-configuration`, { dispatcher })
  const doc = await res.body.json() as Record<string, string>
  t.equal(res.statusCode, 200)
  t.equal(doc['token_endpoint'], `${entra.url}/${TENANT}/oauth2/v2.0/token`)
  t.equal(doc['authorization_endpoint'], `${entra.url}/${TENANT}/oauth2/v2.0/authorize`)
  t.equal(doc['issuer'], `${entra.url}/${TENANT}/v2.0`)
  t.equal(doc['jwks_uri'], `${entra.url}/${TENANT}/discovery/v2.0/keys`)
  const keys = await request(doc['jwks_uri'] ?? '', { dispatcher })
  const jwks = await keys.body.json() as { keys: Array<Record<string, string>> }
  t.same(jwks.keys.map((k) => [k['kty'], k['alg']]), [['RSA', 'RS256']])
  const other = await request(`${entra.url}/other-tenant/v2.0/.well-known/openid-configuration`, { dispatcher })
  t.equal(other.statusCode, 400, 'unknown tenant')
  t.match(await other.body.json(), { error: 'invalid_tenant', error_codes: [90002] })
})

t.test('token endpoint validation is AADSTS-shaped', async (t) => {
  const ok = await post(goodForm)
  t.equal(ok.status, 200, 'telemetry fields ignored')
  t.same(Object.keys(ok.json).sort(), ['access_token', 'expires_in', 'ext_expires_in', 'token_type'])
  t.same([ok.json.token_type, ok.json.expires_in, ok.json.ext_expires_in], ['Bearer', 3599, 3599])
  t.equal(decodeJwt(ok.json.access_token).aud, 'https://managedhsm.azure.net')
  const withOidc = await post({ ...goodForm, scope: 'https://vault.azure.net/.default openid profile offline_access' })
  t.equal(decodeJwt(withOidc.json.access_token).aud, 'https://vault.azure.net', 'OIDC scopes ignored')

  const cases: Array<[string, Record<string, string>, number, string, number]> = [
    ['wrong grant', { ...goodForm, grant_type: 'password' }, 400, 'unsupported_grant_type', 70003],
    ['no client_id', { ...goodForm, client_id: '' }, 400, 'invalid_request', 900144],
    ['wrong client_id', { ...goodForm, client_id: 'someone-else' }, 400, 'unauthorized_client', 700016],
    ['wrong assertion type', { ...goodForm, client_assertion_type: 'urn:x' }, 400, 'invalid_request', 90014],
    ['no assertion', { ...goodForm, client_assertion: '' }, 400, 'invalid_request', 90014],
    ['wrong assertion', { ...goodForm, client_assertion: 'a.b.c' }, 401, 'invalid_client', 700211],
    ['scope without /.default', { ...goodForm, scope: 'https://vault.azure.net/keys' }, 400, 'invalid_scope', 1002012],
    ['two scopes', { ...goodForm, scope: 'https://vault.azure.net/.default https://managedhsm.azure.net/.default' }, 400, 'invalid_scope', 1002012],
    ['bare /.default', { ...goodForm, scope: '/.default' }, 400, 'invalid_scope', 1002012]
  ]
  for (const [name, form, status, error, code] of cases) {
    const res = await post(form)
    t.equal(res.status, status, name)
    t.match(res.json, { error, error_codes: [code], error_description: new RegExp(`^AADSTS${code}: `) }, name)
    t.type(res.json.trace_id, 'string')
    t.notOk(JSON.stringify(res.json).includes(FEDERATED), 'the assertion is never echoed')
  }
  t.equal((await post(goodForm, '/nope')).status, 404)
  const get = await request(`${entra.url}/${TENANT}/oauth2/v2.0/token`, { dispatcher })
  t.equal(get.statusCode, 405)
  await get.body.dump()
  const big = await post({ ...goodForm, pad: 'x'.repeat(70_000) })
  t.equal(big.status, 400, 'oversized form')
})
