import t from 'tap'
import { hasControl, isObject, isTokenShaped, oneLine, REDACTED, redactTokens, untrustedText } from '../../../src/text/untrusted.ts'

const range = (from: number, to: number): string[] => Array.from({ length: to - from + 1 }, (_, i) => String.fromCharCode(from + i))
const hex = (c: string): string => `U+${c.charCodeAt(0).toString(16).padStart(4, '0')}`

const C0 = range(0x00, 0x1f)
const DEL = ['\u007f']
const C1 = range(0x80, 0x9f)
const SEPARATORS = ['\u2028', '\u2029']
const BIDI = ['\u061c', '\u200e', '\u200f', ...range(0x202a, 0x202e), ...range(0x2066, 0x2069)]
const CONTROLS = [...C0, ...DEL, ...C1, ...SEPARATORS, ...BIDI]

t.test('every control class becomes one space: C0, DEL, C1, U+2028/2029, bidi controls', async t => {
  for (const [name, chars] of Object.entries({ C0, DEL, C1, SEPARATORS, BIDI })) {
    for (const c of chars) {
      t.ok(hasControl(`a${c}b`), `${name} ${hex(c)} found`)
      t.equal(oneLine(`a${c}b`), 'a b', `${name} ${hex(c)} replaced`)
    }
  }
  t.equal(oneLine(CONTROLS.join('')), ' '.repeat(CONTROLS.length))
  t.equal(oneLine('X\r\nforged: log'), 'X  forged: log', 'CRLF is two spaces: no line can start')
})

t.test('printable text passes unchanged, astral and non-Latin included', async t => {
  for (const text of ['', 'plain ASCII ~!@#$%^&*()', 'ключ ü € 漢字', '\u00a0nbsp', 'emoji 🔑', 'zero\u200bwidth', '\ufeffbom']) {
    t.notOk(hasControl(text), text)
    t.equal(oneLine(text), text)
  }
})

t.test('escape: each control as JSON spells it, \\uXXXX lower-case', async t => {
  t.equal(oneLine('a\u0007b\u009b\u2028\u202e', { escape: true }), 'a\\u0007b\\u009b\\u2028\\u202e')
  t.equal(oneLine('a\nb', { escape: true }), 'a\\u000ab')
  for (const c of CONTROLS) t.notOk(hasControl(oneLine(c, { escape: true })), hex(c))
  // JSON.stringify leaves DEL, C1 and U+2028 raw: escape finishes the job.
  t.equal(oneLine(JSON.stringify('x\u0085\ny'), { escape: true }), '"x\\u0085\\ny"')
})

t.test('length cap: ellipsis by default, a bare cut on request, trim before the cut, never half a surrogate pair', async t => {
  t.equal(oneLine('x'.repeat(500), { max: 200 }), `${'x'.repeat(200)}…`)
  t.equal(oneLine('x'.repeat(500), { max: 300, ellipsis: false }), 'x'.repeat(300))
  t.equal(oneLine('x'.repeat(200), { max: 200 }), 'x'.repeat(200), 'at the cap: unchanged')
  t.equal(oneLine('  \n padded \t ', { trim: true }), 'padded')
  t.equal(oneLine('  padded  ', {}), '  padded  ', 'no trim unless asked')
  t.equal(oneLine(`${' '.repeat(10)}abc`, { trim: true, max: 2 }), 'ab…')
  t.equal(oneLine(`ab🔑`, { max: 3 }), 'ab…', 'the high surrogate is not left alone')
  t.equal(oneLine(`ab🔑`, { max: 4 }), 'ab🔑')
})

const JWT = 'eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJ3b3JrbG9hZCIsImF1ZCI6Imh0dHBzOi8vdmF1bHQuYXp1cmUubmV0In0.c2lnbmF0dXJlX2J5dGVz'

t.test('token-shaped runs: JWTs (signed, unsigned, JWE head) are found and redacted', async t => {
  const shaped = [
    JWT,
    'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.',
    'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0',
    'eyJhbGciOiJSU0EtT0FFUCJ9.ZW5jcnlwdGVkX2tleQ.aXY.Y2lwaGVydGV4dA.dGFn'
  ]
  for (const token of shaped) {
    t.ok(isTokenShaped(token), token)
    t.equal(redactTokens(token).startsWith(REDACTED), true, token)
    t.notOk(redactTokens(token).includes(token.split('.')[1] ?? '?'), 'the payload is gone')
  }
  t.equal(redactTokens(`Authorization: Bearer ${JWT}, again ${JWT}.`), `Authorization: Bearer ${REDACTED}, again ${REDACTED}.`)
  t.equal(isTokenShaped(`x ${JWT} y`), true)
  t.equal(isTokenShaped(`x ${JWT} y`), true, 'no /g state between calls')
})

t.test('what is not token-shaped stays: ids, hex, short eyJ, opaque tokens', async t => {
  const kept = [
    '4f6b2c1a-9d3e-4b7a-8c2d-1e0f9a8b7c6d',
    'ab'.repeat(48),
    'eyJ.x.y',
    'eyJabc.defg',
    'Bearer opaque-secret',
    'AADSTS700016: Application with identifier x was not found',
    'https://sharedeus.eus.attest.azure.net/certs'
  ]
  for (const text of kept) {
    t.notOk(isTokenShaped(text), text)
    t.equal(redactTokens(text), text)
  }
})

t.test('untrustedText: redact, then one line, with the options', async t => {
  t.equal(untrustedText(`  bad assertion ${JWT}\nforged: line  `, { trim: true }), `bad assertion ${REDACTED} forged: line`)
  t.equal(untrustedText(`a\u0000${JWT}`), `a ${REDACTED}`, 'a control next to a token does not shield it')
  t.equal(untrustedText('m'.repeat(1000), { max: 300, ellipsis: false }).length, 300)
  t.equal(untrustedText('x'.repeat(500), { trim: true, max: 200 }).length, 201)
})

t.test('isObject: non-null, non-array objects only', async t => {
  class Thing { a = 1 }
  for (const value of [{}, { a: 1 }, Object.create(null), new Thing(), new Date(0), new Map(), JSON.parse('{"__proto__":1}')]) {
    t.ok(isObject(value), Object.prototype.toString.call(value))
  }
  for (const value of [null, undefined, [], [1], JSON.parse('[{}]'), 'str', 0, 1n, true, Symbol('s'), () => ({})]) {
    t.notOk(isObject(value), String(typeof value))
  }
  const parsed: unknown = JSON.parse('{"n":1}')
  if (isObject(parsed)) t.equal(parsed['n'], 1, 'narrowed to a record')
})
