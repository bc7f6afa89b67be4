import t from 'tap'
import crypto from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { plaintextToJwk } from '../../../src/akv/jwk.ts'

const UNWRAP = 'ERR_KEY_UNWRAP_FAILED'
const pkcs8 = (k: KeyObject): Buffer => k.export({ format: 'der', type: 'pkcs8' })

const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
const rsaPss = crypto.generateKeyPairSync('rsa-pss', { modulusLength: 2048 }).privateKey
const p256 = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
const p384 = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey
const k256 = crypto.generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey
const ed = crypto.generateKeyPairSync('ed25519').privateKey

t.test('oct: the reference JSON shape', async (t) => {
  const raw = crypto.randomBytes(32)
  const jwk = plaintextToJwk(raw, { kty: 'oct-HSM', key_ops: ['wrapKey', 'unwrapKey'], kid: 'https://v/keys/k/1' })
  t.equal(JSON.stringify(jwk), JSON.stringify({ k: raw.toString('base64url'), key_ops: ['wrapKey', 'unwrapKey'], kty: 'oct' }),
    'members k, key_ops, kty in that order (docs/compatibility.md#post-keyrelease); no kid')
  t.same(plaintextToJwk(raw, { kty: 'oct' }), { k: raw.toString('base64url'), kty: 'oct' }, 'no key_ops when none given')
  t.same(plaintextToJwk(raw, { kty: 'oct', key_ops: [] }), { k: raw.toString('base64url'), kty: 'oct' }, 'no key_ops when empty, as the reference')
  const ops = ['encrypt']
  const withOps = plaintextToJwk(raw, { kty: 'oct', key_ops: ops })
  ops.push('decrypt')
  t.same(withOps['key_ops'], ['encrypt'], 'key_ops is copied')
})

t.test('RSA and EC: the PKCS#8 key as a private JWK', async (t) => {
  const cases: Array<[string, KeyObject, { kty: string, crv?: string }, string?]> = [
    ['RSA', rsa, { kty: 'RSA' }],
    ['RSA-HSM', rsa, { kty: 'RSA-HSM' }],
    ['EC P-256', p256, { kty: 'EC', crv: 'P-256' }],
    ['EC-HSM P-384', p384, { kty: 'EC-HSM', crv: 'P-384' }],
    ['EC without crv', p384, { kty: 'EC-HSM' }],
    ['EC-HSM P-256K', k256, { kty: 'EC-HSM', crv: 'P-256K' }]
  ]
  for (const [name, key, declared] of cases) {
    const jwk = plaintextToJwk(pkcs8(key), { ...declared, key_ops: ['sign'] })
    t.same(jwk, { ...key.export({ format: 'jwk' }), key_ops: ['sign'] }, name)
    t.same(Object.keys(jwk), Object.keys(jwk).sort(), `${name}: members sorted, as jwx emits them`)
    t.equal(typeof jwk['d'], 'string', `${name}: private`)
  }
  t.equal(plaintextToJwk(pkcs8(rsa), { kty: 'RSA-HSM' })['kty'], 'RSA', 'plain JOSE kty')
  t.equal(plaintextToJwk(pkcs8(p256), { kty: 'EC-HSM' })['kty'], 'EC', 'plain JOSE kty')
  t.equal(plaintextToJwk(pkcs8(k256), { kty: 'EC', crv: 'P-256K' })['crv'], 'secp256k1', 'RFC 8812 curve name')
})

t.test('material that does not match the declaration is KeyUnwrapFailed', async (t) => {
  const cases: Array<[string, Buffer, Parameters<typeof plaintextToJwk>[1], string]> = [
    ['EC key declared RSA', pkcs8(p256), { kty: 'RSA' }, 'key type does not match kty'],
    ['RSA key declared EC', pkcs8(rsa), { kty: 'EC-HSM' }, 'key type does not match kty'],
    ['RSA-PSS key declared RSA', pkcs8(rsaPss), { kty: 'RSA-HSM' }, 'key type does not match kty'],
    ['Ed25519 key declared EC', pkcs8(ed), { kty: 'EC' }, 'key type does not match kty'],
    ['P-384 key declared P-256', pkcs8(p384), { kty: 'EC', crv: 'P-256' }, 'curve does not match crv'],
    ['P-256 key declared P-256K', pkcs8(p256), { kty: 'EC', crv: 'P-256K' }, 'curve does not match crv'],
    ['unknown curve', pkcs8(p256), { kty: 'EC', crv: 'P-999' }, 'curve does not match crv'],
    ['crv not a string', pkcs8(p256), { kty: 'EC', crv: 5 as unknown as string }, 'crv'],
    ['raw bytes declared RSA', crypto.randomBytes(32), { kty: 'RSA' }, 'PKCS#8 parse'],
    ['truncated PKCS#8', pkcs8(rsa).subarray(0, 600), { kty: 'RSA' }, 'PKCS#8 parse'],
    ['empty declared EC', Buffer.alloc(0), { kty: 'EC' }, 'PKCS#8 parse'],
    ['SPKI, not PKCS#8', crypto.createPublicKey(p256).export({ format: 'der', type: 'spki' }), { kty: 'EC' }, 'PKCS#8 parse'],
    ['empty oct', Buffer.alloc(0), { kty: 'oct' }, 'empty symmetric key'],
    ['unknown kty', crypto.randomBytes(32), { kty: 'OKP' }, 'unsupported kty'],
    ['lower-case kty', crypto.randomBytes(32), { kty: 'rsa' }, 'unsupported kty'],
    ['key_ops not an array', crypto.randomBytes(32), { kty: 'oct', key_ops: 'sign' as unknown as string[] }, 'key_ops'],
    ['key_ops with a number', crypto.randomBytes(32), { kty: 'oct', key_ops: [1] as unknown as string[] }, 'key_ops']
  ]
  for (const [name, plaintext, declared, step] of cases) {
    t.throws(() => plaintextToJwk(plaintext, declared), { code: UNWRAP, name: 'KeyUnwrapFailed', details: { step } }, name)
  }
  t.throws(() => plaintextToJwk('k' as unknown as Buffer, { kty: 'oct' }), TypeError, 'a string plaintext is misuse')
})
