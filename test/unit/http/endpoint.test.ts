import t from 'tap'
import { normaliseEndpoint } from '../../../src/http/endpoint.ts'

const F = 'body.maa_endpoint'

t.test('accepted forms normalise to host[:port]', async t => {
  const cases: Array<[string, string]> = [
    ['sharedeus.eus.attest.azure.net', 'sharedeus.eus.attest.azure.net'],
    ['SharedEUS.eus.Attest.Azure.net', 'sharedeus.eus.attest.azure.net'],
    ['https://sharedeus.eus.attest.azure.net', 'sharedeus.eus.attest.azure.net'],
    ['HTTPS://sharedeus.eus.attest.azure.net/', 'sharedeus.eus.attest.azure.net'],
    // The https default port is dropped: host and host:443 are one destination (and one MAA issuer).
    ['sharedeus.eus.attest.azure.net:443', 'sharedeus.eus.attest.azure.net'],
    ['https://myvault.vault.azure.net:8443/', 'myvault.vault.azure.net:8443'],
    ['localhost:0443', 'localhost'],
    ['localhost:8443', 'localhost:8443'],
    ['127.0.0.1:9000', '127.0.0.1:9000'],
    ['[::1]', '[::1]'],
    ['https://[::1]:8443/', '[::1]:8443'],
    ['[FE80::1]:1', '[fe80::1]:1'],
    ['a', 'a'],
    ['x-y.z', 'x-y.z'],
    ['host/', 'host'],
    // Canonical forms: what undici's URL parser would connect to.
    ['myvault.vault.azure.net.', 'myvault.vault.azure.net'],
    ['https://MyVault.Vault.Azure.Net.:8443/', 'myvault.vault.azure.net:8443'],
    ['2130706433', '127.0.0.1'],
    ['0x7f000001:8443', '127.0.0.1:8443'],
    ['127.1', '127.0.0.1'],
    ['0177.0.0.1', '127.0.0.1'],
    ['[0:0:0:0:0:0:0:1]:9', '[::1]:9'],
    ['[::ffff:127.0.0.1]', '[::ffff:7f00:1]'],
    ['bücher.example', 'xn--bcher-kva.example'],
    ['ＥＸＡＭＰＬＥ．com', 'example.com']
  ]
  for (const [input, want] of cases) t.equal(normaliseEndpoint(input, F), want, input)
})

t.test('rejected forms say what was wrong and name the field', async t => {
  const cases: Array<[string, string]> = [
    ['', 'got an empty string'],
    [' host', 'got whitespace'],
    ['host\n', 'got whitespace'],
    ['http://host', 'got the scheme "http://" (only https:// is allowed)'],
    ['ftp://x', 'got the scheme "ftp://" (only https:// is allowed)'],
    ['https://host/path', 'got a path'],
    ['host/path/', 'got a path'],
    ['https://host//', 'got a path'],
    ['https://user@host', 'got user information (user@)'],
    ['https://host?x=1', 'got a query'],
    ['https://host#frag', 'got a fragment'],
    ['https://', 'got an empty host'],
    [':443', 'got an empty host'],
    ['host:99999', 'got a bad port "99999"'],
    ['host:0', 'got a bad port "0"'],
    ['host:', 'got a bad port ""'],
    ['host:https', 'got a bad port "https"'],
    ['::1', 'got an IPv6 address without [brackets] or more than one port'],
    ['[::1', 'got an invalid IPv6 literal "[::1"'],
    ['[not-v6]', 'got an invalid IPv6 literal "[not-v6]"'],
    ['[::1]x', 'got unexpected text after the IPv6 literal "x"'],
    ['-bad.example', 'got an invalid host name "-bad.example"'],
    ['under_score.example', 'got an invalid host name "under_score.example"'],
    ['a..b', 'got an invalid host name "a..b"'],
    ['[fe80::1%eth0]', 'got an IPv6 zone id (%…): a zone names a local interface, not a service'],
    ['[fe80::1%25eth0]:443', 'got an IPv6 zone id (%…): a zone names a local interface, not a service'],
    ['ex%61mple.com', 'got an invalid host name "ex%61mple.com"'],
    ['1.2.3.4.5', 'got an invalid host name "1.2.3.4.5"'],
    ['999.0.0.1', 'got an invalid host name "999.0.0.1"'],
    ['.', 'got an invalid host name "."'],
    ['a\u0000b', 'got an invalid host name "a\\u0000b"']
  ]
  for (const [input, problem] of cases) {
    t.throws(() => normaliseEndpoint(input, F), {
      name: 'RequestInvalid',
      code: 'ERR_REQUEST_INVALID',
      statusCode: 400,
      message: `body.maa_endpoint must be a host name like sharedeus.eus.attest.azure.net (optionally https:// and :port), ${problem}`
    }, JSON.stringify(input))
  }
})

t.test('the akv field gets a vault example', async t => {
  t.throws(() => normaliseEndpoint('https://v.vault.azure.net/keys/k', 'body.akv_endpoint'), {
    message: 'body.akv_endpoint must be a host name like myvault.vault.azure.net (optionally https:// and :port), got a path'
  })
})

t.test('huge input is not echoed in full', async t => {
  const long = `${'a'.repeat(70)}_${'b'.repeat(500)}`
  try {
    normaliseEndpoint(long, F)
    t.fail('should throw')
  } catch (err) {
    const message = (err as Error).message
    t.match(message, `got an invalid host name "${long.slice(0, 100)}…"`)
    t.ok(message.length < 300, `message length ${message.length}`)
  }
})
