import t from 'tap'
import crypto from 'node:crypto'
import type { X509Certificate } from 'node:crypto'
import { CompactSign } from 'jose'
import { RELEASE_JWS_ALGS, verifyReleaseJws } from '../../../src/akv/release-jws.ts'
import type { VerifyReleaseOptions } from '../../../src/akv/release-jws.ts'
import { buildKeyHsm, parseKeyHsm } from '../../../src/akv/key-hsm.ts'
import type { ReleaseEnc } from '../../../src/akv/key-hsm.ts'
import { wrapForRelease } from '../../../src/akv/wrap.ts'
import { unwrapKeyHsm } from '../../../src/akv/unwrap.ts'
import { plaintextToJwk } from '../../../src/akv/jwk.ts'
import { createIntermediateCa, createLeaf, createRootCa, createSignerPki, x5cOf } from '../../helpers/test-pki.ts'
import type { TestCert } from '../../helpers/test-pki.ts'

// tap's subtest type (the last overload of t.test takes just the callback).
type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

const UNVERIFIED = 'ERR_RELEASE_UNVERIFIED'
const DAY = 24 * 60 * 60 * 1000
const HOST = 'myvault.vault.test'
const VERSION = '0123456789abcdef0123456789abcdef'

const pki = await createSignerPki({ dnsNames: [HOST] })
const { root, intermediate, leaf } = pki
const wrapping = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
const octKey = crypto.randomBytes(32)

const b64url = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

interface PayloadOptions { host?: string, name?: string, requestKid?: unknown, keyKid?: unknown, enc?: ReleaseEnc | null, nonce?: string, key?: Record<string, unknown> | null }

function payloadFor (o: PayloadOptions = {}): Record<string, unknown> {
  const host = o.host ?? HOST
  const name = o.name ?? 'mykey'
  const enc = o.enc === undefined ? 'CKM_RSA_AES_KEY_WRAP' : o.enc
  const request: Record<string, unknown> = { 'api-version': '7.4', kid: o.requestKid ?? `https://${host}/keys/${name}` }
  if (enc !== null) request['enc'] = enc
  if (o.nonce !== undefined) request['nonce'] = o.nonce
  const keyHsm = buildKeyHsm({ kid: 'TpmEphemeralEncryptionKey', enc: enc ?? 'CKM_RSA_AES_KEY_WRAP', ciphertext: wrapForRelease(octKey, enc ?? 'CKM_RSA_AES_KEY_WRAP', wrapping.publicKey) })
  const key = o.key === null
    ? undefined
    : (o.key ?? { kid: o.keyKid ?? `https://${host}/keys/${name}/${VERSION}`, kty: 'oct-HSM', key_ops: ['wrapKey', 'unwrapKey'], key_hsm: keyHsm })
  return {
    request,
    response: { key: { key, attributes: { enabled: true, exportable: true }, tags: {}, release_policy: { data: 'e30', immutable: false } } }
  }
}

async function sign (payload: unknown, o: { signer?: TestCert, x5c?: unknown, alg?: string, header?: Record<string, unknown> } = {}): Promise<string> {
  const signer = o.signer ?? leaf
  const alg = o.alg ?? (signer.keyType.startsWith('RSA') ? 'RS256' : signer.keyType === 'P-384' ? 'ES384' : 'ES256')
  const header: Record<string, unknown> = { alg, typ: 'JWT', x5c: o.x5c ?? x5cOf(signer, intermediate), ...o.header }
  if (o.x5c === null) delete header['x5c']
  const body = typeof payload === 'string' ? Buffer.from(payload) : Buffer.from(JSON.stringify(payload))
  return await new CompactSign(body).setProtectedHeader(header as { alg: string }).sign(signer.privateKey)
}

function options (o: Partial<VerifyReleaseOptions> = {}): VerifyReleaseOptions {
  return { vaultHost: HOST, keyName: 'mykey', enc: 'CKM_RSA_AES_KEY_WRAP', trustedRoots: pki.trustedRoots, ...o }
}

async function rejects (t: Tap, jws: string | Promise<string>, check: string, opts: Partial<VerifyReleaseOptions> = {}, name = check): Promise<void> {
  const text = await jws
  await t.rejects(verifyReleaseJws(text, options(opts)), { code: UNVERIFIED, name: 'ReleaseUnverified', statusCode: 403, details: { check } }, name)
  try {
    await verifyReleaseJws(text, options(opts))
  } catch (err) {
    const message = (err as Error).message
    for (const segment of text.split('.')) if (segment.length > 8) t.notOk(message.includes(segment), `${name}: no JWS text in the message`)
  }
}

