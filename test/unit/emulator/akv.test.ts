import t from 'tap'
import crypto, { X509Certificate } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import https from 'node:https'
import tls from 'node:tls'
import { Agent, request } from 'undici'
import { SignJWT, compactVerify, decodeProtectedHeader } from 'jose'
import { KeyClient } from '@azure/keyvault-keys'
import type { PipelinePolicy } from '@azure/core-rest-pipeline'
import { startAkvEmulator } from '../../../src/emulator/akv.ts'
import type { AkvEmulator, AkvEmulatorOptions } from '../../../src/emulator/akv.ts'
import { createBearerIssuer } from '../../../src/emulator/bearer.ts'
import { createKeyStore } from '../../../src/emulator/akv-store.ts'
import type { EmulatedKey } from '../../../src/emulator/akv-key-types.ts'
import { createLocalPki } from '../../../src/emulator/pki.ts'
import { parseKeyHsm, RELEASE_ENCS } from '../../../src/akv/key-hsm.ts'
import type { ReleaseEnc } from '../../../src/akv/key-hsm.ts'
import { unwrapKeyHsm } from '../../../src/akv/unwrap.ts'
import { verifyReleaseJws } from '../../../src/akv/release-jws.ts'
import { ReleaseUnverified } from '../../../src/errors.ts'
import { startHttpsServer } from '../../helpers/https-server.ts'
import { createRootCa } from '../../helpers/test-pki.ts'

const pki = await createLocalPki()
const ca = pki.caCertPem
const dispatcher = new Agent({ connect: { ca } })
const bearer = await createBearerIssuer()
const vaultToken = await bearer.mint({ aud: 'https://vault.azure.net' })
const akvTls = await pki.issue(['127.0.0.1', 'localhost'])

// ---- a tiny attestation issuer: OpenID metadata + /certs with an x5c-only JWKS, like MAA ----
const issuerCert = await createRootCa({ keyType: 'RSA-2048', commonName: 'tiny MAA' })
const ISSUER_KID = 'tiny-maa-key-1'
let issuerUrl = ''
const issuerServer = await startHttpsServer((req, res) => {
  const send = (body: unknown): void => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify(body)) }
  if (req.url === '/.well-known/openid-configuration') return send({ issuer: issuerUrl, jwks_uri: `${issuerUrl}/certs` })
  if (req.url === '/certs') return send({ keys: [{ kid: ISSUER_KID, kty: 'RSA', x5c: [issuerCert.b64] }] })
  res.writeHead(404).end()
}, { pki })
issuerUrl = issuerServer.url
t.teardown(async () => { await issuerServer.close(); await dispatcher.close() })

const wrapping = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
const wrappingJwk = { ...wrapping.publicKey.export({ format: 'jwk' }), kid: 'ephemeral-wrapping-key', key_ops: ['encrypt'] }

const goodClaims = {
  'x-ms-attestation-type': 'sevsnpvm',
  'x-ms-sevsnpvm-is-debuggable': false,
  'x-ms-sevsnpvm-vmpl': 0,
  'x-ms-runtime': { keys: [wrappingJwk] }
}

async function maaToken (claims: Record<string, unknown> = goodClaims, opts: { iss?: string, exp?: number, key?: KeyObject, kid?: string } = {}): Promise<string> {
  const iat = Math.floor(Date.now() / 1000)
  return await new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid: opts.kid ?? ISSUER_KID, jku: `${issuerUrl}/certs`, typ: 'JWT' })
    .setIssuer(opts.iss ?? issuerUrl)
    .setIssuedAt(iat)
    .setNotBefore(iat)
    .setExpirationTime(opts.exp ?? iat + 28800)
    .sign(opts.key ?? issuerCert.privateKey)
}

const policyDoc = (): unknown => ({
  version: '1.0.0',
  anyOf: [{
    authority: `${issuerUrl}/`,
    allOf: [
      { claim: 'x-ms-attestation-type', equals: 'sevsnpvm' },
      { claim: 'x-ms-sevsnpvm-is-debuggable', equals: 'false' },
      { claim: 'x-ms-sevsnpvm-vmpl', equals: '0' }
    ]
  }]
})
const policyB64url = (): string => Buffer.from(JSON.stringify(policyDoc())).toString('base64url')

async function start (extra: Partial<AkvEmulatorOptions> = {}): Promise<AkvEmulator> {
  const akv = await startAkvEmulator({ tls: akvTls, tokenVerifier: bearer.verify, maaCa: ca, ...extra })
  t.teardown(akv.close)
  return akv
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- untyped JSON from the wire, walked by assertions
interface Reply { status: number, headers: Record<string, unknown>, json: any }

async function call (akv: AkvEmulator, method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown, token: string | null = vaultToken): Promise<Reply> {
  const res = await request(`${akv.url}${path}`, {
    dispatcher,
    method,
    headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) })
  })
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, json: text === '' ? null : JSON.parse(text) }
}

