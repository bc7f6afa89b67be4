import t from 'tap'
import { request } from 'undici'
import { decodeJwt } from 'jose'
import { createBearerIssuer } from '../../../src/emulator/bearer.ts'
import { startImdsEmulator } from '../../../src/emulator/imds.ts'
import type { ImdsEmulator, ImdsEmulatorOptions } from '../../../src/emulator/imds.ts'

const issuer = await createBearerIssuer()
const CLIENT = '11111111-2222-3333-4444-555555555555'
const THIM = { vcekCert: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', tcbm: '7308000000000003', certificateChain: '', cacheControl: '86400' }

async function start (extra: Partial<ImdsEmulatorOptions> = {}): Promise<ImdsEmulator> {
  const imds = await startImdsEmulator({ tokenIssuer: issuer, ...extra })
  t.teardown(imds.close)
  return imds
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- untyped JSON from the wire, walked by assertions
async function get (imds: ImdsEmulator, path: string, headers: Record<string, string> = { metadata: 'true' }): Promise<{ status: number, json: any }> {
  const res = await request(`${imds.url}${path}`, { headers })
  return { status: res.statusCode, json: await res.body.json() }
}

const imds = await start({ clientIds: [CLIENT], thim: () => THIM })

t.test('token: both paths, every value a string, expires_on present', async (t) => {
  t.match(imds.url, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.equal(imds.host, imds.url.slice('http://'.length))
  for (const path of ['/metadata/identity/oauth2/token', '/metadata/identity/oauth2/token/']) {
    const res = await get(imds, `${path}?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net`)
    t.equal(res.status, 200, path)
    t.same(Object.keys(res.json).sort(), ['access_token', 'client_id', 'expires_in', 'expires_on', 'ext_expires_in', 'not_before', 'refresh_token', 'resource', 'token_type'])
    for (const [name, value] of Object.entries(res.json)) t.type(value, 'string', `${name} is a string`)
    t.equal(res.json.refresh_token, '')
    t.equal(res.json.token_type, 'Bearer')
    t.equal(res.json.resource, 'https://vault.azure.net')
    t.equal(res.json.expires_in, '3599')
    const claims = decodeJwt(res.json.access_token)
    t.equal(claims.aud, 'https://vault.azure.net', 'aud = resource')
    t.equal(res.json.expires_on, String(claims.exp), 'expires_on = exp, epoch seconds')
    t.equal(res.json.not_before, String(claims.nbf))
    t.equal(claims['appid'], CLIENT, 'the assigned identity')
    t.type(claims['xms_az_rid'], 'string')
    t.ok(await issuer.verify(res.json.access_token), 'verifies with the shared issuer')
  }
})

t.test('resource: decoded once, or twice when pre-encoded', async (t) => {
  const twice = await get(imds, `/metadata/identity/oauth2/token?api-version=2018-02-01&resource=${encodeURIComponent(encodeURIComponent('https://managedhsm.azure.net'))}`)
  t.equal(twice.status, 200)
  t.equal(twice.json.resource, 'https://managedhsm.azure.net')
  t.equal(decodeJwt(twice.json.access_token).aud, 'https://managedhsm.azure.net')
  const plain = await get(imds, '/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net')
  t.equal(plain.json.resource, 'https://vault.azure.net', 'unencoded value')
})

t.test('request errors', async (t) => {
  const base = '/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net'
  const noHeader = await get(imds, base, {})
  t.same(noHeader, { status: 400, json: { error: 'invalid_request', error_description: 'Required metadata header not specified' } })
  t.equal((await get(imds, base, { metadata: 'false' })).status, 400, 'Metadata: false')
  t.equal((await get(imds, base, { metadata: 'True' })).status, 200, 'value case-insensitive')
  t.same(await get(imds, '/metadata/identity/oauth2/token?resource=https%3A%2F%2Fvault.azure.net'),
    { status: 400, json: { error: 'invalid_request', error_description: 'Required query variable \'api-version\' is missing' } })
  t.equal((await get(imds, '/metadata/identity/oauth2/token?api-version=latest&resource=https%3A%2F%2Fvault.azure.net')).status, 400, 'bad api-version')
  t.same(await get(imds, '/metadata/identity/oauth2/token?api-version=2018-02-01'),
    { status: 400, json: { error: 'invalid_request', error_description: 'Required query variable \'resource\' is missing' } })
  t.same((await get(imds, '/metadata/identity/oauth2/token?api-version=2018-02-01&resource=vault')).json.error, 'invalid_resource')
  t.same(await get(imds, `${base}&client_id=99999999-0000-0000-0000-000000000000`), { status: 400, json: { error: 'invalid_request', error_description: 'Identity not found' } })
  t.equal((await get(imds, `${base}&client_id=${CLIENT.toUpperCase()}`)).status, 200, 'assigned client id (case-insensitive)')
  t.equal((await get(imds, `${base}&client_id=${CLIENT}&object_id=x`)).status, 400, 'two selectors')
  t.equal((await get(imds, base, { metadata: 'true', 'x-forwarded-for': '10.0.0.1' })).status, 400, 'proxied')
  t.equal((await get(imds, '/metadata/instance?api-version=2021-02-01')).status, 404, 'other paths')
  const post = await request(`${imds.url}${base}`, { method: 'POST', headers: { metadata: 'true' } })
  t.equal(post.statusCode, 405)
  await post.body.dump()
})

t.test('any client id when clientIds is not given', async (t) => {
  const open = await start()
  const res = await get(open, '/metadata/identity/oauth2/token/?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net&client_id=abc')
  t.equal(res.status, 200)
  t.equal(decodeJwt(res.json.access_token)['appid'], 'abc')
  const thim = await get(open, '/metadata/THIM/amd/certification')
  t.same(thim.status, 404, 'THIM not configured')
})

t.test('THIM route', async (t) => {
  const res = await get(imds, '/metadata/THIM/amd/certification')
  t.same(res, { status: 200, json: THIM })
  t.equal((await get(imds, '/metadata/THIM/amd/certification', {})).status, 400, 'needs Metadata: true')
  t.ok(imds.thimRequests >= 2)
})

t.test('faults: IMDS-shaped bodies', async (t) => {
  const faulty = await start({ thim: () => THIM })
  const path = '/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net'
  for (const status of [404, 410, 429, 500]) {
    faulty.faults.tokenStatus = status
    const res = await get(faulty, path)
    t.equal(res.status, status)
    t.same(Object.keys(res.json), ['error', 'error_description'], `${status} body`)
    faulty.faults.thimStatus = status
    t.equal((await get(faulty, '/metadata/THIM/amd/certification')).status, status, `THIM ${status}`)
  }
  t.same((await get(faulty, path)).json, { error: 'unknown_error', error_description: 'Transient error, please retry' })
  faulty.faults.tokenStatus = undefined
  faulty.faults.thimStatus = undefined
  faulty.faults.delayMs = 10
  t.equal((await get(faulty, path)).status, 200, 'slow but answers')
  t.equal(faulty.tokenRequests, 6)
  t.equal(faulty.thimRequests, 4)
  const broken = await start({ thim: () => { throw new Error('boom') } })
  t.equal((await get(broken, '/metadata/THIM/amd/certification')).status, 500, 'a throwing THIM source is a 500, not a crash')
})

t.test('@azure/identity ManagedIdentityCredential gets a token (trailing-slash path, expires_on caching)', async (t) => {
  const counted = await start({ clientIds: [CLIENT] })
  process.env['AZURE_POD_IDENTITY_AUTHORITY_HOST'] = counted.url
  const { ManagedIdentityCredential } = await import('@azure/identity')
  const credential = new ManagedIdentityCredential(CLIENT)
  const token = await credential.getToken('https://vault.azure.net/.default')
  t.equal(decodeJwt(token.token).aud, 'https://vault.azure.net')
  t.ok(token.expiresOnTimestamp > Date.now() + 3000_000, 'lifetime from expires_on')
  await credential.getToken('https://vault.azure.net/.default')
  await new ManagedIdentityCredential(CLIENT).getToken('https://vault.azure.net/.default')
  t.equal(counted.tokenRequests, 1, 'MSAL caches the token because expires_on is present')
  const wrong = await new ManagedIdentityCredential('99999999-0000-0000-0000-000000000000').getToken('https://vault.azure.net/.default').then(() => null, (err: unknown) => err)
  t.ok(wrong instanceof Error, 'an unassigned identity fails')
})