t.test('a genuine release verifies, and its key unwraps', async (t) => {
  const jws = await sign(payloadFor())
  const result = await verifyReleaseJws(jws, options())
  t.equal(result.signer.fingerprint256, leaf.cert.fingerprint256, 'the signer is the x5c leaf')
  t.equal(result.header['alg'], 'RS256')
  t.same(result.key.key_ops, ['wrapKey', 'unwrapKey'])
  t.equal(result.key.kty, 'oct-HSM')
  t.equal(result.key.kid, `https://${HOST}/keys/mykey/${VERSION}`)
  t.same((result.payload['request'] as Record<string, unknown>)['kid'], `https://${HOST}/keys/mykey`)
  const env = parseKeyHsm(result.key.key_hsm)
  const plaintext = unwrapKeyHsm(env.ciphertext, 'CKM_RSA_AES_KEY_WRAP', wrapping.privateKey)
  t.same(plaintextToJwk(plaintext, result.key), { k: octKey.toString('base64url'), key_ops: ['wrapKey', 'unwrapKey'], kty: 'oct' })
})

t.test('accepted variations', async (t) => {
  const ok = async (jws: string | Promise<string>, opts: Partial<VerifyReleaseOptions>, name: string): Promise<void> => {
    await t.resolves(verifyReleaseJws(await jws, options(opts)), name)
  }
  await ok(sign(payloadFor(), { x5c: x5cOf(leaf, intermediate, root) }), {}, 'x5c ending in the trusted root')
  await ok(sign(payloadFor()), { vaultHost: `${HOST}:8443` }, 'vaultHost with a port')
  await ok(sign(payloadFor({ requestKid: `https://${HOST}:8443/keys/mykey` })), { vaultHost: `${HOST}:8443` }, 'kid URLs with a port')
  await ok(sign(payloadFor()), { vaultHost: 'MyVault.Vault.Test' }, 'host case-insensitive')
  await ok(sign(payloadFor({ requestKid: `https://MYVAULT.vault.test/keys/MyKey` })), {}, 'kid host and name case-insensitive')
  await ok(sign(payloadFor({ requestKid: `https://${HOST}/keys/mykey/${VERSION}` })), { keyVersion: VERSION }, 'a version asked and echoed')
  await ok(sign(payloadFor({ requestKid: `https://${HOST}/keys/mykey/` })), {}, 'a trailing slash')
  await ok(sign(payloadFor({ keyKid: `https://${HOST}/keys/mykey` })), {}, 'a versionless response kid when no version was asked')
  await ok(sign(payloadFor({ enc: null })), {}, 'request.enc absent counts as CKM_RSA_AES_KEY_WRAP')
  await ok(sign(payloadFor({ enc: 'RSA_AES_KEY_WRAP_256' })), { enc: 'RSA_AES_KEY_WRAP_256' }, 'RSA_AES_KEY_WRAP_256 asked and echoed')
  await ok(sign(payloadFor({ nonce: 'ADE0101' })), { nonce: 'ADE0101' }, 'nonce echoed')
  await ok(sign(payloadFor(), { alg: 'PS256' }), {}, 'PS256')
  await ok(sign(payloadFor(), { alg: 'RS512' }), {}, 'RS512')
  await ok(sign(payloadFor(), { x5c: x5cOf(leaf, intermediate), header: { kid: 'ABCDEF', 'x5t#S256': 'x' } }), {}, 'extra header members are ignored')
  await ok(sign(payloadFor()), { trustedRoots: [...pki.trustedRoots, (await createRootCa()).cert] }, 'several roots')
  await ok(sign(payloadFor()), { trustedRoots: [intermediate.cert] }, 'an intermediate pinned as the anchor')

  const ecLeaf = await createLeaf(intermediate, { dnsNames: [HOST], keyType: 'P-256' })
  await ok(sign(payloadFor(), { signer: ecLeaf, x5c: x5cOf(ecLeaf, intermediate) }), {}, 'ES256 leaf')
  const noEku = await createLeaf(intermediate, { dnsNames: [HOST], keyType: 'P-256', extKeyUsages: null })
  await ok(sign(payloadFor(), { signer: noEku, x5c: x5cOf(noEku, intermediate) }), {}, 'a leaf without EKU (as the reference\'s tests)')
  const ipLeaf = await createLeaf(intermediate, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], keyType: 'P-256' })
  await ok(sign(payloadFor({ host: '127.0.0.1:8443' }), { signer: ipLeaf, x5c: x5cOf(ipLeaf, intermediate) }), { vaultHost: '127.0.0.1:8443' }, 'the emulator on 127.0.0.1')
  const wild = await createLeaf(intermediate, { dnsNames: ['*.vault.test'], keyType: 'P-256' })
  await ok(sign(payloadFor({ host: 'a.vault.test' }), { signer: wild, x5c: x5cOf(wild, intermediate) }), { vaultHost: 'a.vault.test' }, '*.vault.test covers a.vault.test')
  const now = new Date(Date.now() + 100 * DAY)
  await ok(sign(payloadFor()), { now }, 'an injected clock inside every validity window')
})