const release = async (akv: AkvEmulator, name: string, body: Record<string, unknown>, query = 'api-version=7.4'): Promise<Reply> =>
  await call(akv, 'POST', `/keys/${name}/release?${query}`, body)

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- untyped JSON from the wire, walked by assertions
function segmentJson (jws: string, index: number): any {
  return JSON.parse(Buffer.from(jws.split('.')[index] ?? '', 'base64url').toString('utf8'))
}

async function verified (akv: AkvEmulator, jws: string, keyName: string, enc: ReleaseEnc, nonce?: string): Promise<Awaited<ReturnType<typeof verifyReleaseJws>>> {
  return await verifyReleaseJws(jws, {
    vaultHost: akv.endpoint,
    keyName,
    enc,
    ...(nonce === undefined ? {} : { nonce }),
    trustedRoots: [new X509Certificate(akv.signerRootPem)]
  })
}

function expectedPlaintext (key: EmulatedKey): Buffer {
  return Buffer.isBuffer(key.material) ? key.material : key.material.export({ format: 'der', type: 'pkcs8' })
}

async function rejection (promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (err) {
    return err
  }
  return null
}

const akv = await start()
const settings = { exportable: true, releasePolicy: { data: policyB64url() } }
const octKey = await akv.store.createKey('oct-key', { kty: 'oct-HSM', ...settings })
const rsaKey = await akv.store.createKey('rsa-key', { kty: 'RSA-HSM', ...settings })
const ecKey = await akv.store.createKey('ec-key', { kty: 'EC-HSM', crv: 'P-384', ...settings })
await akv.store.createKey('locked', { kty: 'oct-HSM' })

t.test('401 challenge (vault): exact header, JSON body, sent before the body is read', async (t) => {
  const raw = await new Promise<{ status: number, rawHeaders: string[], body: string }>((resolve, reject) => {
    const req = https.request(`${akv.url}/keys/oct-key/release?api-version=7.4`, {
      method: 'POST', ca, headers: { 'content-type': 'application/json', 'content-length': '1000' }
    }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => { body += c.toString() })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, rawHeaders: res.rawHeaders, body }); req.destroy() })
    })
    req.on('error', (err) => { if (!req.destroyed) reject(err) })
    req.flushHeaders() // headers only: a body of 1000 bytes is promised but never sent
  })
  t.equal(raw.status, 401)
  const at = raw.rawHeaders.indexOf('WWW-Authenticate')
  t.ok(at >= 0, 'header name as AKV spells it')
  t.equal(raw.rawHeaders[at + 1], 'Bearer authorization="https://login.microsoftonline.com/00000000-5e4b-4c4a-8000-0000000005cc", resource="https://vault.azure.net"')
  t.same(JSON.parse(raw.body), { error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' } })

  const wrongAud = await call(akv, 'POST', '/keys/oct-key/release?api-version=7.4', {}, await bearer.mint({ aud: 'https://managedhsm.azure.net' }))
  t.equal(wrongAud.status, 401, 'token for another resource')
  t.match(wrongAud.headers['www-authenticate'], /^Bearer authorization=/)
  const slash = await release(akv, 'oct-key', { target: await maaToken() })
  t.equal(slash.status, 200, 'sanity')
  const trailing = await call(akv, 'POST', '/keys/oct-key/release?api-version=7.4', { target: await maaToken() }, await bearer.mint({ aud: 'https://vault.azure.net/' }))
  t.equal(trailing.status, 200, 'audience with a trailing slash accepted')
  const otherIssuer = await createBearerIssuer()
  const forged = await call(akv, 'POST', '/keys/oct-key/release?api-version=7.4', {}, await otherIssuer.mint({ aud: 'https://vault.azure.net' }))
  t.equal(forged.status, 401, 'token from another issuer')
  t.equal((await call(akv, 'POST', '/keys/oct-key/release?api-version=7.4', {}, 'not-a-jwt')).status, 401, 'garbage token')
  const expired = await (await createBearerIssuer({ now: () => new Date(Date.now() - 7200_000) })).mint({ aud: 'https://vault.azure.net' })
  t.equal((await call(akv, 'POST', '/keys/oct-key/release?api-version=7.4', {}, expired)).status, 401, 'expired bearer')
})

