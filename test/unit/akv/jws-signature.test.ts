// verifyJwsSignature against jose's signer (an independent implementation of RFC 7518): every
// algorithm verifies what jose signs, rejects a flipped bit, and refuses keys the algorithm does
// not name.
import t from 'tap'
import { constants, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto'
import { CompactSign } from 'jose'
import { JWS_SIGNATURE_ALGS, verifyJwsSignature } from '../../../src/akv/jws-signature.ts'

type Pair = { publicKey: KeyObject, privateKey: KeyObject }
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }) as Pair
const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }) as Pair
const pss = generateKeyPairSync('rsa-pss', { modulusLength: 2048 }) as Pair
const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }) as Pair
const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }) as Pair
const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' }) as Pair
const KEY_FOR: Record<string, Pair> = {
  RS256: rsa, RS384: rsa, RS512: rsa, PS256: rsa, PS384: rsa, PS512: rsa, ES256: p256, ES384: p384, ES512: p521
}

async function signed (alg: string, key: KeyObject): Promise<{ input: Buffer, signature: Buffer }> {
  const jws = await new CompactSign(Buffer.from('{"request":{},"response":{}}')).setProtectedHeader({ alg }).sign(key)
  const [h, p, s] = jws.split('.') as [string, string, string]
  return { input: Buffer.from(`${h}.${p}`, 'ascii'), signature: Buffer.from(s, 'base64url') }
}

t.test('every algorithm verifies what jose signs, and not a flipped bit', async (t) => {
  t.same(JWS_SIGNATURE_ALGS, ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'])
  for (const alg of JWS_SIGNATURE_ALGS) {
    const pair = KEY_FOR[alg] as Pair
    const { input, signature } = await signed(alg, pair.privateKey)
    t.ok(verifyJwsSignature(alg, input, signature, pair.publicKey), `${alg} verifies`)
    const flipped = Buffer.from(signature)
    flipped[flipped.length >> 1] = (flipped[flipped.length >> 1] ?? 0) ^ 0x10
    t.notOk(verifyJwsSignature(alg, input, flipped, pair.publicKey), `${alg}: a flipped signature bit fails`)
    const tampered = Buffer.from(input)
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] ?? 0) ^ 0x01
    t.notOk(verifyJwsSignature(alg, tampered, signature, pair.publicKey), `${alg}: a changed signing input fails`)
    t.notOk(verifyJwsSignature(alg, input, signature.subarray(1), pair.publicKey), `${alg}: a short signature is false, not a throw`)
    t.notOk(verifyJwsSignature(alg, input, Buffer.alloc(0), pair.publicKey), `${alg}: an empty signature is false`)
  }
})

t.test('PSS signatures use the hash length as salt (RFC 7518 §3.5)', async (t) => {
  const { input, signature } = await signed('PS384', rsa.privateKey)
  t.ok(verifyJwsSignature('PS384', input, signature, rsa.publicKey))
  t.notOk(verifyJwsSignature('RS384', input, signature, rsa.publicKey), 'a PSS signature is not a PKCS#1 v1.5 one')
})

t.test('an algorithm only with the key it names', async (t) => {
  const rs = await signed('RS256', rsa.privateKey)
  const es = await signed('ES256', p256.privateKey)
  t.notOk(verifyJwsSignature('ES256', rs.input, rs.signature, rsa.publicKey), 'ES256 with an RSA key')
  t.notOk(verifyJwsSignature('RS256', es.input, es.signature, p256.publicKey), 'RS256 with an EC key')
  t.notOk(verifyJwsSignature('ES384', es.input, es.signature, p256.publicKey), 'ES384 with a P-256 key')
  t.notOk(verifyJwsSignature('ES256', es.input, es.signature, p384.publicKey), 'ES256 with a P-384 key')
  t.notOk(verifyJwsSignature('RS256', rs.input, rs.signature, rsa.privateKey), 'a private key is not a verification key')
  // jose refuses to sign with a short key, so this one is signed directly.
  const smallSig = sign('sha256', rs.input, rsa1024.privateKey)
  t.ok(verify('sha256', rs.input, rsa1024.publicKey, smallSig), '(the 1024-bit signature itself is sound)')
  t.notOk(verifyJwsSignature('RS256', rs.input, smallSig, rsa1024.publicKey), 'RSA under 2048 bits')
  // jose does not sign with id-RSASSA-PSS keys either.
  const pssSig = sign('sha256', rs.input, { key: pss.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })
  t.ok(verifyJwsSignature('PS256', rs.input, pssSig, pss.publicKey), 'an RSA-PSS key verifies PS256')
  t.notOk(verifyJwsSignature('RS256', rs.input, pssSig, pss.publicKey), 'but is never used for RS256')
})

t.test('an RSA-PSS key whose parameters fix another hash is refused (RFC 7518 §3.5: MGF1 with the same SHA-2)', async (t) => {
  const input = Buffer.from('eyJhbGciOiJQUzI1NiJ9.eyJyZXF1ZXN0Ijp7fX0', 'ascii')
  const pssOptions = { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }
  const mgf1Sha1 = generateKeyPairSync('rsa-pss', { modulusLength: 2048, hashAlgorithm: 'sha256', mgf1HashAlgorithm: 'sha1' }) as Pair
  const sig = sign('sha256', input, { key: mgf1Sha1.privateKey, ...pssOptions })
  t.ok(verify('sha256', input, { key: mgf1Sha1.publicKey, ...pssOptions }, sig), '(OpenSSL verifies it with the key\'s MGF1-SHA1)')
  t.notOk(verifyJwsSignature('PS256', input, sig, mgf1Sha1.publicKey), 'PS256 refuses a key restricted to MGF1-SHA1')
  const sha384 = generateKeyPairSync('rsa-pss', { modulusLength: 2048, hashAlgorithm: 'sha384', mgf1HashAlgorithm: 'sha384' }) as Pair
  const sig384 = sign('sha384', input, { key: sha384.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 })
  t.ok(verifyJwsSignature('PS384', input, sig384, sha384.publicKey), 'a key restricted to SHA-384 verifies PS384')
  t.notOk(verifyJwsSignature('PS256', input, sig, sha384.publicKey), 'and nothing else')
})

t.test('unknown and inherited names are not algorithms', async (t) => {
  const { input, signature } = await signed('RS256', rsa.privateKey)
  for (const alg of ['none', 'HS256', 'rs256', 'EdDSA', 'toString', '__proto__', 'constructor', '']) {
    t.notOk(verifyJwsSignature(alg, input, signature, rsa.publicKey), JSON.stringify(alg))
  }
})