t.test('compact form and header', async (t) => {
  const good = await sign(payloadFor())
  const [h, p, s] = good.split('.') as [string, string, string]
  await rejects(t, `${h}.${p}.${s}.${s}`, 'compact', {}, 'four segments')
  await rejects(t, `${h}.${p}`, 'compact', {}, 'two segments')
  await rejects(t, `${h}.${p}.`, 'compact', {}, 'empty signature (alg none shape)')
  await rejects(t, `${h}..${s}`, 'compact', {}, 'empty payload (detached)')
  await rejects(t, `${h}.${p}.${s}=`, 'compact', {}, 'padded segment')
  await rejects(t, ` ${good}`, 'compact', {}, 'leading space')
  await rejects(t, `${h}.${p}.${s.slice(0, 10)}+${s.slice(11)}`, 'compact', {}, 'std b64 character')
  await rejects(t, `${h}.${'A'.repeat(1024 * 1024)}.${s}`, 'compact', {}, 'over 1 MiB')
  await rejects(t, `${b64url('not json')}.${p}.${s}`, 'header', {}, 'header not JSON')
  await rejects(t, `${b64url('[1]')}.${p}.${s}`, 'header', {}, 'header an array')
  await t.rejects(verifyReleaseJws(42 as unknown as string, options()), { code: UNVERIFIED, details: { check: 'compact' } }, 'not a string')
})