t.test('401 challenge (mhsm): lowercase header name, empty body', async (t) => {
  const hsm = await start({ kind: 'mhsm', tenantId: 'tenant-x' })
  const raw = await new Promise<{ status: number, rawHeaders: string[], body: string }>((resolve, reject) => {
    const req = https.request(`${hsm.url}/keys/k/release?api-version=7.4`, { method: 'POST', ca }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => { body += c.toString() })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, rawHeaders: res.rawHeaders, body }) })
    })
    req.on('error', reject)
    req.end()
  })
  t.equal(raw.status, 401)
  const at = raw.rawHeaders.indexOf('www-authenticate')
  t.ok(at >= 0, 'lowercase header name')
  t.equal(raw.rawHeaders[at + 1], 'Bearer authorization="https://login.microsoftonline.com/tenant-x", resource="https://managedhsm.azure.net"')
  t.equal(raw.body, '', 'empty body')
  t.equal((await call(hsm, 'GET', '/keys/k?api-version=7.4', undefined, vaultToken)).status, 401, 'a vault token is not an mHSM token')
  const hsmToken = await bearer.mint({ aud: 'https://managedhsm.azure.net' })
  const created = await call(hsm, 'POST', '/keys/k/create?api-version=7.4', { kty: 'oct', attributes: { exportable: true }, release_policy: { data: policyB64url() } }, hsmToken)
  t.equal(created.status, 200)
  t.equal(created.json.key.kty, 'oct-HSM', 'mHSM keys are HSM keys')
})

t.test('release succeeds for oct, RSA and EC keys with every enc; the JWS verifies and key_hsm unwraps', async (t) => {
  for (const key of [octKey, rsaKey, ecKey]) {
    for (const enc of RELEASE_ENCS) {
      const nonce = `nonce-${enc}`
      const res = await release(akv, key.name, { target: await maaToken(), enc, nonce })
      t.equal(res.status, 200, `${key.kty} ${enc}`)
      const jws: string = res.json.value
      t.match(jws, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, 'unpadded b64url segments')
      const v = await verified(akv, jws, key.name, enc, nonce)
      t.equal(v.key.kty, key.kty)
      const envelope = parseKeyHsm(v.key.key_hsm)
      t.same([envelope.schemaVersion, envelope.kid, envelope.alg, envelope.enc], ['1.0', 'ephemeral-wrapping-key', 'dir', enc])
      const plaintext = unwrapKeyHsm(envelope.ciphertext, enc, wrapping.privateKey)
      t.ok(plaintext.equals(expectedPlaintext(key)), 'unwraps to the stored material')
    }
  }
})

t.test('JWS shape: header, chain, payload', async (t) => {
  const res = await release(akv, 'rsa-key', { target: await maaToken() })
  const jws: string = res.json.value
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- untyped JSON from the wire, walked by assertions
  const header = decodeProtectedHeader(jws) as Record<string, any>
  t.same(Object.keys(header), ['alg', 'kid', 'x5t', 'x5t#S256', 'typ', 'x5c'])
  t.equal(header['alg'], 'RS256')
  t.equal(header['typ'], 'JWT')
  t.equal(header['x5c'].length, 3, 'leaf, intermediate, root')
  for (const entry of header['x5c']) t.match(entry, /^[A-Za-z0-9+/]+={0,2}$/, 'padded std b64')
  const der = Buffer.from(header['x5c'][0], 'base64')
  const sha1 = crypto.createHash('sha1').update(der).digest()
  t.equal(header['kid'], sha1.toString('hex').toUpperCase())
  t.equal(header['x5t'], sha1.toString('base64url'))
  t.equal(header['x5t#S256'], crypto.createHash('sha256').update(der).digest('base64url'))
  const leaf = new X509Certificate(der)
  const inter = new X509Certificate(Buffer.from(header['x5c'][1], 'base64'))
  const root = new X509Certificate(Buffer.from(header['x5c'][2], 'base64'))
  t.equal(root.raw.equals(new X509Certificate(akv.signerRootPem).raw), true, 'x5c ends in signerRootPem')
  t.ok(leaf.verify(inter.publicKey) && inter.verify(root.publicKey), 'the chain links')
  t.equal(leaf.checkIP('127.0.0.1'), '127.0.0.1', 'SAN names the vault host')
  t.equal(leaf.checkHost('localhost'), 'localhost')
  t.equal(leaf.publicKey.asymmetricKeyDetails?.modulusLength, 2048, 'RSA-2048 leaf')
  await compactVerify(jws, leaf.publicKey, { algorithms: ['RS256'] })

  const payload = segmentJson(jws, 1)
  t.same(payload.request, { 'api-version': '7.4', enc: 'CKM_RSA_AES_KEY_WRAP', kid: `https://${akv.endpoint}/keys/rsa-key` }, 'default enc, versionless kid, no nonce')
  const bundle = payload.response.key
  t.same(Object.keys(bundle.key), ['kid', 'kty', 'key_ops', 'n', 'e', 'key_hsm'])
  t.equal(bundle.key.kid, `https://${akv.endpoint}/keys/rsa-key/${rsaKey.version}`)
  t.match(rsaKey.version, /^[0-9a-f]{32}$/)
  const pub = crypto.createPublicKey(rsaKey.material as KeyObject).export({ format: 'jwk' })
  t.same([bundle.key.n, bundle.key.e], [pub.n, pub.e], 'RSA public members')
  t.same(bundle.attributes, { enabled: true, created: rsaKey.created, updated: rsaKey.created, recoveryLevel: 'Recoverable+Purgeable', recoverableDays: 90, exportable: true })
  t.same(bundle.tags, {})
  t.same(bundle.release_policy, { data: policyB64url(), immutable: false })
  t.notMatch(bundle.release_policy.data, /=/, 'unpadded')

  const ec = segmentJson((await release(akv, 'ec-key', { target: await maaToken() })).json.value, 1).response.key.key
  t.same(Object.keys(ec), ['kid', 'kty', 'key_ops', 'crv', 'x', 'y', 'key_hsm'])
  t.equal(ec.crv, 'P-384')
  const oct = segmentJson((await release(akv, 'oct-key', { target: await maaToken() })).json.value, 1).response.key.key
  t.same(Object.keys(oct), ['kid', 'kty', 'key_ops', 'key_hsm'], 'no k for oct')

  const versioned = await call(akv, 'POST', `/keys/rsa-key/${rsaKey.version}/release?api-version=7.5`, { target: await maaToken() })
  t.equal(versioned.status, 200, 'explicit version')
  t.equal(segmentJson(versioned.json.value, 1).request.kid, `https://${akv.endpoint}/keys/rsa-key/${rsaKey.version}`)
})

