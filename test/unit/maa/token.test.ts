import 'reflect-metadata'
import { createHash } from 'node:crypto'
import type { webcrypto } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import * as x509 from '@peculiar/x509'
import { exportJWK, SignJWT } from 'jose'
import t from 'tap'
import { Upstream } from '../../../src/http/upstream.ts'
import { createJwksCache, parseJwks } from '../../../src/maa/jwks-cache.ts'
import { issuerFor, verifyMaaToken } from '../../../src/maa/token.ts'
import { startHttpsServer } from '../../helpers/https-server.ts'

const crypto = globalThis.crypto
const RSA = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) }
const invalid = (check: string): { code: string, details: { check: string } } => ({ code: 'ERR_MAA_TOKEN_INVALID', details: { check } })

interface SigningKey { key: webcrypto.CryptoKey, publicKey: webcrypto.CryptoKey, kid: string, x5c: string }
async function signingKey (name: string): Promise<SigningKey> {
  const keys = await crypto.subtle.generateKey(RSA, true, ['sign', 'verify'])
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01', name: `CN=${name}`, keys, signingAlgorithm: RSA,
    notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2040-01-01T00:00:00Z')
  }, crypto)
  const der = Buffer.from(cert.rawData)
  return { key: keys.privateKey, publicKey: keys.publicKey, kid: createHash('sha256').update(der).digest('base64'), x5c: der.toString('base64') }
}

const [primary, rotated, attacker] = await Promise.all([signingKey('primary'), signingKey('rotated'), signingKey('attacker')])

// A fake MAA issuer: /certs serves whatever `certs` holds.
let certs: { status: number, body: string } = { status: 200, body: JSON.stringify({ keys: [{ kid: primary.kid, kty: 'RSA', x5c: [primary.x5c] }] }) }
let certsRequests = 0
const server = await startHttpsServer((req: IncomingMessage, res: ServerResponse) => {
  if (req.url === '/certs') certsRequests++
  res.writeHead(req.url === '/certs' ? certs.status : 404, { 'content-type': 'application/json' })
  res.end(req.url === '/certs' ? certs.body : '{}')
})
t.teardown(server.close)
const endpoint = `127.0.0.1:${server.port}`
const issuer = `https://${endpoint}`
const upstream = new Upstream({ name: 'maa', ca: server.ca, policy: { maxRetries: 0 } })
t.teardown(async () => { await upstream.close() })

const NOW = new Date('2024-06-01T00:00:00Z')
const nowS = Math.floor(NOW.getTime() / 1000)
let clock = NOW.getTime()
const jwks = createJwksCache({ upstream, now: () => new Date(clock) })

async function mint (over: { claims?: Record<string, unknown>, header?: Record<string, unknown>, key?: SigningKey, kid?: string } = {}): Promise<string> {
  const key = over.key ?? primary
  return await new SignJWT({ iss: issuer, iat: nowS, nbf: nowS, exp: nowS + 28800, 'x-ms-attestation-type': 'sevsnpvm', ...over.claims })
    .setProtectedHeader({ alg: 'RS256', jku: `${issuer}/certs`, kid: over.kid ?? key.kid, typ: 'JWT', ...over.header })
    .sign(key.key)
}
const verify = async (token: string, at: Date = NOW): Promise<Record<string, unknown>> =>
  await verifyMaaToken(token, { endpoint, jwks, now: at })

t.test('a genuine token verifies against the x5c of /certs', async (t) => {
  const claims = await verify(await mint())
  t.equal(claims.iss, issuer)
  t.equal(claims['x-ms-attestation-type'], 'sevsnpvm')
  t.equal(certsRequests, 1)
  await verify(await mint())
  t.equal(certsRequests, 1, 'cached')
  t.ok(await verify(await mint({ claims: { iss: `${issuer}/` } })), 'trailing-slash issuer accepted')
  t.ok(await verify(await mint({ header: { jku: undefined } })), 'jku is optional')
  t.ok(await verify(await mint({ header: { jku: `${issuer}/certs/` } })))
  t.ok(await verify(await mint({ claims: { exp: nowS - 30 } })), 'within the 60 s tolerance')
  t.ok(await verifyMaaToken(await mint(), { endpoint: endpoint.toUpperCase(), jwks, now: NOW }), 'endpoint case does not matter')
})