t.test('alg allow-list', async (t) => {
  t.same(RELEASE_JWS_ALGS, ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384'])
  const payload = b64url(payloadFor())
  const header = (alg: unknown): string => b64url({ alg, x5c: x5cOf(leaf, intermediate) })
  await rejects(t, `${header('none')}.${payload}.AAAA`, 'alg', {}, 'alg none with a non-empty signature')
  await rejects(t, `${header(undefined)}.${payload}.AAAA`, 'alg', {}, 'alg absent')
  await rejects(t, `${header('rs256')}.${payload}.AAAA`, 'alg', {}, 'alg in lower case')
  await rejects(t, `${header('EdDSA')}.${payload}.AAAA`, 'alg', {}, 'EdDSA not allowed')
  // The classic confusion attack: HMAC keyed with the signer's public key bytes.
  for (const [name, secret] of [
    ['SPKI DER', leaf.publicKey.export({ format: 'der', type: 'spki' })],
    ['SPKI PEM', Buffer.from(leaf.publicKey.export({ format: 'pem', type: 'spki' }))],
    ['certificate DER', leaf.der]
  ] as Array<[string, Buffer]>) {
    const hs = await new CompactSign(Buffer.from(JSON.stringify(payloadFor())))
      .setProtectedHeader({ alg: 'HS256', x5c: x5cOf(leaf, intermediate) }).sign(new Uint8Array(secret))
    await rejects(t, hs, 'alg', {}, `HS256 keyed with the ${name}`)
  }
})

t.test('signature', async (t) => {
  const good = await sign(payloadFor())
  const [h, p, s] = good.split('.') as [string, string, string]
  const mid = Math.floor(s.length / 2)
  const flipped = s.slice(0, mid) + (s[mid] === 'A' ? 'B' : 'A') + s.slice(mid + 1)
  await rejects(t, `${h}.${p}.${flipped}`, 'signature', {}, 'tampered signature')
  await rejects(t, `${h}.${b64url(payloadFor({ name: 'otherkey' }))}.${s}`, 'signature', {}, 'tampered payload')
  const other = await sign(payloadFor())
  await rejects(t, `${h}.${other.split('.')[1] ?? ''}.${s}`, 'signature', {}, 'payload swapped from another release')
  const impostor = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
  const forged = await new CompactSign(Buffer.from(JSON.stringify(payloadFor())))
    .setProtectedHeader({ alg: 'RS256', x5c: x5cOf(leaf, intermediate) }).sign(impostor)
  await rejects(t, forged, 'signature', {}, 'signed by another key under the genuine x5c')
  await rejects(t, `${b64url({ alg: 'ES256', x5c: x5cOf(leaf, intermediate) })}.${p}.${s}`, 'signature', {}, 'alg naming the wrong key type')
  // Signed outside jose, which refuses to produce an unknown crit: RFC 7515 §4.1.11 says reject it.
  const critHeader = b64url({ alg: 'RS256', crit: ['exp'], exp: 1, x5c: x5cOf(leaf, intermediate) })
  const critSig = crypto.sign('sha256', Buffer.from(`${critHeader}.${p}`), leaf.privateKey).toString('base64url')
  await rejects(t, `${critHeader}.${p}.${critSig}`, 'signature', {}, 'an unknown crit header')
  const plainSig = crypto.sign('sha256', Buffer.from(`${h}.${p}`), leaf.privateKey).toString('base64url')
  await t.resolves(verifyReleaseJws(`${h}.${p}.${plainSig}`, options()), 'the same raw signing without crit verifies')
})

t.test('x5c and the chain', async (t) => {
  await rejects(t, sign(payloadFor(), { x5c: null }), 'x5c', {}, 'x5c missing')
  await rejects(t, sign(payloadFor(), { x5c: [] }), 'x5c', {}, 'x5c empty')
  await rejects(t, sign(payloadFor(), { x5c: leaf.b64 }), 'x5c', {}, 'x5c a string')
  await rejects(t, sign(payloadFor(), { x5c: [leaf.der.toString('base64url'), intermediate.b64] }), 'x5c', {}, 'x5c in b64url')
  await rejects(t, sign(payloadFor(), { x5c: ['AAAA', intermediate.b64] }), 'x5c', {}, 'x5c not DER')
  await rejects(t, sign(payloadFor(), { x5c: [leaf.b64, 7] }), 'x5c', {}, 'x5c entry not a string')
  await rejects(t, sign(payloadFor(), { x5c: [leaf.b64, intermediate.b64, root.b64, root.b64, root.b64, root.b64] }), 'x5c', {}, 'x5c longer than 5')

  await rejects(t, sign(payloadFor(), { x5c: [leaf.b64] }), 'chain', {}, 'intermediate missing')
  await rejects(t, sign(payloadFor(), { x5c: x5cOf(leaf, root) }), 'chain', {}, 'intermediate skipped')
  await rejects(t, sign(payloadFor()), 'chain', { trustedRoots: [] }, 'no trusted roots')

  const untrustedRoot = await createRootCa({ commonName: 'skr test root CA' }) // same name, other key
  const untrustedInter = await createIntermediateCa(untrustedRoot)
  const untrustedLeaf = await createLeaf(untrustedInter, { dnsNames: [HOST], keyType: 'P-256' })
  await rejects(t, sign(payloadFor(), { signer: untrustedLeaf, x5c: x5cOf(untrustedLeaf, untrustedInter, untrustedRoot) }), 'chain', {}, 'chain to an untrusted root of the same name')
  await rejects(t, sign(payloadFor(), { signer: untrustedLeaf, x5c: x5cOf(untrustedLeaf, untrustedInter, root) }), 'chain', {}, 'trusted root appended to an unrelated chain')

  // A chain longer than 5 certificates never verifies, however it is anchored.
  let issuer = root
  const inters: TestCert[] = []
  for (let i = 0; i < 4; i++) { issuer = await createIntermediateCa(issuer); inters.unshift(issuer) }
  const deep = await createLeaf(issuer, { dnsNames: [HOST], keyType: 'P-256' })
  await rejects(t, sign(payloadFor(), { signer: deep, x5c: x5cOf(deep, ...inters) }), 'chain', {}, 'leaf + 4 intermediates + root is 6')
  await t.resolves(verifyReleaseJws(await sign(payloadFor(), { signer: deep, x5c: x5cOf(deep, ...inters) }), options({ trustedRoots: [inters[3]?.cert as X509Certificate] })),
    'the same leaf anchored one level down is 5')

  const notCa = await createIntermediateCa(root, { ca: false, keyUsages: null })
  const underNotCa = await createLeaf(notCa, { dnsNames: [HOST], keyType: 'P-256' })
  await rejects(t, sign(payloadFor(), { signer: underNotCa, x5c: x5cOf(underNotCa, notCa) }), 'ca', {}, 'issuer without basicConstraints cA')
  const noCertSign = await createIntermediateCa(root, { keyUsages: 1 /* digitalSignature */ })
  const underNoCertSign = await createLeaf(noCertSign, { dnsNames: [HOST], keyType: 'P-256' })
  await rejects(t, sign(payloadFor(), { signer: underNoCertSign, x5c: x5cOf(underNoCertSign, noCertSign) }), 'chain', {}, 'issuer without keyCertSign')
})

t.test('validity', async (t) => {
  const now = Date.now()
  const expired = await createLeaf(intermediate, { dnsNames: [HOST], keyType: 'P-256', notBefore: new Date(now - 10 * DAY), notAfter: new Date(now - DAY) })
  await rejects(t, sign(payloadFor(), { signer: expired, x5c: x5cOf(expired, intermediate) }), 'validity', {}, 'expired leaf')
  const future = await createLeaf(intermediate, { dnsNames: [HOST], keyType: 'P-256', notBefore: new Date(now + DAY), notAfter: new Date(now + 10 * DAY) })
  await rejects(t, sign(payloadFor(), { signer: future, x5c: x5cOf(future, intermediate) }), 'validity', {}, 'not-yet-valid leaf')
  await t.resolves(verifyReleaseJws(await sign(payloadFor(), { signer: future, x5c: x5cOf(future, intermediate) }), options({ now: new Date(now + 2 * DAY) })),
    'the clock is injected')
  const oldInter = await createIntermediateCa(root, { notBefore: new Date(now - 10 * DAY), notAfter: new Date(now - DAY) })
  const underOld = await createLeaf(oldInter, { dnsNames: [HOST], keyType: 'P-256' })
  await rejects(t, sign(payloadFor(), { signer: underOld, x5c: x5cOf(underOld, oldInter) }), 'validity', {}, 'expired intermediate')
  await rejects(t, sign(payloadFor()), 'validity', { now: new Date(now + 20 * 365 * DAY) }, 'everything expired by then')
  await rejects(t, sign(payloadFor()), 'validity', { now: new Date(now - 2 * DAY) }, 'before the chain existed')
})

t.test('leaf names and usage', async (t) => {
  const other = await createLeaf(intermediate, { dnsNames: ['other.vault.test'], keyType: 'P-256' })
  await rejects(t, sign(payloadFor(), { signer: other, x5c: x5cOf(other, intermediate) }), 'host', {}, 'wrong DNS name')
  await rejects(t, sign(payloadFor()), 'host', { vaultHost: 'othervault.vault.test' }, 'called another host')
  await rejects(t, sign(payloadFor()), 'host', { vaultHost: '127.0.0.1' }, 'IP host against a DNS-only leaf')
  const wild = await createLeaf(intermediate, { dnsNames: ['*.vault.test'], keyType: 'P-256' })
  const wildJws = sign(payloadFor({ host: 'a.b.vault.test' }), { signer: wild, x5c: x5cOf(wild, intermediate) })
  await rejects(t, wildJws, 'host', { vaultHost: 'a.b.vault.test' }, '*.vault.test does not cover a.b.vault.test')
  await rejects(t, sign(payloadFor({ host: 'vault.test' }), { signer: wild, x5c: x5cOf(wild, intermediate) }), 'host', { vaultHost: 'vault.test' }, '*.vault.test does not cover vault.test')
  const client = await createLeaf(intermediate, { dnsNames: [HOST], keyType: 'P-256', extKeyUsages: ['1.3.6.1.5.5.7.3.2'] })
  await rejects(t, sign(payloadFor(), { signer: client, x5c: x5cOf(client, intermediate) }), 'eku', {}, 'a clientAuth-only leaf')
})

t.test('payload binding', async (t) => {
  await rejects(t, sign('not json'), 'payload', {}, 'payload not JSON')
  await rejects(t, sign([1, 2]), 'payload', {}, 'payload an array')
  await rejects(t, sign({ response: payloadFor()['response'] }), 'request', {}, 'no request')
  await rejects(t, sign(payloadFor({ name: 'otherkey' })), 'request.kid', {}, 'another key')
  await rejects(t, sign(payloadFor({ requestKid: 'https://othervault.vault.test/keys/mykey' })), 'request.kid', {}, 'another vault')
  await rejects(t, sign(payloadFor({ requestKid: `http://${HOST}/keys/mykey` })), 'request.kid', {}, 'plain http')
  await rejects(t, sign(payloadFor({ requestKid: `https://${HOST}/secrets/mykey` })), 'request.kid', {}, 'not a key URL')
  await rejects(t, sign(payloadFor({ requestKid: `https://${HOST}/keys/mykey/v/extra` })), 'request.kid', {}, 'too many segments')
  await rejects(t, sign(payloadFor({ requestKid: `https://${HOST}/keys/%E0%A4%A` })), 'request.kid', {}, 'bad percent-encoding')
  await rejects(t, sign(payloadFor({ requestKid: 'mykey' })), 'request.kid', {}, 'a bare name')
  await rejects(t, sign(payloadFor({ requestKid: 42 })), 'request.kid', {}, 'a number')
  await rejects(t, sign(payloadFor({ requestKid: `https://${HOST}/keys/mykey/ffff` })), 'request.kid', { keyVersion: VERSION }, 'another version')
  await rejects(t, sign(payloadFor()), 'request.kid', { keyVersion: VERSION }, 'a version asked, none echoed')
  await rejects(t, sign(payloadFor()), 'request.enc', { enc: 'RSA_AES_KEY_WRAP_256' }, 'wrong enc')
  await rejects(t, sign(payloadFor({ enc: null })), 'request.enc', { enc: 'RSA_AES_KEY_WRAP_384' }, 'absent enc is the default, not what was asked')
  await rejects(t, sign(payloadFor({ enc: 'RSA_AES_KEY_WRAP_384' })), 'request.enc', {}, 'a stronger enc than asked is still a mismatch')
  await rejects(t, sign(payloadFor()), 'request.nonce', { nonce: 'n1' }, 'nonce not echoed')
  await rejects(t, sign(payloadFor({ nonce: 'n2' })), 'request.nonce', { nonce: 'n1' }, 'another nonce')
})

t.test('response key', async (t) => {
  const base = payloadFor()
  const keyOf = (p: Record<string, unknown>): Record<string, unknown> =>
    ((p['response'] as Record<string, unknown>)['key'] as Record<string, unknown>)['key'] as Record<string, unknown>
  const without = (member: string): Record<string, unknown> => Object.fromEntries(Object.entries(keyOf(base)).filter(([name]) => name !== member))
  await rejects(t, sign(payloadFor({ key: null })), 'response.key', {}, 'no response.key.key')
  await rejects(t, sign({ request: base['request'] }), 'response.key', {}, 'no response')
  await rejects(t, sign(payloadFor({ key: without('key_hsm') })), 'response.key', {}, 'missing key_hsm')
  await rejects(t, sign(payloadFor({ key: { ...keyOf(base), key_hsm: '' } })), 'response.key', {}, 'empty key_hsm')
  await rejects(t, sign(payloadFor({ key: without('kty') })), 'response.key', {}, 'missing kty')
  await rejects(t, sign(payloadFor({ key: without('kid') })), 'response.key', {}, 'missing kid')
  await rejects(t, sign(payloadFor({ key: { ...keyOf(base), key_ops: 'encrypt' } })), 'response.key', {}, 'key_ops a string')
  await rejects(t, sign(payloadFor({ key: { ...keyOf(base), crv: 1 } })), 'response.key', {}, 'crv a number')
  await rejects(t, sign(payloadFor({ keyKid: `https://${HOST}/keys/otherkey/${VERSION}` })), 'response.key.kid', {}, 'response for another key')
  await rejects(t, sign(payloadFor({ keyKid: `https://othervault.vault.test/keys/mykey/${VERSION}` })), 'response.key.kid', {}, 'response from another vault')
  await rejects(t, sign(payloadFor({ requestKid: `https://${HOST}/keys/mykey/${VERSION}`, keyKid: `https://${HOST}/keys/mykey/ffff` })), 'response.key.kid', { keyVersion: VERSION }, 'response for another version')
  const ec = { ...keyOf(base), kty: 'EC-HSM', crv: 'P-256' }
  t.equal((await verifyReleaseJws(await sign(payloadFor({ key: ec })), options())).key.crv, 'P-256', 'crv is passed through')
})

t.test('misuse', async (t) => {
  const jws = await sign(payloadFor())
  for (const vaultHost of ['', 'https://myvault.vault.test', `${HOST}/keys`, `user@${HOST}`, `${HOST}?x=1`, 5 as unknown as string]) {
    await t.rejects(verifyReleaseJws(jws, options({ vaultHost })), TypeError, `vaultHost ${JSON.stringify(vaultHost)}`)
  }
})