t.test('api-version handling', async (t) => {
  for (const version of ['7.3', '7.4', '7.5', '7.6-preview.2', '7.6', '2025-07-01']) {
    t.equal((await release(akv, 'oct-key', { target: await maaToken() }, `api-version=${version}`)).status, 200, version)
  }
  const encoded = await release(akv, 'oct-key', { target: await maaToken() }, 'api%2Dversion=2025-07-01')
  t.equal(encoded.status, 200, 'api%2Dversion (the JS SDK) accepted')
  t.equal(segmentJson(encoded.json.value, 1).request['api-version'], '2025-07-01')
  for (const query of ['api-version=7.2', 'api-version=', 'x=1']) {
    const res = await release(akv, 'oct-key', { target: await maaToken() }, query)
    t.equal(res.status, 400, query)
    t.equal(res.json.error.code, 'BadParameter')
  }
})

t.test('denials and errors have AKV shapes and statuses', async (t) => {
  const denied = { error: { code: 'Forbidden', message: 'Target environment attestation statement cannot be verified.', innererror: { code: 'AccessDenied' } } }
  const policyDenied = await release(akv, 'oct-key', { target: await maaToken({ ...goodClaims, 'x-ms-sevsnpvm-is-debuggable': true }) })
  t.equal(policyDenied.status, 403)
  t.same(policyDenied.json, denied, 'policy denial')

  const past = Math.floor(Date.now() / 1000) - 60
  const expired = await release(akv, 'oct-key', { target: await maaToken(goodClaims, { exp: past }) })
  t.same([expired.status, expired.json], [403, denied], 'expired MAA token')
  const other = await release(akv, 'oct-key', { target: await maaToken(goodClaims, { iss: 'https://sharedeus.eus.attest.azure.net' }) })
  t.equal(other.status, 403, 'issuer not in the policy')
  t.same(other.json, denied)
  const forger = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
  t.equal((await release(akv, 'oct-key', { target: await maaToken(goodClaims, { key: forger }) })).status, 403, 'signed by a key the issuer does not publish')
  t.equal((await release(akv, 'oct-key', { target: await maaToken(goodClaims, { kid: 'unknown-kid' }) })).status, 403, 'unknown kid')
  t.equal((await release(akv, 'oct-key', { target: 'not.a.jwt' })).status, 403, 'garbage target')
  const noKeys = await release(akv, 'oct-key', { target: await maaToken({ ...goodClaims, 'x-ms-runtime': { keys: [{ ...wrappingJwk, key_ops: ['verify'] }] } }) })
  t.same([noKeys.status, noKeys.json], [403, denied], 'no runtime key may encrypt')
  const useEnc = await release(akv, 'oct-key', { target: await maaToken({ ...goodClaims, 'x-ms-runtime': { keys: [{ kty: 'EC', kid: 'ec', key_ops: ['encrypt'] }, { ...wrappingJwk, key_ops: undefined, use: 'enc' }] } }) })
  t.equal(useEnc.status, 200, 'use=enc qualifies; a non-RSA key is skipped')

  const missing = await release(akv, 'nope', { target: await maaToken() })
  t.equal(missing.status, 404)
  t.same(missing.json, { error: { code: 'KeyNotFound', message: 'A key with (name/id) nope was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182' } })
  t.equal((await call(akv, 'POST', `/keys/oct-key/${'0'.repeat(32)}/release?api-version=7.4`, { target: await maaToken() })).status, 404, 'unknown version')

  const locked = await release(akv, 'locked', { target: await maaToken() })
  t.same([locked.status, locked.json], [403, { error: { code: 'Forbidden', message: 'The key is not exportable or has no release policy.', innererror: { code: 'KeyNotExportable' } } }], 'not exportable')

  for (const [name, body] of [['unsupported enc', { target: 'x', enc: 'RSA_OAEP' }], ['no target', {}], ['nonce not a string', { target: 'x', nonce: 5 }]] as const) {
    const res = await release(akv, 'oct-key', body)
    t.same([res.status, res.json.error.code], [400, 'BadParameter'], name)
  }
  for (const body of ['{', '[]', '"x"', '']) {
    const res = await call(akv, 'POST', '/keys/oct-key/release?api-version=7.4', body)
    t.same([res.status, res.json.error.code], [400, 'BadParameter'], `body ${JSON.stringify(body)}`)
  }
  t.equal((await call(akv, 'POST', '/keys/bad_name/release?api-version=7.4', { target: 'x' })).status, 400, 'invalid key name')
  t.equal((await call(akv, 'GET', '/secrets/x?api-version=7.4')).status, 404, 'unknown route')
  t.equal((await call(akv, 'PUT', '/keys/a/b/release?api-version=7.4', {})).status, 405, 'wrong method')
  t.equal((await call(akv, 'GET', '/keys/%E0%A4%A?api-version=7.4')).status, 400, 'undecodable name')
})