t.test('forged, expired, foreign and malformed tokens → ERR_MAA_TOKEN_INVALID', async (t) => {
  await t.rejects(verify(await mint({ key: attacker, kid: primary.kid })), invalid('signature'), 'signed by another key under the real kid')
  await t.rejects(verify(await mint({ claims: { exp: nowS - 3600 } })), invalid('exp'), 'expired')
  await t.rejects(verify(await mint(), new Date(NOW.getTime() + 9 * 3600_000)), invalid('exp'), 'expired by the clock')
  await t.rejects(verify(await mint({ claims: { exp: undefined } })), invalid('exp'), 'no exp')
  await t.rejects(verify(await mint({ claims: { nbf: nowS + 3600 } })), invalid('nbf'))
  await t.rejects(verify(await mint({ claims: { iss: 'https://sharedeus.eus.attest.azure.net' } })), invalid('iss'))
  await t.rejects(verify(await mint({ claims: { iss: undefined } })), invalid('iss'))
  await t.rejects(verify(await mint({ header: { jku: 'https://evil.example/certs' } })), invalid('jku'))
  await t.rejects(verify(await mint({ header: { kid: undefined } })), invalid('kid'))
  const hs = await new SignJWT({ iss: issuer, exp: nowS + 60 }).setProtectedHeader({ alg: 'HS256', kid: primary.kid }).sign(new Uint8Array(32))
  await t.rejects(verify(hs), invalid('alg'))
  const none = `${Buffer.from('{"alg":"none","kid":"x"}').toString('base64url')}.${Buffer.from('{}').toString('base64url')}.`
  await t.rejects(verify(none), invalid('alg'))
  await t.rejects(verify('not.a.jwt'), invalid('format'))
  await t.rejects(verify('nodots'), invalid('format'))
  const good = await mint()
  const [h, p, s] = good.split('.') as [string, string, string]
  const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>
  payload['x-ms-sevsnpvm-is-debuggable'] = true
  await t.rejects(verify(`${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`), invalid('signature'), 'edited payload')
  t.throws(() => issuerFor('https://x'), TypeError)
  t.throws(() => issuerFor(''), TypeError)
})

t.test('unknown kid: one refetch per 30 s, then the rotated key is found', async (t) => {
  const token = await mint({ key: rotated })
  const before = certsRequests
  await t.rejects(verify(token), invalid('kid'), 'fetched within 30 s: no refetch')
  t.equal(certsRequests, before)
  certs = { status: 200, body: JSON.stringify({ keys: [{ kid: primary.kid, kty: 'RSA', x5c: [primary.x5c] }, { kid: rotated.kid, kty: 'RSA', x5c: [rotated.x5c] }] }) }
  clock += 31_000
  t.ok(await verify(token, new Date(clock)), 'rotated key picked up')
  t.equal(certsRequests, before + 1)
  await t.rejects(verify(await mint({ kid: 'nope' }), new Date(clock)), invalid('kid'))
  t.equal(certsRequests, before + 1, 'still throttled')
  // Keys age out after an hour: a known kid is then fetched again.
  clock += 3_601_000
  t.ok(await verify(await mint(), new Date(clock)))
  t.equal(certsRequests, before + 2)
})

t.test('/certs failures surface as upstream errors', async (t) => {
  const fresh = (): ReturnType<typeof createJwksCache> => createJwksCache({ upstream })
  const saved = certs
  t.teardown(() => { certs = saved })
  certs = { status: 404, body: '{"error":{"code":"NotFound"}}' }
  await t.rejects(fresh().keyFor(issuer, primary.kid), { code: 'ERR_UPSTREAM_REJECTED', details: { upstreamStatus: 404 } })
  certs = { status: 500, body: '{}' }
  await t.rejects(fresh().keyFor(issuer, primary.kid), { code: 'ERR_UPSTREAM_UNAVAILABLE' })
  certs = { status: 200, body: 'not json' }
  await t.rejects(fresh().keyFor(issuer, primary.kid), { code: 'ERR_UPSTREAM_RESPONSE_INVALID' })
  certs = { status: 200, body: '{"keys":{}}' }
  await t.rejects(fresh().keyFor(issuer, primary.kid), { code: 'ERR_UPSTREAM_RESPONSE_INVALID' })
  await t.rejects(fresh().keyFor('http://x', 'k'), TypeError)
  const aborted = AbortSignal.abort()
  certs = saved
  await t.rejects(fresh().keyFor(issuer, primary.kid, aborted), { name: 'AbortError' })
})

t.test('parseJwks: x5c first, n/e as a fallback, junk skipped', async (t) => {
  const jwk = await exportJWK(rotated.publicKey)
  const keys = parseJwks(Buffer.from(JSON.stringify({
    keys: [
      { kid: 'a', kty: 'RSA', x5c: [primary.x5c] },
      { kid: 'b', kty: 'RSA', n: jwk.n, e: jwk.e },
      { kid: 'c', kty: 'RSA', x5c: ['not base64 DER'] },
      { kty: 'RSA', x5c: [primary.x5c] },
      'junk',
      { kid: '', x5c: [primary.x5c] }
    ]
  })))
  t.same([...keys.keys()], ['a', 'b'])
  t.equal(keys.get('a')?.asymmetricKeyType, 'rsa')
})
