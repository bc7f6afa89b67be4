import t from 'tap'
import crypto, { X509Certificate } from 'node:crypto'
import { SignJWT } from 'jose'
import { createReleaseClient, challengedResource, trustedChallenge } from '../../../src/akv/release-client.ts'
import type { ReleaseCall } from '../../../src/akv/release-client.ts'
import { verifyReleaseJws } from '../../../src/akv/release-jws.ts'
import { startAkvEmulator } from '../../../src/emulator/akv.ts'
import { createBearerIssuer } from '../../../src/emulator/bearer.ts'
import { createLocalPki } from '../../../src/emulator/pki.ts'
import { Upstream } from '../../../src/http/upstream.ts'
import type { UpstreamRequest, UpstreamResponse } from '../../../src/http/upstream.ts'
import { startHttpsServer } from '../../helpers/https-server.ts'
import { createRootCa } from '../../helpers/test-pki.ts'

const pki = await createLocalPki()
const ca = pki.caCertPem
const bearer = await createBearerIssuer()
const vaultToken = await bearer.mint({ aud: 'https://vault.azure.net' })
const hsmToken = await bearer.mint({ aud: 'https://managedhsm.azure.net' })

// A tiny attestation issuer (OpenID metadata + x5c JWKS, like MAA) so the emulator can verify `target`.
const issuerCert = await createRootCa({ keyType: 'RSA-2048', commonName: 'tiny MAA' })
let issuerUrl = ''
const issuer = await startHttpsServer((req, res) => {
  const send = (body: unknown): void => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify(body)) }
  if (req.url === '/.well-known/openid-configuration') return send({ issuer: issuerUrl, jwks_uri: `${issuerUrl}/certs` })
  if (req.url === '/certs') return send({ keys: [{ kid: 'k1', kty: 'RSA', x5c: [issuerCert.b64] }] })
  res.writeHead(404).end()
}, { pki })
issuerUrl = issuer.url
t.teardown(issuer.close)

const wrapping = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
const maaToken = await new SignJWT({ 'x-ms-attestation-type': 'sevsnpvm', 'x-ms-runtime': { keys: [{ ...wrapping.publicKey.export({ format: 'jwk' }), kid: 'w1', key_ops: ['encrypt'] }] } })
  .setProtectedHeader({ alg: 'RS256', kid: 'k1', typ: 'JWT' })
  .setIssuer(issuerUrl)
  .setIssuedAt()
  .setExpirationTime('1h')
  .sign(issuerCert.privateKey)
const policy = { version: '1.0.0', anyOf: [{ authority: issuerUrl, allOf: [{ claim: 'x-ms-attestation-type', equals: 'sevsnpvm' }] }] }

const akv = await startAkvEmulator({ tls: await pki.issue(['127.0.0.1', 'localhost']), tokenVerifier: bearer.verify, maaCa: ca })
t.teardown(akv.close)
const key = await akv.store.createKey('k1', { kty: 'oct-HSM', exportable: true, releasePolicy: { data: Buffer.from(JSON.stringify(policy)).toString('base64url') } })

const sleeps: number[] = []
/** Each backoff clears the emulator's fault, so "fails, is retried, succeeds" is deterministic. */
const upstream = new Upstream({
  name: 'akv',
  ca,
  policy: { maxRetries: 3, baseDelayMs: 10, maxDelayMs: 1000 },
  sleep: async (ms) => { sleeps.push(ms); if (clearFaultOnRetry) akv.faults.status = undefined }
})
let clearFaultOnRetry = true
t.teardown(async () => { await upstream.close() })
const client = createReleaseClient({ upstream, apiVersion: '7.4', enc: null })

function call (extra: Partial<ReleaseCall> = {}): ReleaseCall {
  return { akvEndpoint: akv.endpoint, keyName: 'k1', keyVersion: null, target: maaToken, accessToken: vaultToken, ...extra }
}

async function failure (promise: Promise<unknown>): Promise<Error & { code?: string, statusCode?: number, details?: Record<string, unknown> }> {
  try {
    await promise
  } catch (err) {
    return err as Error & { code?: string }
  }
  throw new Error('expected a rejection')
}

t.beforeEach(() => {
  akv.requests.length = 0
  sleeps.length = 0
  clearFaultOnRetry = true
  delete akv.faults.status
  delete akv.faults.retryAfter
})

