// Every class of bad input answers 400 ERR_REQUEST_INVALID with a sentence naming the field,
// and never reaches a service.
import t from 'tap'
import { createHarness } from '../../doubles/fake-services.ts'

type Body = Record<string, unknown>

const MAA_OK: Body = { maa_endpoint: 'sharedeus.eus.attest.azure.net', runtime_data: 'eyJoZWxsbyI6MX0=' }
const KEY_OK: Body = { maa_endpoint: 'sharedeus.eus.attest.azure.net', akv_endpoint: 'myvault.vault.azure.net', kid: 'mykey' }
const B64_ERROR = 'body.runtime_data must be base64 (standard or url-safe alphabet, padded or unpadded)'
const MAA_SHAPE = 'body.maa_endpoint must be a host name like sharedeus.eus.attest.azure.net (optionally https:// and :port), got'
const AKV_SHAPE = 'body.akv_endpoint must be a host name like myvault.vault.azure.net (optionally https:// and :port), got'
const KID_ERROR = 'body.kid must be a key name (1-127 letters, digits or dashes), optionally followed by /version (1-64 letters or digits)'

function without (body: Body, key: string): Body {
  return Object.fromEntries(Object.entries(body).filter(([k]) => k !== key))
}

const cases: Array<[string, string, Body, string]> = [
  // missing fields
  ['/attest/raw', 'missing runtime_data', {}, 'body.runtime_data is required'],
  ['/attest/combined', 'missing runtime_data', { other: 'x' }, 'body.runtime_data is required'],
  ['/attest/maa', 'missing maa_endpoint', without(MAA_OK, 'maa_endpoint'), 'body.maa_endpoint is required'],
  ['/attest/maa', 'missing runtime_data', without(MAA_OK, 'runtime_data'), 'body.runtime_data is required'],
  ['/key/release', 'missing maa_endpoint', without(KEY_OK, 'maa_endpoint'), 'body.maa_endpoint is required'],
  ['/key/release', 'missing akv_endpoint', without(KEY_OK, 'akv_endpoint'), 'body.akv_endpoint is required'],
  ['/key/release', 'missing kid', without(KEY_OK, 'kid'), 'body.kid is required'],
  // wrong types (no coercion: 5 is not "5", true is not "true")
  ['/attest/raw', 'number runtime_data', { runtime_data: 5 }, 'body.runtime_data must be a string'],
  ['/attest/raw', 'null runtime_data', { runtime_data: null }, 'body.runtime_data must be a string'],
  ['/attest/combined', 'array runtime_data', { runtime_data: ['aGVsbG8='] }, 'body.runtime_data must be a string'],
  ['/attest/maa', 'object maa_endpoint', { ...MAA_OK, maa_endpoint: { host: 'x' } }, 'body.maa_endpoint must be a string'],
  ['/key/release', 'number kid', { ...KEY_OK, kid: 42 }, 'body.kid must be a string'],
  ['/key/release', 'boolean akv_endpoint', { ...KEY_OK, akv_endpoint: true }, 'body.akv_endpoint must be a string'],
  ['/key/release', 'number access_token', { ...KEY_OK, access_token: 7 }, 'body.access_token must be a string'],
  // empty strings
  ['/attest/raw', 'empty runtime_data', { runtime_data: '' }, 'body.runtime_data must not be empty'],
  ['/attest/maa', 'empty maa_endpoint', { ...MAA_OK, maa_endpoint: '' }, 'body.maa_endpoint must not be empty'],
  ['/key/release', 'empty akv_endpoint', { ...KEY_OK, akv_endpoint: '' }, 'body.akv_endpoint must not be empty'],
  ['/key/release', 'empty kid', { ...KEY_OK, kid: '' }, 'body.kid must not be empty'],
  // bad base64, in both alphabets
  ['/attest/raw', 'bad character', { runtime_data: 'aGVs*G8=' }, B64_ERROR],
  ['/attest/raw', 'mixed alphabets', { runtime_data: '+/-_' }, B64_ERROR],
  ['/attest/raw', 'std: bad padding', { runtime_data: '+/+/AAE==' }, B64_ERROR],
  ['/attest/raw', 'url: bad padding', { runtime_data: '-_-_AA=' }, B64_ERROR],
  ['/attest/combined', 'url: impossible length', { runtime_data: '-_-_A' }, B64_ERROR],
  ['/attest/combined', 'std: impossible length', { runtime_data: '+/+/A' }, B64_ERROR],
  ['/attest/maa', 'space inside', { ...MAA_OK, runtime_data: 'aGVs bG8=' }, B64_ERROR],
  ['/attest/raw', 'decodes to nothing', { runtime_data: '\n' }, 'body.runtime_data must not decode to zero bytes'],
  // /attest/maa sends runtime data to MAA as JSON: anything else is the caller's mistake, said up front (it used to be a 502 after a round trip)
  ['/attest/maa', 'not JSON', { ...MAA_OK, runtime_data: Buffer.from('hello').toString('base64') }, 'body.runtime_data must be base64 of JSON text (MAA evaluates it as JSON and puts it in the x-ms-runtime claim), e.g. base64 of {"nonce":"…"}; it decodes to text that is not JSON'],
  ['/attest/maa', 'not UTF-8', { ...MAA_OK, runtime_data: Buffer.from([0x7b, 0xff, 0x7d]).toString('base64') }, 'body.runtime_data must be base64 of UTF-8 JSON text (MAA evaluates it as JSON and puts it in the x-ms-runtime claim); it decodes to bytes that are not UTF-8'],
  // endpoints
  ['/attest/maa', 'http scheme', { ...MAA_OK, maa_endpoint: 'http://sharedeus.eus.attest.azure.net' }, `${MAA_SHAPE} the scheme "http://" (only https:// is allowed)`],
  ['/attest/maa', 'path', { ...MAA_OK, maa_endpoint: 'https://sharedeus.eus.attest.azure.net/attest/SevSnpVm' }, `${MAA_SHAPE} a path`],
  ['/key/release', 'userinfo', { ...KEY_OK, akv_endpoint: 'https://user@myvault.vault.azure.net' }, `${AKV_SHAPE} user information (user@)`],
  ['/key/release', 'ftp', { ...KEY_OK, maa_endpoint: 'ftp://x' }, `${MAA_SHAPE} the scheme "ftp://" (only https:// is allowed)`],
  ['/key/release', 'bad port', { ...KEY_OK, akv_endpoint: 'myvault.vault.azure.net:99999' }, `${AKV_SHAPE} a bad port "99999"`],
  ['/key/release', 'whitespace', { ...KEY_OK, akv_endpoint: ' myvault.vault.azure.net' }, `${AKV_SHAPE} whitespace`],
  // kid and access_token
  ['/key/release', 'kid with two slashes', { ...KEY_OK, kid: 'a/b/c' }, KID_ERROR],
  ['/key/release', 'kid with a url', { ...KEY_OK, kid: 'https://v.vault.azure.net/keys/k' }, KID_ERROR],
  ['/key/release', 'kid name too long', { ...KEY_OK, kid: 'k'.repeat(128) }, KID_ERROR],
  ['/key/release', 'kid version too long', { ...KEY_OK, kid: `k/${'a'.repeat(65)}` }, KID_ERROR],
  ['/key/release', 'kid version with a dash', { ...KEY_OK, kid: 'k/abc-def' }, KID_ERROR],
  ['/key/release', 'kid empty version', { ...KEY_OK, kid: 'k/' }, KID_ERROR],
  ['/key/release', 'kid with dot', { ...KEY_OK, kid: '../k' }, KID_ERROR],
  ['/key/release', 'access_token too long', { ...KEY_OK, access_token: 'x'.repeat(16 * 1024 + 1) }, 'body.access_token must be at most 16384 characters'],
  // It becomes an Authorization header: refused before any attestation (it used to fail later, as 503).
  ...['\r', '\n', '\u0000', ' ', '\t', '\u007f', 'é'].map((c): [string, string, Body, string] => ['/key/release', `access_token with ${JSON.stringify(c)}`, { ...KEY_OK, access_token: `eyJ0${c}eXAi` },
    'body.access_token must be a bearer token: printable ASCII, without spaces or control characters (CR, LF, NUL)'])
]

