// The JSON key-provider protocol, from bytes: Go json.Unmarshal's leniencies (case-insensitive
// names, null as absent, unknown fields ignored), its strictness (wrong types), and the exact
// output bytes for each service name.
import t from 'tap'
import {
  buildUnwrapOutput, buildWrapOutput, goJsonString, parseUnwrapRequest, parseWrapRequest
} from '../../../src/grpc/key-provider-protocol.ts'

const b64 = (s: string): string => Buffer.from(s).toString('base64')
const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v))

t.test('parseWrapRequest: the reference shape', async t => {
  const req = parseWrapRequest(json({
    op: 'keywrap',
    keywrapparams: { ec: { Parameters: { 'attestation-agent': [b64('skr:/keys/testkey000')] }, DecryptConfig: { Parameters: {} } }, optsdata: b64('data') },
    keyunwrapparams: {},
    extra: { ignored: true }
  }))
  t.same(req, { keyPath: '/keys/testkey000', optsData: Buffer.from('data') })
})

t.test('parseWrapRequest: Go leniencies', async t => {
  // Case-insensitive member names, null as absent, byte arrays instead of base64 (ocicrypt-rs).
  const req = parseWrapRequest(json({
    OP: null,
    KeyWrapParams: { EC: { parameters: { 'attestation-agent': [[...Buffer.from('SKR:C:/odd:path')]] } }, OptsData: null }
  }))
  t.same(req, { keyPath: 'C:/odd:path', optsData: Buffer.alloc(0) }, 'everything after the first colon is the path (the reference truncated at the second)')
})

t.test('parseWrapRequest: failures name the field, never echo values', async t => {
  const agent = (v: unknown): Buffer => json({ keywrapparams: { ec: { Parameters: { 'attestation-agent': v } } } })
  const cases: Array<[string, Buffer, RegExp]> = [
    ['not JSON', Buffer.from('{'), /^key provider input is not valid JSON$/],
    ['array', Buffer.from('[]'), /must be a JSON object/],
    ['null', Buffer.from('null'), /must be a JSON object/],
    ['op type', json({ op: 1 }), /op must be a string/],
    ['op mismatch', json({ op: 'keyunwrap' }), /op must be "keywrap"/],
    ['keywrapparams type', json({ keywrapparams: 'x' }), /keywrapparams must be an object/],
    ['no parameters', json({ keywrapparams: {} }), /attestation-agent must be specified in the encryption config parameters/],
    ['empty list', agent([]), /attestation-agent must be specified/],
    ['not a list', agent('c2ty'), /must be an array/],
    ['element type', agent([5]), /must be base64 text or an array of byte values/],
    ['element not base64', agent(['@@']), /is not base64/],
    ['no colon', agent([b64('skr')]), /key path is not provided/],
    ['empty path', agent([b64('skr:')]), /key path is empty/],
    ['other agent', agent([b64('kbs:/secret/path')]), /unexpected attestation agent/],
    ['bad optsdata', json({ keywrapparams: { ec: { Parameters: { 'attestation-agent': [b64('skr:k')] } }, optsdata: 'a*b' } }), /optsdata is not base64/]
  ]
  for (const [name, input, message] of cases) {
    t.throws(() => parseWrapRequest(input), { code: 'ERR_REQUEST_INVALID', message }, name)
  }
  t.throws(() => parseWrapRequest(agent([b64('kbs:/secret/path')])), { message: /^(?!.*secret).*$/ }, 'the path is not echoed')
})

t.test('parseUnwrapRequest', async t => {
  const ok = parseUnwrapRequest(json({
    op: 'keyunwrap', keywrapparams: {}, keyunwrapparams: { dc: { Parameters: { 'attestation-agent': [b64('Skr')] } }, annotation: b64('{"kid":"k"}') }
  }))
  t.same(ok, { annotation: Buffer.from('{"kid":"k"}') })
  const dc = { Parameters: { 'attestation-agent': [b64('skr')] } }
  t.throws(() => parseUnwrapRequest(json({ keyunwrapparams: { dc, annotation: '!!' } })), { message: /annotation is not base64/ })
  t.throws(() => parseUnwrapRequest(json({ keyunwrapparams: { dc } })), { message: /annotation is missing/ })
  t.throws(() => parseUnwrapRequest(json({ keyunwrapparams: { dc, annotation: 7 } })), { message: /annotation must be base64 text/ })
  t.throws(() => parseUnwrapRequest(json({ keyunwrapparams: { dc: { Parameters: { 'attestation-agent': [b64('skr:x')] } }, annotation: 'e30=' } })), { message: /unexpected attestation agent/ })
  t.throws(() => parseUnwrapRequest(json({ keyunwrapparams: { annotation: 'e30=' } })), { message: /attestation-agent must be specified in the decryption config parameters/ })
})

t.test('outputs: reference bytes exactly, ocicrypt as byte arrays', async t => {
  const data = Buffer.from([0, 1, 254, 255])
  t.equal(buildWrapOutput(data, 'reference').toString(), '{"keywrapresults":{"annotation":"AAH+/w=="},"keyunwrapresults":{"optsdata":null}}')
  t.equal(buildUnwrapOutput(data, 'reference').toString(), '{"keywrapresults":{"annotation":null},"keyunwrapresults":{"optsdata":"AAH+/w=="}}')
  t.equal(buildWrapOutput(data, 'ocicrypt').toString(), '{"keywrapresults":{"annotation":[0,1,254,255]}}')
  t.equal(buildUnwrapOutput(data, 'ocicrypt').toString(), '{"keyunwrapresults":{"optsdata":[0,1,254,255]}}')
  t.equal(buildUnwrapOutput(Buffer.alloc(0), 'reference').toString(), '{"keywrapresults":{"annotation":null},"keyunwrapresults":{"optsdata":""}}')
})

t.test('goJsonString escapes as Go json.Marshal does', async t => {
  t.equal(goJsonString('a<b>&c\u2028"\\'), '"a\\u003cb\\u003e\\u0026c\\u2028\\"\\\\"')
})