t.test('import (PUT) with both policy encodings, create (POST), get', async (t) => {
  const json = Buffer.from(JSON.stringify(policyDoc()))
  const octBytes = crypto.randomBytes(32)
  const imported = await call(akv, 'PUT', '/keys/imported-url?api-version=7.4', {
    key: { kty: 'oct-HSM', k: octBytes.toString('base64url'), key_size: 256, key_ops: ['encrypt', 'decrypt'] },
    hsm: true,
    attributes: { exportable: true },
    release_policy: { contentType: 'application/json; charset=utf-8', data: json.toString('base64url'), immutable: false }
  })
  t.equal(imported.status, 200)
  t.same(Object.keys(imported.json.key), ['kid', 'kty', 'key_ops'], 'no private material in the bundle')
  t.same(imported.json.release_policy, { contentType: 'application/json; charset=utf-8', data: json.toString('base64url'), immutable: false })

  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
  const stdPadded = await call(akv, 'PUT', '/keys/imported-std?api-version=7.4', {
    key: { ...rsa.export({ format: 'jwk' }), kty: 'RSA' },
    attributes: { exportable: true },
    release_policy: { data: json.toString('base64'), immutable: true }
  })
  t.equal(stdPadded.status, 200, 'padded std b64 policy data')

  // @azure/keyvault-keys sends the HSM flag as `Hsm`: an RSA import with it must be stored as RSA-HSM.
  const sdkSpelling = await call(akv, 'PUT', '/keys/imported-sdk-hsm?api-version=7.4', {
    key: { ...rsa.export({ format: 'jwk' }), kty: 'RSA' },
    Hsm: true,
    attributes: { exportable: true },
    release_policy: { data: json.toString('base64url'), immutable: false }
  })
  t.equal(sdkSpelling.status, 200)
  t.equal(akv.store.get('imported-sdk-hsm')?.kty, 'RSA-HSM', 'the SDK\'s `Hsm` spelling is honoured')
  t.equal(stdPadded.json.key.kty, 'RSA')
  t.notOk('d' in stdPadded.json.key, 'no d')
  t.equal(stdPadded.json.release_policy.data, json.toString('base64url'), 'stored in canonical form')
  t.equal(stdPadded.json.release_policy.immutable, true)

  const rel = await release(akv, 'imported-url', { target: await maaToken() })
  const v = await verified(akv, rel.json.value, 'imported-url', 'CKM_RSA_AES_KEY_WRAP')
  t.ok(unwrapKeyHsm(parseKeyHsm(v.key.key_hsm).ciphertext, 'CKM_RSA_AES_KEY_WRAP', wrapping.privateKey).equals(octBytes), 'imported material released')
  const relRsa = await release(akv, 'imported-std', { target: await maaToken(), enc: 'RSA_AES_KEY_WRAP_384' })
  const vRsa = await verified(akv, relRsa.json.value, 'imported-std', 'RSA_AES_KEY_WRAP_384')
  const der = unwrapKeyHsm(parseKeyHsm(vRsa.key.key_hsm).ciphertext, 'RSA_AES_KEY_WRAP_384', wrapping.privateKey)
  t.ok(der.equals(rsa.export({ format: 'der', type: 'pkcs8' })), 'imported RSA key released as PKCS#8')

  const changed = await call(akv, 'PUT', '/keys/imported-std?api-version=7.4', {
    key: { ...rsa.export({ format: 'jwk' }), kty: 'RSA' }, attributes: { exportable: true }, release_policy: { data: Buffer.from('{"anyOf":[{"authority":"https://x","allOf":[{"claim":"a","equals":"b"}]}]}').toString('base64url') }
  })
  t.same([changed.status, changed.json.error.code], [400, 'BadParameter'], 'immutable policy cannot change')

  const created = await call(akv, 'POST', '/keys/created-ec/create?api-version=7.4', {
    kty: 'EC-HSM', crv: 'P-256', key_ops: ['sign', 'verify'], attributes: { exportable: true }, release_policy: { data: policyB64url() }
  })
  t.equal(created.status, 200)
  t.same([created.json.key.kty, created.json.key.crv, created.json.key.key_ops], ['EC-HSM', 'P-256', ['sign', 'verify']])
  t.notOk('d' in created.json.key)
  const got = await call(akv, 'GET', '/keys/created-ec?api-version=7.4')
  t.same(got.json.key, created.json.key, 'GET answers the same bundle')

  const bad: Array<[string, string, unknown]> = [
    ['exportable without policy', '/keys/x1/create', { kty: 'RSA', attributes: { exportable: true } }],
    ['policy on a non-exportable key', '/keys/x2/create', { kty: 'RSA', release_policy: { data: policyB64url() } }],
    ['malformed policy', '/keys/x3/create', { kty: 'oct', attributes: { exportable: true }, release_policy: { data: 'e30' } }],
    ['unknown kty', '/keys/x4/create', { kty: 'DSA' }],
    ['bad RSA size', '/keys/x5/create', { kty: 'RSA', key_size: 1024 }],
    ['bad curve', '/keys/x6/create', { kty: 'EC', crv: 'P-192' }],
    ['import without private parts', '/keys/x7', { key: { kty: 'RSA', n: 'AQAB', e: 'AQAB' } }],
    ['import oct too large', '/keys/x8', { key: { kty: 'oct', k: crypto.randomBytes(64).toString('base64url') } }],
    ['import without key', '/keys/x9', {}]
  ]
  for (const [name, path, body] of bad) {
    const res = await call(akv, path.endsWith('create') ? 'POST' : 'PUT', `${path}?api-version=7.4`, body)
    t.same([res.status, res.json.error.code], [400, 'BadParameter'], name)
  }
  t.equal((await call(akv, 'PUT', '/keys/x10?api-version=7.4', { key: { kty: 'oct', k: 'AA' } }, null)).status, 401, 'set-up needs a bearer too')
})

