// The annotation packet and key info file against the hand-built reference fixture: decoding
// it and re-encoding gives the same bytes, so skr writes packets the reference reads.
import t from 'tap'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  decodeAnnotationPacket, decodeWrappedFile, encodeAnnotationPacket, encodeWrappedFile,
  keyInfoPath, kidFromKeyPath, parseKeyInfo, WRAP_TYPE
} from '../../../src/grpc/annotation.ts'
import { FIXTURE_DIR } from '../../doubles/grpc-fakes.ts'

t.test('the fixture packet decodes, and re-encodes to the same bytes', async t => {
  const text = await readFile(join(FIXTURE_DIR, 'annotation.json'))
  const packet = decodeAnnotationPacket(text)
  t.match(packet, {
    kid: 'testkey000', wrapType: 'rsa_3072', kmsEndpoint: 'accmhsm.managedhsm.azure.net', attesterEndpoint: 'sharedeus2.eus2.attest.azure.net'
  })
  t.equal(packet.wrappedData.length, 384, 'RSA-3072 ciphertext')
  t.equal(packet.iv.length, 0)
  t.same(encodeAnnotationPacket(packet), text)
  const wrapped = await readFile(join(FIXTURE_DIR, 'wrapped'), 'utf8')
  t.same(decodeWrappedFile(wrapped), text)
  t.equal(encodeWrappedFile(text), wrapped)
  t.same(decodeWrappedFile(`${wrapped}\n`), text, 'a trailing newline (echo, editors) is fine')
})

t.test('encode: Go field order, omitempty, escapes', async t => {
  const base = { kid: 'k<1>', wrappedData: Buffer.from([1, 2, 3]), iv: Buffer.alloc(0), wrapType: '', kmsEndpoint: '', attesterEndpoint: '' }
  t.equal(encodeAnnotationPacket(base).toString(), '{"kid":"k\\u003c1\\u003e","wrapped_data":"AQID"}')
  t.equal(encodeAnnotationPacket({ ...base, kid: 'k', iv: Buffer.from('iv'), wrapType: WRAP_TYPE, kmsEndpoint: 'v', attesterEndpoint: 'm' }).toString(),
    '{"kid":"k","wrapped_data":"AQID","iv":"aXY=","wrap_type":"rsa_3072","kms_endpoint":"v","attester_endpoint":"m"}')
})

t.test('decode: Go leniencies and the fields an unwrap needs', async t => {
  const packet = decodeAnnotationPacket(Buffer.from(JSON.stringify({
    KID: 'k', wrapped_data: [1, 2], iv: null, wrap_type: null, kms_endpoint: 'v', attester_endpoint: 'm', future: 1
  })))
  t.same(packet.wrappedData, Buffer.from([1, 2]))
  t.equal(packet.kid, 'k')
  const missing: Array<[Record<string, unknown>, RegExp]> = [
    [{ wrapped_data: 'AQ==', kms_endpoint: 'v', attester_endpoint: 'm' }, /has no kid/],
    [{ kid: 'k', kms_endpoint: 'v', attester_endpoint: 'm' }, /has no wrapped_data/],
    [{ kid: 'k', wrapped_data: 'AQ==', attester_endpoint: 'm' }, /has no kms_endpoint/],
    [{ kid: 'k', wrapped_data: 'AQ==', kms_endpoint: 'v' }, /has no attester_endpoint/],
    [{ kid: 5 }, /kid must be a string/],
    [{ kid: 'k', wrapped_data: 'not base64!' }, /wrapped_data is not base64/]
  ]
  for (const [obj, message] of missing) {
    t.throws(() => decodeAnnotationPacket(Buffer.from(JSON.stringify(obj))), { code: 'ERR_REQUEST_INVALID', message })
  }
  t.throws(() => decodeWrappedFile('%%'), { code: 'ERR_REQUEST_INVALID' })
})

t.test('key info file', async t => {
  const info = parseKeyInfo(await readFile(join(FIXTURE_DIR, 'testkey000-info.json')), 'testkey000-info.json')
  t.same(info, { publicKeyPath: 'testkey000-pub.pem', kmsEndpoint: 'accmhsm.managedhsm.azure.net', attesterEndpoint: 'sharedeus2.eus2.attest.azure.net' })
  const bad: Array<[string, RegExp]> = [
    ['{"public_key_path": "secret-value"', /key info file is not valid JSON \(p\)/],
    ['{"public_key_path": 1}', /public_key_path must be a string/],
    ['{"public_key_path": "k.pem", "kms_endpoint": "v"}', /key info file has no attester_endpoint \(p\)/],
    ['{"kms_endpoint": "v", "attester_endpoint": "m"}', /has no public_key_path/]
  ]
  for (const [text, message] of bad) {
    t.throws(() => parseKeyInfo(Buffer.from(text), 'p'), { code: 'ERR_WRAPPING_KEY_INVALID', message })
  }
  t.throws(() => parseKeyInfo(Buffer.from('{"public_key_path": "secret-value"'), 'p'), { message: /^(?!.*secret-value)/ }, 'content is not echoed')
})

t.test('key paths: kid is the last element, info file is <keypath>-info.json', async t => {
  t.equal(kidFromKeyPath('./keys/testkey000'), 'testkey000')
  t.equal(kidFromKeyPath('testkey000'), 'testkey000')
  t.equal(kidFromKeyPath('keys/'), '')
  t.equal(keyInfoPath('./keys/testkey000'), './keys/testkey000-info.json')
})
