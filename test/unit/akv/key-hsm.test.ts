import t from 'tap'
import crypto from 'node:crypto'
import {
  AES_KWP_IV, RELEASE_ENCS, buildKeyHsm, isReleaseEnc, kwpCipherFor, oaepHashOf, parseKeyHsm
} from '../../../src/akv/key-hsm.ts'

const UNWRAP = 'ERR_KEY_UNWRAP_FAILED'
const b64url = (text: string): string => Buffer.from(text, 'utf8').toString('base64url')

t.test('enc names', async (t) => {
  t.same(RELEASE_ENCS, ['CKM_RSA_AES_KEY_WRAP', 'RSA_AES_KEY_WRAP_256', 'RSA_AES_KEY_WRAP_384'])
  t.ok(Object.isFrozen(RELEASE_ENCS))
  for (const enc of RELEASE_ENCS) t.ok(isReleaseEnc(enc), enc)
  for (const bad of ['', 'ckm_rsa_aes_key_wrap', 'RSA-OAEP', 'RSA_AES_KEY_WRAP_512', 1, null, undefined, {}]) {
    t.notOk(isReleaseEnc(bad), `rejects ${JSON.stringify(bad)}`)
  }
  t.equal(oaepHashOf('CKM_RSA_AES_KEY_WRAP'), 'sha1')
  t.equal(oaepHashOf('RSA_AES_KEY_WRAP_256'), 'sha256')
  t.equal(oaepHashOf('RSA_AES_KEY_WRAP_384'), 'sha384')
  t.equal(AES_KWP_IV.toString('hex'), 'a65959a6', 'RFC 5649 §3 alternative IV')
  t.equal(kwpCipherFor(16), 'id-aes128-wrap-pad')
  t.equal(kwpCipherFor(24), 'id-aes192-wrap-pad')
  t.equal(kwpCipherFor(32), 'id-aes256-wrap-pad')
  t.equal(kwpCipherFor(20), undefined)
})

t.test('build → parse round trip', async (t) => {
  const ciphertext = crypto.randomBytes(296)
  for (const enc of RELEASE_ENCS) {
    const keyHsm = buildKeyHsm({ kid: 'TpmEphemeralEncryptionKey', enc, ciphertext })
    t.match(keyHsm, /^[A-Za-z0-9_-]+$/, 'unpadded b64url')
    const doc = JSON.parse(Buffer.from(keyHsm, 'base64url').toString('utf8')) as Record<string, unknown>
    t.same(doc, {
      schema_version: '1.0',
      header: { kid: 'TpmEphemeralEncryptionKey', alg: 'dir', enc },
      ciphertext: ciphertext.toString('base64url')
    }, 'wire shape of docs/protocols.md#released-key-wrapping')
    const env = parseKeyHsm(keyHsm)
    t.same(env, { schemaVersion: '1.0', kid: 'TpmEphemeralEncryptionKey', alg: 'dir', enc, ciphertext })
  }
})

t.test('parse tolerates padding and absent header members', async (t) => {
  const doc = JSON.stringify({ schema_version: '1.0', header: { kid: 'k', alg: 'dir', enc: 'CKM_RSA_AES_KEY_WRAP' }, ciphertext: 'AAEC' })
  const padded = Buffer.from(doc + ' ', 'utf8').toString('base64') // length chosen so padding appears
  t.match(padded, /=$/, 'the input really is padded')
  t.same(parseKeyHsm(padded.replaceAll('+', '-').replaceAll('/', '_')).ciphertext, Buffer.from([0, 1, 2]))
  t.same(parseKeyHsm(b64url(JSON.stringify({ ciphertext: 'AAEC' }))), {
    schemaVersion: '', kid: '', alg: '', enc: '', ciphertext: Buffer.from([0, 1, 2])
  }, 'the reference reads only ciphertext')
  t.same(parseKeyHsm(b64url(JSON.stringify({ ciphertext: 'AAE=' }))).ciphertext, Buffer.from([0, 1]), 'padded ciphertext')
})

t.test('malformed envelopes are KeyUnwrapFailed', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['empty', '', 'key_hsm'],
    ['not b64url', '@@@@', 'key_hsm base64url'],
    ['std b64 alphabet', Buffer.from('{"ciphertext":"AA"}>>>', 'utf8').toString('base64').replace(/=+$/, '') + '+/', 'key_hsm base64url'],
    ['not JSON', b64url('not json'), 'key_hsm JSON'],
    ['not UTF-8', Buffer.from([0x7b, 0xff, 0x7d]).toString('base64url'), 'key_hsm JSON'],
    ['JSON array', b64url('[]'), 'key_hsm JSON'],
    ['JSON null', b64url('null'), 'key_hsm JSON'],
    ['JSON string', b64url('"x"'), 'key_hsm JSON'],
    ['schema_version not a string', b64url('{"schema_version":1,"ciphertext":"AA"}'), 'schema_version'],
    ['header not an object', b64url('{"header":"x","ciphertext":"AA"}'), 'header'],
    ['header an array', b64url('{"header":[],"ciphertext":"AA"}'), 'header'],
    ['header.kid not a string', b64url('{"header":{"kid":1},"ciphertext":"AA"}'), 'header.kid'],
    ['header.alg not a string', b64url('{"header":{"alg":null},"ciphertext":"AA"}'), 'header.alg'],
    ['header.enc not a string', b64url('{"header":{"enc":{}},"ciphertext":"AA"}'), 'header.enc'],
    ['ciphertext missing', b64url('{"header":{}}'), 'ciphertext'],
    ['ciphertext empty', b64url('{"ciphertext":""}'), 'ciphertext'],
    ['ciphertext a number', b64url('{"ciphertext":5}'), 'ciphertext'],
    ['ciphertext std b64', b64url('{"ciphertext":"ab+/"}'), 'ciphertext base64url'],
    ['ciphertext one stray sextet', b64url('{"ciphertext":"AAAAA"}'), 'ciphertext base64url'],
    ['ciphertext "=" only', b64url('{"ciphertext":"=="}'), 'ciphertext base64url']
  ]
  for (const [name, input, step] of cases) {
    t.throws(() => parseKeyHsm(input), { code: UNWRAP, name: 'KeyUnwrapFailed', details: { step } }, name)
  }
  t.throws(() => parseKeyHsm(undefined as unknown as string), { code: UNWRAP }, 'not a string')
})

t.test('buildKeyHsm refuses misuse', async (t) => {
  t.throws(() => buildKeyHsm({ kid: 'k', enc: 'X' as 'CKM_RSA_AES_KEY_WRAP', ciphertext: Buffer.alloc(1) }), TypeError)
  t.throws(() => buildKeyHsm({ kid: 'k', enc: 'CKM_RSA_AES_KEY_WRAP', ciphertext: Buffer.alloc(0) }), TypeError)
})