t.test('fault modes produce the artefacts they promise', async (t) => {
  const faulty = await start({ store: akv.store })
  const roots = [new X509Certificate(faulty.signerRootPem)]
  const releaseWith = async (mode: NonNullable<AkvEmulatorOptions['faults']>['corruptJws'], enc?: ReleaseEnc): Promise<string> => {
    faulty.faults.corruptJws = mode
    const res = await release(faulty, 'oct-key', { target: await maaToken(), ...(enc === undefined ? {} : { enc }) })
    t.equal(res.status, 200, `${String(mode)}: well-formed 200`)
    return res.json.value
  }
  const check = async (jws: string, enc: ReleaseEnc = 'CKM_RSA_AES_KEY_WRAP'): Promise<string | undefined> => {
    const err = await rejection(verifyReleaseJws(jws, { vaultHost: faulty.endpoint, keyName: 'oct-key', enc, trustedRoots: roots }))
    t.ok(err instanceof ReleaseUnverified, 'the client verifier refuses it')
    return (err as ReleaseUnverified).details['check'] as string | undefined
  }

  const sig = await releaseWith('signature')
  t.equal(await check(sig), 'signature')
  t.ok(await rejection(compactVerify(sig, new X509Certificate(Buffer.from(decodeProtectedHeader(sig).x5c?.[0] ?? '', 'base64')).publicKey)), 'signature does not verify under x5c[0]')

  const untrusted = await releaseWith('x5c-untrusted')
  t.equal(await check(untrusted), 'chain')
  const ux5c = (decodeProtectedHeader(untrusted).x5c ?? []).map((c) => new X509Certificate(Buffer.from(c, 'base64')))
  t.equal(ux5c.length, 3)
  await compactVerify(untrusted, ux5c[0]!.publicKey)
  t.ok(ux5c[0]!.verify(ux5c[1]!.publicKey) && ux5c[2]!.verify(ux5c[2]!.publicKey), 'a self-consistent chain...')
  t.notOk(ux5c[2]!.raw.equals(roots[0]!.raw), '...to another root')

  const wrongKid = await releaseWith('wrong-kid')
  t.equal(await check(wrongKid), 'request.kid')
  const wk = segmentJson(wrongKid, 1)
  t.equal(wk.request.kid, `https://${faulty.endpoint}/keys/oct-key-replayed`)
  t.match(wk.response.key.key.kid, new RegExp(`/keys/oct-key-replayed/${octKey.version}$`))

  const wrongEnc = await releaseWith('wrong-enc')
  t.equal(await check(wrongEnc), 'request.enc')
  const we = segmentJson(wrongEnc, 1)
  t.equal(we.request.enc, 'RSA_AES_KEY_WRAP_256', 'claims another enc than the one asked (default)')
  const weEnv = parseKeyHsm(we.response.key.key.key_hsm)
  t.equal(weEnv.enc, 'RSA_AES_KEY_WRAP_256')
  t.ok(unwrapKeyHsm(weEnv.ciphertext, 'RSA_AES_KEY_WRAP_256', wrapping.privateKey).equals(octKey.material as Buffer), 'a consistent lie: wrapped with the enc it names')

  const trunc = await releaseWith('truncate-ciphertext')
  const v = await verifyReleaseJws(trunc, { vaultHost: faulty.endpoint, keyName: 'oct-key', enc: 'CKM_RSA_AES_KEY_WRAP', trustedRoots: roots })
  const env = parseKeyHsm(v.key.key_hsm)
  t.equal(env.ciphertext.length, 256 + 40 - 8, 'eight bytes short')
  t.throws(() => unwrapKeyHsm(env.ciphertext, 'CKM_RSA_AES_KEY_WRAP', wrapping.privateKey), 'does not unwrap')

  const none = await releaseWith('alg-none')
  t.equal(decodeProtectedHeader(none).alg, 'none')
  t.match(none, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.$/, 'empty signature')
  t.ok(['compact', 'alg'].includes(await check(none) ?? ''), 'refused as unsigned')

  const host = await releaseWith('wrong-host')
  t.equal(await check(host), 'host')
  const hostLeaf = new X509Certificate(Buffer.from(decodeProtectedHeader(host).x5c?.[0] ?? '', 'base64'))
  t.equal(hostLeaf.checkHost('wrong-host.invalid'), 'wrong-host.invalid')
  t.equal(hostLeaf.checkIP('127.0.0.1'), undefined)
  await compactVerify(host, hostLeaf.publicKey)

  faulty.faults.corruptJws = undefined
  faulty.faults.status = 429
  faulty.faults.retryAfter = '7'
  const throttled = await release(faulty, 'oct-key', { target: await maaToken() })
  t.same([throttled.status, throttled.headers['retry-after'], throttled.json.error.code], [429, '7', 'Throttled'])
  faulty.faults.retryAfter = undefined
  const bare = await release(faulty, 'oct-key', { target: await maaToken() })
  t.same([bare.status, bare.headers['retry-after']], [429, undefined], 'bare 429')
  for (const [status, code] of [[401, 'Unauthorized'], [403, 'Forbidden'], [404, 'KeyNotFound'], [500, 'InternalServerError'], [503, 'ServiceUnavailable']] as const) {
    faulty.faults.status = status
    const res = await release(faulty, 'oct-key', { target: await maaToken() })
    t.same([res.status, res.json.error.code], [status, code], `fault ${status}`)
    if (status === 401) t.equal(res.headers['www-authenticate'], undefined, '401 fault has no challenge')
  }
  faulty.faults.status = 503
  faulty.faults.retryAfter = 'bad\nvalue'
  t.ok(await rejection(release(faulty, 'oct-key', { target: await maaToken() })), 'an invalid Retry-After knob drops the connection...')
  faulty.faults.retryAfter = undefined
  faulty.faults.status = undefined
  t.equal((await release(faulty, 'oct-key', { target: await maaToken() })).status, 200, '...without taking the emulator down')
  faulty.faults.delayMs = 20
  t.equal((await release(faulty, 'oct-key', { target: await maaToken() })).status, 200, 'slow but answers')
})

