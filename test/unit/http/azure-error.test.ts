import t from 'tap'
import { parseAzureError } from '../../../src/http/azure-error.ts'

const j = (v: unknown): Buffer => Buffer.from(JSON.stringify(v))

t.test('AKV/MAA shape with innererror', async (t) => {
  t.same(parseAzureError(j({ error: { code: 'Forbidden', message: 'Target environment attestation statement cannot be verified.', innererror: { code: 'AccessDenied' } } })),
    { code: 'Forbidden', message: 'Target environment attestation statement cannot be verified.', innerCode: 'AccessDenied' })
  t.same(parseAzureError(j({ error: { code: 'KeyNotFound' } })), { code: 'KeyNotFound' })
})

t.test('IMDS/Entra shape', async (t) => {
  t.same(parseAzureError(j({ error: 'bad_request_102', error_description: 'Required metadata header not specified' })),
    { code: 'bad_request_102', message: 'Required metadata header not specified' })
})

t.test('texts are control-stripped and truncated', async (t) => {
  const out = parseAzureError(j({ error: { code: 'X\nforged: log', message: 'm'.repeat(1000) + '\u0000' } }))
  t.equal(out.code, 'X forged: log')
  t.equal(out.message?.length, 300)
  t.equal(parseAzureError(j({ error: { code: '\u001b[31m' } })).code, '[31m')
  t.equal(parseAzureError(j({ error: { code: 'a\u2028b\u009bc' } })).code, 'a b c')
})

t.test('an echoed token never reaches the parsed facts', async (t) => {
  const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln'
  t.same(parseAzureError(j({ error: 'invalid_grant', error_description: `assertion ${jwt} is expired` })),
    { code: 'invalid_grant', message: 'assertion [redacted] is expired' })
})

t.test('anything else gives {} and never throws', async (t) => {
  for (const body of [Buffer.alloc(0), Buffer.from('<html>oops</html>'), Buffer.from('{"error":'), j(null), j([1]), j('x'),
    j({ error: 42 }), j({ error: { code: 5, message: [] } }), j({ message: 'no error key' }), Buffer.alloc(100_000, 0x20)]) {
    t.same(parseAzureError(body), {}, body.subarray(0, 20).toString())
  }
  t.same(parseAzureError('not a buffer' as unknown as Buffer), {})
})
