import t from 'tap'
import { decodeBase64Flexible, decodeBase64Url, encodeBase64Url } from '../../../src/encoding/base64.ts'

// Bytes whose encodings differ between the alphabets: 0xfb 0xff → "+/8" vs "-_8".
const bytes = Buffer.from([0xfb, 0xff, 0xbf, 0x00, 0x01])

t.test('decodeBase64Flexible accepts both alphabets, padded or not', async t => {
  const std = bytes.toString('base64')
  const url = bytes.toString('base64url')
  t.equal(std, '+/+/AAE=')
  t.equal(url, '-_-_AAE')
  for (const text of [std, std.replace(/=+$/, ''), url, `${url}=`]) {
    t.same(decodeBase64Flexible(text), bytes, text)
  }
  t.same(decodeBase64Flexible('aGVsbG8='), Buffer.from('hello'))
  t.same(decodeBase64Flexible('aGVsbG8'), Buffer.from('hello'))
  t.same(decodeBase64Flexible('aGVs'), Buffer.from('hel'))
  t.same(decodeBase64Flexible(''), Buffer.alloc(0))
})

t.test('decodeBase64Flexible ignores CR and LF as Go does', async t => {
  t.same(decodeBase64Flexible('aGVs\nbG8=\r\n'), Buffer.from('hello'))
})

t.test('decodeBase64Flexible rejects bad characters, mixed alphabets, bad padding, impossible lengths', async t => {
  const bad = [
    'aGVs bG8=', // space
    'aGVsbG8*', // bad char
    'aGVs\tbG8', // tab
    '+/-_', // mixed alphabets
    'aGVsbG8==', // too much padding
    'aGVsbA=', // padding that does not complete the quantum
    'aGVs=', // padding after a full quantum
    'a', // 6 bits
    'aGVsb', // 5 chars: impossible length
    '=', // padding only
    'aG=VsbG8', // padding in the middle
    'aGVsbG8===' // three pads
  ]
  for (const text of bad) t.equal(decodeBase64Flexible(text), null, JSON.stringify(text))
})

t.test('encodeBase64Url pads on request', async t => {
  t.equal(encodeBase64Url(bytes, false), '-_-_AAE')
  t.equal(encodeBase64Url(bytes, true), '-_-_AAE=')
  t.equal(encodeBase64Url(Buffer.from('hel'), true), 'aGVs')
  t.equal(encodeBase64Url(Buffer.from('h'), true), 'aA==')
  t.equal(encodeBase64Url(Buffer.alloc(0), true), '')
})

t.test('decodeBase64Url accepts only the url-safe alphabet', async t => {
  t.same(decodeBase64Url('-_-_AAE'), bytes)
  t.same(decodeBase64Url('-_-_AAE='), bytes)
  t.equal(decodeBase64Url('+/+/AAE='), null)
  t.equal(decodeBase64Url('-_-_AAE=='), null)
  t.equal(decodeBase64Url('a'), null)
  t.equal(decodeBase64Url('ab\ncd'), null)
  for (const n of [0, 1, 2, 3, 4, 31, 32, 33]) {
    const buf = Buffer.alloc(n, 0xa5)
    t.same(decodeBase64Url(encodeBase64Url(buf, false)), buf, `round trip ${n} unpadded`)
    t.same(decodeBase64Url(encodeBase64Url(buf, true)), buf, `round trip ${n} padded`)
  }
})

t.test('decodeBase64Url is strict about the alphabet and tolerant of padding (key_hsm, release JWS)', async t => {
  t.same(decodeBase64Url('-_8'), Buffer.from([0xfb, 0xff]))
  t.same(decodeBase64Url('-_8='), Buffer.from([0xfb, 0xff]), 'padded')
  t.same(decodeBase64Url('AA=='), Buffer.from([0]))
  t.same(decodeBase64Url(''), Buffer.alloc(0))
  for (const bad of ['+/8', 'AA A', 'A', 'AAAAA', 'AA=', 'AAA==', 'AA===', 'A=AA', 'AA\n']) {
    t.equal(decodeBase64Url(bad), null, `rejects ${JSON.stringify(bad)}`)
  }
})