t.test('the requests log has method, path and status only', async (t) => {
  t.ok(akv.requests.length > 20)
  for (const entry of akv.requests) t.same(Object.keys(entry).sort(), ['method', 'path', 'status'])
  const text = JSON.stringify(akv.requests)
  t.notOk(text.includes(vaultToken.slice(-20)), 'no bearer')
  t.notOk(text.includes('api-version'), 'no query')
  t.notOk(text.includes(issuerUrl), 'no bodies')
  t.match(akv.requests, [{ method: 'POST', path: '/keys/oct-key/release', status: 401 }])
})

t.test('the Azure SDK KeyClient (challenge with an empty first body, api%2Dversion) releases a key', async (t) => {
  const tlsSettings = { ca }
  const trust: PipelinePolicy = { name: 'trust-test-ca', sendRequest: async (req, next) => { req.tlsSettings = tlsSettings; return await next(req) } }
  const credential = { getToken: async (scopes: string | string[]) => ({ token: await bearer.mint({ aud: String(Array.isArray(scopes) ? scopes[0] : scopes).replace(/\/\.default$/, '') }), expiresOnTimestamp: Date.now() + 3600_000 }) }
  const client = new KeyClient(akv.url, credential, { disableChallengeResourceVerification: true, retryOptions: { maxRetries: 0 }, additionalPolicies: [{ policy: trust, position: 'perCall' }] })
  const before = akv.requests.length
  const result = await client.releaseKey('ec-key', await maaToken(), { nonce: 'sdk-nonce', algorithm: 'RSA_AES_KEY_WRAP_256' })
  const v = await verified(akv, result.value, 'ec-key', 'RSA_AES_KEY_WRAP_256', 'sdk-nonce')
  t.ok(unwrapKeyHsm(parseKeyHsm(v.key.key_hsm).ciphertext, 'RSA_AES_KEY_WRAP_256', wrapping.privateKey).equals(expectedPlaintext(ecKey)))
  t.same(akv.requests.slice(before).map((r) => r.status), [401, 200], 'challenge, then the release')
  const denied = await rejection(client.releaseKey('ec-key', await maaToken({ ...goodClaims, 'x-ms-attestation-type': 'tdxvm' })))
  t.match(denied, { statusCode: 403, code: 'Forbidden' }, 'the SDK sees the AKV error envelope')
})

