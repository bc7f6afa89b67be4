import t from 'tap'
import crypto from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { RELEASE_ENCS } from '../../../src/akv/key-hsm.ts'
import type { ReleaseEnc } from '../../../src/akv/key-hsm.ts'
import { aesKeyUnwrapPadded, unwrapKeyHsm } from '../../../src/akv/unwrap.ts'
import { aesKeyWrapPadded, wrapForRelease } from '../../../src/akv/wrap.ts'
import { plaintextToJwk } from '../../../src/akv/jwk.ts'

const UNWRAP = 'ERR_KEY_UNWRAP_FAILED'
const hex = (s: string): Buffer => Buffer.from(s, 'hex')

const wrapping2048 = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
const wrapping3072 = crypto.generateKeyPairSync('rsa', { modulusLength: 3072 })
const otherWrapping = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })

t.test('RFC 5649 §6 vectors through node:crypto id-aes192-wrap-pad', async (t) => {
  const kek = hex('5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8')
  const vectors: Array<[string, string]> = [
    ['c37b7e6492584340bed12207808941155068f738', '138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a'],
    ['466f7250617369', 'afbeb0f07dfbf5419200f2ccb50bb24f']
  ]
  for (const [key, wrapped] of vectors) {
    t.equal(aesKeyWrapPadded(kek, hex(key)).toString('hex'), wrapped, `wrap ${key.length / 2} bytes`)
    t.equal(aesKeyUnwrapPadded(kek, hex(wrapped)).toString('hex'), key, `unwrap ${key.length / 2} bytes`)
  }
  // A KEK that differs from the RFC's in one byte must fail the integrity check.
  const bogus = hex('5840df6e29b02af1ab493b70ddf16ea1ae8338f4dcc176a8')
  t.throws(() => aesKeyUnwrapPadded(bogus, hex(vectors[0]?.[1] ?? '')), { code: UNWRAP, details: { step: 'AES key unwrap integrity check' } })
  t.throws(() => aesKeyUnwrapPadded(Buffer.alloc(20), Buffer.alloc(16)), { code: UNWRAP, details: { step: 'KEK size' } })
  t.throws(() => aesKeyUnwrapPadded(kek, Buffer.alloc(8)), { code: UNWRAP, details: { step: 'wrapped key length' } })
  t.throws(() => aesKeyUnwrapPadded(kek, Buffer.alloc(20)), { code: UNWRAP, details: { step: 'wrapped key length' } })
  t.throws(() => aesKeyWrapPadded(Buffer.alloc(20), Buffer.alloc(8)), TypeError)
  t.throws(() => aesKeyWrapPadded(kek, Buffer.alloc(0)), TypeError)
})

t.test('wrap → unwrap → JWK round trips', async (t) => {
  const rsaKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
  const ec256 = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
  const ec384 = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey
  const octBytes = crypto.randomBytes(32)
  const pkcs8 = (k: KeyObject): Buffer => k.export({ format: 'der', type: 'pkcs8' })
  const materials: Array<{ name: string, plaintext: Buffer, kty: string, crv?: string, want: Record<string, unknown> }> = [
    { name: 'oct-HSM 32 bytes', plaintext: octBytes, kty: 'oct-HSM', want: { kty: 'oct', k: octBytes.toString('base64url') } },
    { name: 'RSA-HSM 2048 PKCS#8', plaintext: pkcs8(rsaKey), kty: 'RSA-HSM', want: rsaKey.export({ format: 'jwk' }) },
    { name: 'EC-HSM P-256 PKCS#8', plaintext: pkcs8(ec256), kty: 'EC-HSM', crv: 'P-256', want: ec256.export({ format: 'jwk' }) },
    { name: 'EC P-384 PKCS#8', plaintext: pkcs8(ec384), kty: 'EC', crv: 'P-384', want: ec384.export({ format: 'jwk' }) }
  ]
  const wrappings: Array<[string, crypto.KeyPairKeyObjectResult]> = [['RSA-2048', wrapping2048], ['RSA-3072', wrapping3072]]
  for (const [wname, wrapping] of wrappings) {
    const rsaLength = (wrapping.publicKey.asymmetricKeyDetails?.modulusLength ?? 0) / 8
    for (const enc of RELEASE_ENCS) {
      for (const m of materials) {
        const ciphertext = wrapForRelease(m.plaintext, enc, wrapping.publicKey)
        t.equal(ciphertext.length, rsaLength + Math.ceil(m.plaintext.length / 8) * 8 + 8, `${wname} ${enc} ${m.name}: RSA block ‖ KWP`)
        const plaintext = unwrapKeyHsm(ciphertext, enc, wrapping.privateKey)
        t.same(plaintext, m.plaintext, `${wname} ${enc} ${m.name}: plaintext`)
        const jwk = plaintextToJwk(plaintext, { kty: m.kty, key_ops: ['sign', 'verify'], ...(m.crv === undefined ? {} : { crv: m.crv }) })
        t.same(jwk, { ...m.want, key_ops: ['sign', 'verify'] }, `${wname} ${enc} ${m.name}: JWK equals the source key`)
      }
    }
  }
  // docs/protocols.md#released-key-wrapping: a 32-byte oct key under RSA-2048 is 256 + 40 = 296 bytes.
  t.equal(wrapForRelease(octBytes, 'CKM_RSA_AES_KEY_WRAP', wrapping2048.publicKey).length, 296)
  t.notSame(wrapForRelease(octBytes, 'CKM_RSA_AES_KEY_WRAP', wrapping2048.publicKey),
    wrapForRelease(octBytes, 'CKM_RSA_AES_KEY_WRAP', wrapping2048.publicKey), 'a fresh KEK per wrap')
})