t.test('success: one request (no challenge round trip), a JWS that verifies for this key', async (t) => {
  const jws = await client.release(call())
  t.same(akv.requests, [{ method: 'POST', path: '/keys/k1/release', status: 200 }])
  const verified = await verifyReleaseJws(jws, { vaultHost: akv.endpoint, keyName: 'k1', enc: 'CKM_RSA_AES_KEY_WRAP', trustedRoots: [new X509Certificate(akv.signerRootPem)] })
  t.equal(verified.key.kid, `https://${akv.endpoint}/keys/k1/${key.version}`)

  await client.release(call({ keyVersion: key.version }))
  t.same(akv.requests.at(-1), { method: 'POST', path: `/keys/k1/${key.version}/release`, status: 200 }, 'name/version')
})

t.test('401: no token, or a token for another resource → ERR_ACCESS_DENIED with AKV\'s code and message', async (t) => {
  let minted = 0
  const tokenFor = async (): Promise<string> => { minted++; return vaultToken }
  const none = await failure(client.release(call({ accessToken: '', tokenFor })))
  t.match(none, { code: 'ERR_ACCESS_DENIED', statusCode: 403, message: 'AKV rejected the access token: Unauthorized: AKV10000: Request is missing a Bearer or PoP token.' })
  t.match(none.details, { upstream: 'akv', upstreamStatus: 401, upstreamCode: 'Unauthorized' })
  const wrongAud = await failure(client.release(call({ accessToken: hsmToken, tokenFor })))
  t.match(wrongAud, { code: 'ERR_ACCESS_DENIED', message: /The bearer token is not valid for this resource/ })
  t.equal(minted, 0, 'the challenge named the resource we already used: no second token')
  t.notMatch(`${none.message}${wrongAud.message}`, /eyJ/)
})

t.test('403 policy denial → ERR_KEY_RELEASE_DENIED; a permission 403 → ERR_ACCESS_DENIED', async (t) => {
  const denied = await failure(client.release(call({ target: 'not-an-attestation-token' })))
  t.match(denied, { code: 'ERR_KEY_RELEASE_DENIED', statusCode: 403, message: 'AKV denied the key release: Forbidden: Target environment attestation statement cannot be verified.' })
  t.match(denied.details, { upstreamInnerCode: 'AccessDenied' })
  akv.faults.status = 403
  const rbac = await failure(client.release(call()))
  t.match(rbac, { code: 'ERR_ACCESS_DENIED', message: /^AKV denied the identity: Forbidden: Caller is not authorized/ })
  t.equal(sleeps.length, 0, '403 is never retried')
})

t.test('404 → ERR_KEY_NOT_FOUND; 400 → ERR_UPSTREAM_REJECTED with AKV\'s code', async (t) => {
  const missing = await failure(client.release(call({ keyName: 'missing' })))
  t.match(missing, { code: 'ERR_KEY_NOT_FOUND', statusCode: 403, message: /^AKV has no key missing: KeyNotFound: A key with \(name\/id\) missing was not found/ })
  const oldApi = createReleaseClient({ upstream, apiVersion: '2016-10-01', enc: null })
  const rejected = await failure(oldApi.release(call()))
  t.match(rejected, { code: 'ERR_UPSTREAM_REJECTED', statusCode: 502, message: /^AKV rejected the release request: HTTP 400 BadParameter: The api-version/ })
})

t.test('429 is retried with and without Retry-After, then succeeds', async (t) => {
  akv.faults.status = 429
  akv.faults.retryAfter = '1'
  t.type(await client.release(call()), 'string')
  t.same(akv.requests.map((r) => r.status), [429, 200])
  t.same(sleeps, [1000], 'Retry-After honoured (1 s)')

  akv.requests.length = 0
  sleeps.length = 0
  akv.faults.status = 429
  delete akv.faults.retryAfter
  t.type(await client.release(call()), 'string')
  t.same(akv.requests.map((r) => r.status), [429, 200], 'a bare 429 is retried too (the Azure SDK would fail here)')
  t.equal(sleeps.length, 1)
  t.ok((sleeps[0] ?? Infinity) <= 10, 'backoff, not Retry-After')
})

t.test('a 500 storm → ERR_UPSTREAM_UNAVAILABLE after the retries', async (t) => {
  clearFaultOnRetry = false
  akv.faults.status = 500
  const err = await failure(client.release(call()))
  t.match(err, { code: 'ERR_UPSTREAM_UNAVAILABLE', statusCode: 503 })
  t.match(err.details, { upstream: 'akv', upstreamStatus: 500, attempts: 4, upstreamCode: 'InternalServerError' })
  t.equal(akv.requests.length, 4)
})