t.test('bad input answers 400 naming the field and never reaches a service', async t => {
  const { app, attestation, keyRelease } = createHarness()
  t.teardown(() => app.close())
  for (const [url, name, payload, error] of cases) {
    const res = await app.inject({ method: 'POST', url, payload })
    t.equal(res.statusCode, 400, `${url} ${name}: status`)
    const body = res.json()
    t.same(Object.keys(body), ['error', 'code', 'requestId'], `${url} ${name}: shape`)
    t.equal(body.error, error, `${url} ${name}: message`)
    t.equal(body.code, 'ERR_REQUEST_INVALID', `${url} ${name}: code`)
  }
  t.equal(attestation.calls.length, 0)
  t.equal(keyRelease.calls.length, 0)
})

t.test('accepted endpoint forms reach the service normalised', async t => {
  const { app, keyRelease, attestation } = createHarness()
  t.teardown(() => app.close())
  const forms: Array<[string, string]> = [
    ['myvault.vault.azure.net', 'myvault.vault.azure.net'],
    ['https://myvault.vault.azure.net', 'myvault.vault.azure.net'],
    ['https://myvault.vault.azure.net/', 'myvault.vault.azure.net'],
    ['myvault.vault.azure.net:443', 'myvault.vault.azure.net'],
    ['myvault.vault.azure.net:8443', 'myvault.vault.azure.net:8443']
  ]
  for (const [input] of forms) {
    const res = await app.inject({ method: 'POST', url: '/key/release', payload: { ...KEY_OK, akv_endpoint: input, maa_endpoint: input } })
    t.equal(res.statusCode, 200, input)
    const maa = await app.inject({ method: 'POST', url: '/attest/maa', payload: { ...MAA_OK, maa_endpoint: input } })
    t.equal(maa.statusCode, 200, input)
  }
  t.same(keyRelease.calls.map(c => c.request?.akvEndpoint), forms.map(f => f[1]))
  t.same(keyRelease.calls.map(c => c.request?.maaEndpoint), forms.map(f => f[1]))
  t.same(attestation.calls.map(c => c.maaEndpoint), forms.map(f => f[1]))
})

t.test('kid forms the vault accepts', async t => {
  const { app, keyRelease } = createHarness()
  t.teardown(() => app.close())
  const kids = ['k', 'my-key-01', 'k'.repeat(127), 'k/0123456789abcdef0123456789abcdef', `k/${'A'.repeat(64)}`]
  for (const kid of kids) {
    const res = await app.inject({ method: 'POST', url: '/key/release', payload: { ...KEY_OK, kid } })
    t.equal(res.statusCode, 200, kid)
  }
  t.same(keyRelease.calls.map(c => c.request?.kid), kids)
})