t.test('hostile ciphertexts are KeyUnwrapFailed, naming the step', async (t) => {
  const plaintext = crypto.randomBytes(32)
  const enc: ReleaseEnc = 'RSA_AES_KEY_WRAP_256'
  const good = wrapForRelease(plaintext, enc, wrapping2048.publicKey)
  const priv = wrapping2048.privateKey
  const flip = (at: number): Buffer => { const b = Buffer.from(good); b[at] = (b[at] ?? 0) ^ 0x01; return b }
  const rsaKek = (kek: Buffer): Buffer => crypto.publicEncrypt(
    { key: wrapping2048.publicKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, kek)

  const cases: Array<[string, () => Buffer, string]> = [
    ['empty', () => unwrapKeyHsm(Buffer.alloc(0), enc, priv), 'ciphertext length'],
    ['RSA block only', () => unwrapKeyHsm(good.subarray(0, 256), enc, priv), 'ciphertext length'],
    ['truncated into the RSA block', () => unwrapKeyHsm(good.subarray(0, 255), enc, priv), 'ciphertext length'],
    ['truncated by one byte', () => unwrapKeyHsm(good.subarray(0, good.length - 1), enc, priv), 'wrapped key length'],
    ['truncated by one block', () => unwrapKeyHsm(good.subarray(0, good.length - 8), enc, priv), 'AES key unwrap integrity check'],
    ['extended by one block', () => unwrapKeyHsm(Buffer.concat([good, Buffer.alloc(8)]), enc, priv), 'AES key unwrap integrity check'],
    ['bit flipped in the RSA block', () => unwrapKeyHsm(flip(17), enc, priv), 'RSA-OAEP decryption'],
    ['bit flipped in the wrapped key', () => unwrapKeyHsm(flip(256 + 20), enc, priv), 'AES key unwrap integrity check'],
    ['bit flipped in the last wrapped byte', () => unwrapKeyHsm(flip(good.length - 1), enc, priv), 'AES key unwrap integrity check'],
    ['wrong wrapping key', () => unwrapKeyHsm(good, enc, otherWrapping.privateKey), 'RSA-OAEP decryption'],
    ['wrong enc (SHA-1)', () => unwrapKeyHsm(good, 'CKM_RSA_AES_KEY_WRAP', priv), 'RSA-OAEP decryption'],
    ['wrong enc (SHA-384)', () => unwrapKeyHsm(good, 'RSA_AES_KEY_WRAP_384', priv), 'RSA-OAEP decryption'],
    ['KEK of 20 bytes', () => unwrapKeyHsm(Buffer.concat([rsaKek(crypto.randomBytes(20)), good.subarray(256)]), enc, priv), 'KEK size'],
    ['KEK of 0 bytes', () => unwrapKeyHsm(Buffer.concat([rsaKek(Buffer.alloc(0)), good.subarray(256)]), enc, priv), 'KEK size'],
    ['KEK of 64 bytes', () => unwrapKeyHsm(Buffer.concat([rsaKek(crypto.randomBytes(64)), good.subarray(256)]), enc, priv), 'KEK size'],
    ['right-size KEK, wrong value', () => unwrapKeyHsm(Buffer.concat([rsaKek(crypto.randomBytes(32)), good.subarray(256)]), enc, priv), 'AES key unwrap integrity check'],
    ['all zero', () => unwrapKeyHsm(Buffer.alloc(296), enc, priv), 'RSA-OAEP decryption'],
    ['RSA block ≥ modulus', () => unwrapKeyHsm(Buffer.concat([Buffer.alloc(256, 0xff), good.subarray(256)]), enc, priv), 'RSA-OAEP decryption']
  ]
  for (const [name, run, step] of cases) {
    t.throws(run, { code: UNWRAP, name: 'KeyUnwrapFailed', statusCode: 502, details: { step } }, name)
  }
  t.same(unwrapKeyHsm(good, enc, priv), plaintext, 'the untouched ciphertext still unwraps')

  const err = (() => { try { unwrapKeyHsm(flip(270), enc, priv) } catch (e) { return e as Error } })()
  t.ok(err instanceof Error)
  t.notMatch(err?.message ?? '', /[0-9a-f]{16}/i, 'no bytes in the message')
})

t.test('misuse is a TypeError', async (t) => {
  const ct = wrapForRelease(Buffer.from('k'), 'CKM_RSA_AES_KEY_WRAP', wrapping2048.publicKey)
  t.throws(() => unwrapKeyHsm(ct, 'CKM_RSA_AES_KEY_WRAP', wrapping2048.publicKey), TypeError, 'public key')
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
  t.throws(() => unwrapKeyHsm(ct, 'CKM_RSA_AES_KEY_WRAP', ec.privateKey), TypeError, 'EC key')
  t.throws(() => unwrapKeyHsm('x' as unknown as Buffer, 'CKM_RSA_AES_KEY_WRAP', wrapping2048.privateKey), TypeError, 'string ciphertext')
  t.throws(() => wrapForRelease(Buffer.alloc(0), 'CKM_RSA_AES_KEY_WRAP', wrapping2048.publicKey), TypeError, 'empty plaintext')
  t.throws(() => wrapForRelease(Buffer.alloc(1), 'NOPE' as ReleaseEnc, wrapping2048.publicKey), TypeError, 'unknown enc')
  t.throws(() => wrapForRelease(Buffer.alloc(1), 'CKM_RSA_AES_KEY_WRAP', ec.publicKey), TypeError, 'EC wrapping key')
  t.same(unwrapKeyHsm(ct, 'CKM_RSA_AES_KEY_WRAP', wrapping2048.privateKey), Buffer.from('k'), 'a 1-byte key round trips')
})
