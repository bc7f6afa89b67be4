// Wrapping as the reference's directWrap (key info file → PEM → RSA-OAEP-SHA256) and the
// inverse with a released JWK, checked against keys and files built outside skr.
import t from 'tap'
import { constants, createPrivateKey, generateKeyPairSync, privateDecrypt } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { rsaPublicKeyFromPem, maxWrapBytes, oaepWrap, unwrapWithJwk, wrapForKeyPath } from '../../../src/grpc/wrap.ts'
import { fixtureKey, FIXTURE_DIR, generateRsaKey, tempDir, writeKeyFiles } from '../../doubles/grpc-fakes.ts'

const plaintext = Buffer.from('Oceans are full of water\r\n')

t.test('wraps with the fixture key exactly as the reference lays the packet out', async t => {
  const { packet, packetJson } = await wrapForKeyPath(plaintext, './testkey000', { cwd: FIXTURE_DIR })
  const fixture = JSON.parse(await readFile(join(FIXTURE_DIR, 'annotation.json'), 'utf8')) as Record<string, unknown>
  const ours = JSON.parse(packetJson.toString()) as Record<string, unknown>
  t.same(Object.keys(ours), Object.keys(fixture), 'same fields, same order')
  t.same({ ...ours, wrapped_data: null }, { ...fixture, wrapped_data: null }, 'same values apart from the (randomised) ciphertext')
  const privatePem = await readFile(join(FIXTURE_DIR, 'testkey000-private.pem'), 'utf8')
  // Decrypted with OpenSSL defaults for OAEP-SHA256 (MGF1 with the same hash), as Go's DecryptOAEP.
  const decrypted = privateDecrypt({ key: createPrivateKey(privatePem), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, packet.wrappedData)
  t.same(decrypted, plaintext)
  t.same(unwrapWithJwk((await fixtureKey()).privateJwk, packet.wrappedData), plaintext)
})

t.test('a relative public_key_path falls back to the info file directory', async t => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const { packet } = await wrapForKeyPath(plaintext, join(FIXTURE_DIR, 'testkey000'), { cwd: dir })
  t.equal(packet.kid, 'testkey000')
})

t.test('unusable key files are WrappingKeyInvalid naming the file', async t => {
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const info = async (name: string, pem: string): Promise<string> => {
    await writeFile(join(dir, `${name}.pem`), pem)
    await writeFile(join(dir, `${name}-info.json`), JSON.stringify({ public_key_path: join(dir, `${name}.pem`), kms_endpoint: 'v', attester_endpoint: 'm' }))
    return join(dir, name)
  }
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const cases: Array<[string, string, RegExp]> = [
    ['private key', rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), /holds no PUBLIC KEY PEM block/],
    ['EC key', ec.publicKey.export({ type: 'spki', format: 'pem' }).toString(), /holds a ec key, want RSA/],
    ['garbage', '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n', /malformed public key/],
    ['empty', '', /holds no PUBLIC KEY PEM block/]
  ]
  for (const [name, pem, message] of cases) {
    const keyPath = await info(name.replace(/ /g, '-'), pem)
    await t.rejects(wrapForKeyPath(plaintext, keyPath), { code: 'ERR_WRAPPING_KEY_INVALID', message }, name)
  }
  await t.rejects(wrapForKeyPath(plaintext, join(dir, 'absent')), { message: /key info file .*absent-info\.json not found/ })
  await writeFile(join(dir, 'nopem-info.json'), JSON.stringify({ public_key_path: join(dir, 'nope.pem'), kms_endpoint: 'v', attester_endpoint: 'm' }))
  await t.rejects(wrapForKeyPath(plaintext, join(dir, 'nopem')), { message: /public key file .*nope\.pem not found/ })
  const denied = Object.assign(new Error('no'), { code: 'EACCES' })
  await t.rejects(wrapForKeyPath(plaintext, 'k', { cwd: dir, readFile: async () => { throw denied } }), { message: /cannot be read \(EACCES\)/ })
  await t.rejects(wrapForKeyPath(plaintext, 'keys/', { cwd: dir }), { code: 'ERR_REQUEST_INVALID', message: /ends in "\/"/ })
  const pkcs1 = await info('pkcs1', rsa.publicKey.export({ type: 'pkcs1', format: 'pem' }).toString())
  t.ok((await wrapForKeyPath(plaintext, pkcs1)).packet.wrappedData.length === 256, 'PKCS#1 "RSA PUBLIC KEY" is accepted too')
})

t.test('size limit of RSA-OAEP-SHA256', async t => {
  const key = rsaPublicKeyFromPem(Buffer.from(generateRsaKey().publicPem), 'k.pem')
  t.equal(maxWrapBytes(key), 256 - 66)
  t.equal(oaepWrap(key, Buffer.alloc(190)).length, 256)
  t.throws(() => oaepWrap(key, Buffer.alloc(191)), { code: 'ERR_REQUEST_INVALID', message: /191 bytes; .* at most 190/ })
})

t.test('unwrapWithJwk: not RSA, undecodable, wrong key', async t => {
  const key = generateRsaKey()
  const { dir, cleanup } = await tempDir()
  t.teardown(cleanup)
  const { packet } = await wrapForKeyPath(plaintext, await writeKeyFiles(dir, 'k', key))
  t.same(unwrapWithJwk(key.privateJwk, packet.wrappedData), plaintext)
  t.throws(() => unwrapWithJwk({ kty: 'EC', d: 'x' }, packet.wrappedData), { code: 'ERR_WRAPPING_KEY_INVALID', message: /kty EC/ })
  t.throws(() => unwrapWithJwk({ kty: 'RSA', n: key.privateJwk.n }, packet.wrappedData), { code: 'ERR_WRAPPING_KEY_INVALID' }, 'a public JWK')
  t.throws(() => unwrapWithJwk({ kty: '<script>', d: 'x' }, packet.wrappedData), { message: /kty unknown/ })
  t.throws(() => unwrapWithJwk({ kty: 'RSA', d: 'AQAB', n: 'AQAB', e: 'AQAB' }, packet.wrappedData), { code: 'ERR_KEY_UNWRAP_FAILED' })
  t.throws(() => unwrapWithJwk(generateRsaKey().privateJwk, packet.wrappedData), { code: 'ERR_REQUEST_INVALID', message: /wrapped for another key/ })
})
