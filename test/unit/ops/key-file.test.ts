import t from 'tap'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { parseKeyFile, wipeKey } from '../../../src/ops/key-file.ts'

t.test('JWKs: oct, RSA and EC, with or without -HSM', async t => {
  const k = randomBytes(32)
  const oct = parseKeyFile(Buffer.from(JSON.stringify({ kty: 'oct', k: k.toString('base64url') })))
  t.same({ kty: oct.jwk.kty, family: oct.family, description: oct.description }, { kty: 'oct-HSM', family: 'oct', description: 'oct 256-bit' })
  t.same(Buffer.from(oct.jwk.k ?? []), k)
  t.equal(parseKeyFile(Buffer.from(JSON.stringify({ kty: 'oct-HSM', k: randomBytes(16).toString('base64url') + '==' }))).description, 'oct 128-bit')

  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' })
  const r = parseKeyFile(Buffer.from(JSON.stringify({ ...rsa, kty: 'RSA-HSM' })))
  t.same({ kty: r.jwk.kty, family: r.family, description: r.description }, { kty: 'RSA', family: 'RSA', description: 'RSA 2048-bit' })
  t.ok(r.jwk.qi instanceof Uint8Array)

  const ec = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ format: 'jwk' })
  const e = parseKeyFile(Buffer.from(JSON.stringify(ec)))
  t.same({ kty: e.jwk.kty, crv: e.jwk.crv, description: e.description }, { kty: 'EC', crv: 'P-384', description: 'EC P-384' })
  wipeKey(e)
  t.ok(e.jwk.d?.every((b) => b === 0), 'wiped')
})

t.test('PEM private keys and hex symmetric keys', async t => {
  const pkcs8 = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' })
  t.equal(parseKeyFile(Buffer.from(pkcs8)).family, 'RSA')
  const pkcs1 = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs1' })
  t.equal(parseKeyFile(Buffer.from(pkcs1)).family, 'RSA')
  const sec1 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'sec1' })
  t.equal(parseKeyFile(Buffer.from(sec1)).description, 'EC P-256')
  const hex = randomBytes(32).toString('hex')
  t.same(Buffer.from(parseKeyFile(Buffer.from(hex + '\n')).jwk.k ?? []).toString('hex'), hex)
})

t.test('refusals are usage errors that never echo key material', async t => {
  const secret = randomBytes(20).toString('base64url')
  const cases: Array<[string, RegExp]> = [
    [JSON.stringify({ kty: 'oct', k: secret }), /16, 24 or 32 bytes, got 20/],
    [JSON.stringify({ kty: 'oct' }), /member k/],
    [JSON.stringify({ kty: 'OKP', d: secret }), /kty must be/],
    [JSON.stringify({ kty: 'RSA', n: secret, e: 'AQAB' }), /no private part/],
    [JSON.stringify({ kty: 'RSA', n: secret, e: 'AQAB', d: secret }), /not a valid private key/],
    ['{' + secret, /does not parse/],
    [generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), /ed25519 key cannot be imported/],
    [generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'pem', type: 'spki' }).toString(), /must hold a private key/],
    ['-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n', /cannot be read/],
    [secret + '!', /not a JWK/],
    [randomBytes(20).toString('hex'), /got 20/]
  ]
  for (const [text, message] of cases) {
    const err = t.throws(() => parseKeyFile(Buffer.from(text)), { code: 'ERR_CONFIG_INVALID', message }, message.source) as Error
    t.notOk(String(err?.message).includes(secret), 'no key material in the message')
  }
  const secp256k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
  t.throws(() => parseKeyFile(Buffer.from(secp256k1)), { message: /P-256, P-384 or P-521/ })
})