t.test('an AKV that is down → ERR_UPSTREAM_UNAVAILABLE', async (t) => {
  const gone = await startAkvEmulator({ tls: await pki.issue(['127.0.0.1']), tokenVerifier: bearer.verify })
  const endpoint = gone.endpoint
  await gone.close()
  const err = await failure(client.release(call({ akvEndpoint: endpoint })))
  t.match(err, { code: 'ERR_UPSTREAM_UNAVAILABLE', message: /connection refused/ })
})

t.test('challenge guard: a 401 naming evil.example never gets a token', async (t) => {
  const seen: string[] = []
  const evil = await startHttpsServer((req, res) => {
    seen.push(String(req.headers.authorization))
    res.writeHead(401, { 'www-authenticate': 'Bearer authorization="https://login.microsoftonline.com/t", resource="https://evil.example"', 'content-type': 'application/json' })
    res.end(JSON.stringify({ error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' } }))
  }, { pki })
  t.teardown(evil.close)
  const asked: string[] = []
  const err = await failure(client.release(call({ akvEndpoint: `127.0.0.1:${evil.port}`, tokenFor: async (r) => { asked.push(r); return 'should-never-be-sent' } })))
  t.match(err, { code: 'ERR_ACCESS_DENIED' })
  t.same(asked, [], 'no token minted for the challenged resource')
  t.equal(seen.length, 1, 'no second request')
  t.notOk(seen.some((h) => h.includes('should-never-be-sent')))
})

/** An Upstream double that answers from a script and records what it was asked. */
function scripted (answers: Array<Partial<UpstreamResponse>>): { upstream: { request: (r: UpstreamRequest) => Promise<UpstreamResponse> }, seen: UpstreamRequest[] } {
  const seen: UpstreamRequest[] = []
  return {
    seen,
    upstream: {
      request: async (r) => {
        seen.push(r)
        const a = answers.shift() ?? { status: 500 }
        return { status: 200, headers: {}, body: Buffer.alloc(0), attempts: 1, ...a }
      }
    }
  }
}
const ok = (value: unknown): Partial<UpstreamResponse> => ({ status: 200, body: Buffer.from(JSON.stringify({ value })) })
const challenge = (resource: string): Partial<UpstreamResponse> => ({ status: 401, headers: { 'www-authenticate': `Bearer authorization="https://login.microsoftonline.com/t", resource="${resource}"` } })

t.test('wire shape: URL, api-version, headers, body (enc only when configured)', async (t) => {
  const s = scripted([ok('a.b.c'), ok('a.b.c')])
  const plain = createReleaseClient({ upstream: s.upstream, apiVersion: '7.4', enc: null })
  t.equal(await plain.release({ akvEndpoint: 'myvault.vault.azure.net', keyName: 'my-key', keyVersion: 'abc123', target: 'MAA', accessToken: 'AAD' }), 'a.b.c')
  const first = s.seen[0]
  t.equal(String(first?.url), 'https://myvault.vault.azure.net/keys/my-key/abc123/release?api-version=7.4')
  t.equal(first?.method, 'POST')
  t.same(first?.headers, { authorization: 'Bearer AAD', 'content-type': 'application/json', accept: 'application/json' })
  t.equal(first?.body, '{"target":"MAA"}')
  const withEnc = createReleaseClient({ upstream: s.upstream, apiVersion: '7.6', enc: 'RSA_AES_KEY_WRAP_256' })
  const signal = new AbortController().signal
  await withEnc.release({ akvEndpoint: 'h.managedhsm.azure.net:8443', keyName: 'k', keyVersion: null, target: 'MAA', accessToken: 'AAD', signal })
  t.equal(String(s.seen[1]?.url), 'https://h.managedhsm.azure.net:8443/keys/k/release?api-version=7.6')
  t.equal(s.seen[1]?.body, '{"target":"MAA","enc":"RSA_AES_KEY_WRAP_256"}')
  t.equal(s.seen[1]?.signal, signal, 'the caller\'s signal reaches the request')
  t.throws(() => createReleaseClient({ upstream: s.upstream, apiVersion: '', enc: null }), TypeError)
})

t.test('a challenge for a parent domain of the vault is honoured once', async (t) => {
  const host = 'kv1.vault.sovereign.example'
  const asked: string[] = []
  const tokenFor = async (r: string): Promise<string> => { asked.push(r); return 'SECOND' }
  const s = scripted([challenge('https://vault.sovereign.example/'), ok('x.y.z')])
  const c = createReleaseClient({ upstream: s.upstream, apiVersion: '7.4', enc: null })
  t.equal(await c.release({ akvEndpoint: host, keyName: 'k', keyVersion: null, target: 'M', accessToken: 'FIRST', tokenFor }), 'x.y.z')
  t.same(asked, ['https://vault.sovereign.example'])
  t.same(s.seen.map((r) => r.headers?.['authorization']), ['Bearer FIRST', 'Bearer SECOND'])

  const twice = scripted([challenge('https://vault.sovereign.example'), challenge('https://vault.sovereign.example')])
  const c2 = createReleaseClient({ upstream: twice.upstream, apiVersion: '7.4', enc: null })
  await t.rejects(c2.release({ akvEndpoint: host, keyName: 'k', keyVersion: null, target: 'M', accessToken: 'FIRST', tokenFor }), { code: 'ERR_ACCESS_DENIED', message: 'AKV rejected the access token: HTTP 401' })
  t.equal(twice.seen.length, 2, 'only one retry')

  const callerToken = scripted([challenge('https://vault.sovereign.example')])
  const c3 = createReleaseClient({ upstream: callerToken.upstream, apiVersion: '7.4', enc: null })
  await t.rejects(c3.release({ akvEndpoint: host, keyName: 'k', keyVersion: null, target: 'M', accessToken: 'CALLER' }), { code: 'ERR_ACCESS_DENIED' })
  t.equal(callerToken.seen.length, 1, 'a caller-supplied token is never replaced')
})

t.test('odd answers: 200 without value, 409, empty 401', async (t) => {
  const s = scripted([ok(undefined), { status: 200, body: Buffer.from('not json') }, ok(''), { status: 409, body: Buffer.from('{"error":{"code":"Conflict","message":"busy"}}') }])
  const c = createReleaseClient({ upstream: s.upstream, apiVersion: '7.4', enc: null })
  const args = { akvEndpoint: 'v.vault.azure.net', keyName: 'k', keyVersion: null, target: 'M', accessToken: 'A' }
  for (let i = 0; i < 3; i++) await t.rejects(c.release(args), { code: 'ERR_UPSTREAM_RESPONSE_INVALID', message: 'AKV v.vault.azure.net: release answer has no "value" string' })
  await t.rejects(c.release(args), { code: 'ERR_UPSTREAM_REJECTED', message: /HTTP 409 \(Conflict\) for key release/ })
})

t.test('challenge parsing and the parent-domain rule', async (t) => {
  t.equal(challengedResource('Bearer authorization="https://login.windows.net/t", resource="https://vault.azure.net"'), 'https://vault.azure.net')
  t.equal(challengedResource('Bearer authorization="https://login.windows.net/t", scope="https://managedhsm.azure.net/.default"'), 'https://managedhsm.azure.net')
  t.equal(challengedResource('Bearer realm=""'), null)
  t.equal(challengedResource(undefined), null)
  const table: Array<[string, string, string | null]> = [
    ['https://vault.azure.net', 'x.vault.azure.net', 'https://vault.azure.net'],
    ['https://VAULT.azure.net/', 'x.vault.azure.net:443', 'https://vault.azure.net'],
    ['https://vault.azure.net', 'vault.azure.net', null],
    ['https://evil.example', 'x.vault.azure.net', null],
    ['https://vault.azure.net.evil.example', 'x.vault.azure.net', null],
    ['https://net', 'x.vault.azure.net', null],
    // Only the audiences skr knows for vaults: never a broader one, nor another service's.
    ['https://azure.net', 'x.vault.azure.net', null],
    ['https://usgovcloudapi.net', 'x.vault.usgovcloudapi.net', null],
    ['https://managedhsm.azure.net', 'h.managedhsm.azure.net', 'https://managedhsm.azure.net'],
    ['http://vault.azure.net', 'x.vault.azure.net', null],
    ['https://vault.azure.net:444', 'x.vault.azure.net', null],
    ['https://vault.azure.net/path', 'x.vault.azure.net', null],
    ['https://u@vault.azure.net', 'x.vault.azure.net', null],
    ['https://0.1', '127.0.0.1', null],
    ['not a url', 'x.vault.azure.net', null]
  ]
  for (const [resource, host, want] of table) t.equal(trustedChallenge(resource, host), want, `${resource} for ${host}`)
})