t.test('the emulator survives hostile requests', async (t) => {
  const raw = async (path: string, headers: Record<string, string> = {}): Promise<number> => await new Promise((resolve, reject) => {
    // The TLS name check stays on; only the name it checks is the address, not the odd Host header.
    const req = https.request(`${akv.url}${path}`, { method: 'POST', ca, headers, checkServerIdentity: (_host, cert) => tls.checkServerIdentity('127.0.0.1', cert) }, (res) => { res.resume(); res.on('end', () => { resolve(res.statusCode ?? 0) }) })
    req.on('error', reject)
    req.end('{"target":')
  })
  t.equal(await raw('/keys/oct-key/release?api-version=7.4', { authorization: `Bearer ${vaultToken}` }), 400, 'truncated JSON')
  t.equal(await raw('//keys//release'), 404)
  t.equal(await raw('/keys/oct-key/release?api-version=7.4', { host: 'bad host!' , authorization: `Bearer ${vaultToken}` }), 400, 'odd Host header')
  t.equal((await release(akv, 'oct-key', { target: await maaToken() })).status, 200, 'still serving')
})

t.test('a key store file round-trips with mode 0600', async (t) => {
  const { mkdtempSync, statSync, readFileSync, writeFileSync } = await import('node:fs')
  const { join } = await import('node:path')
  const { tmpdir } = await import('node:os')
  const dir = mkdtempSync(join(tmpdir(), 'akv-store-'))
  const file = join(dir, 'keys.json')
  writeFileSync(file, JSON.stringify({ keys: [{ name: 'from-file', kty: 'oct-HSM', exportable: true, releasePolicy: { policy: policyDoc() } }, { name: 'ec-file', kty: 'EC', crv: 'P-256' }] }))
  const store = createKeyStore({ file })
  const first = store.get('FROM-FILE')
  t.ok(first !== undefined && Buffer.isBuffer(first.material) && first.material.length === 32, 'generated on load; names case-insensitive')
  t.equal(first?.releasePolicy?.data, policyB64url())
  t.equal(statSync(file).mode & 0o777, 0o600)
  await store.createKey('rsa-file', { kty: 'RSA', size: 2048, exportable: true, releasePolicy: { data: policyB64url() } })
  const text = readFileSync(file, 'utf8')
  t.match(text, /BEGIN PRIVATE KEY/, 'PKCS#8 PEM material')
  const again = createKeyStore({ file })
  t.equal(again.list().length, 3)
  t.ok((again.get('from-file')?.material as Buffer).equals(first?.material as Buffer), 'same oct bytes')
  t.equal(again.get('ec-file')?.crv, 'P-256')
  t.equal(again.get('from-file', first?.version)?.version, first?.version)
  writeFileSync(file, '{"keys":[{"name":"x","kty":"RSA","material":"nope"}]}')
  t.throws(() => createKeyStore({ file }), { code: 'ERR_CONFIG_INVALID' })
  writeFileSync(file, 'not json')
  t.throws(() => createKeyStore({ file }), { code: 'ERR_CONFIG_INVALID' })
})
