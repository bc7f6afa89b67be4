import t from 'tap'
import { inspect } from 'node:util'
import {
  NO_PROXY_SETTINGS, ProxyServer, parseProxyEnv, proxyFor, proxyFromEnvironment, proxyRefusalStatus
} from '../../../src/http/proxy.ts'

type Env = Record<string, string>

// What proxyFor says for a URL, in one printable word: direct, unusable, or the proxy's origin.
function route (env: Env, url: string): string {
  const r = proxyFor(parseProxyEnv(env), new URL(url))
  if (r === null) return 'direct'
  return r.kind === 'unusable' ? 'unusable' : r.origin
}

const P = 'http://proxy.corp:3128'

t.test('which variable applies: scheme, upper case first, empty means unset', async (t) => {
  const cases: Array<[string, Env, string, string]> = [
    ['nothing set', {}, 'https://vault.azure.net', 'direct'],
    ['HTTPS_PROXY for https', { HTTPS_PROXY: P }, 'https://vault.azure.net', P],
    ['HTTPS_PROXY is not used for http', { HTTPS_PROXY: P }, 'http://example.com', 'direct'],
    ['HTTP_PROXY for http', { HTTP_PROXY: P }, 'http://example.com', P],
    ['HTTP_PROXY is not used for https (Go)', { HTTP_PROXY: P }, 'https://vault.azure.net', 'direct'],
    ['lower case alone', { https_proxy: P }, 'https://vault.azure.net', P],
    ['upper case wins', { HTTPS_PROXY: P, https_proxy: 'http://other:1' }, 'https://vault.azure.net', P],
    ['empty upper case falls back to lower case', { HTTPS_PROXY: '', https_proxy: P }, 'https://vault.azure.net', P],
    ['host:port means http://', { HTTPS_PROXY: 'proxy.corp:3128' }, 'https://a.b', P],
    ['a bare host means http:// on port 80', { HTTPS_PROXY: 'proxy.corp' }, 'https://a.b', 'http://proxy.corp'],
    ['IPv4:port', { HTTPS_PROXY: '10.0.0.1:3128' }, 'https://a.b', 'http://10.0.0.1:3128'],
    ['[IPv6]:port', { HTTPS_PROXY: '[fd00::1]:3128' }, 'https://a.b', 'http://[fd00::1]:3128'],
    ['https:// proxy, path dropped', { HTTPS_PROXY: 'HTTPS://Proxy.Corp:8443/some/path' }, 'https://a.b', 'https://proxy.corp:8443'],
    ['userinfo without a scheme', { HTTPS_PROXY: 'user:pw@proxy.corp:3128' }, 'https://a.b', P],
    ['socks5 is unusable', { HTTPS_PROXY: 'socks5://proxy.corp:1080' }, 'https://a.b', 'unusable'],
    ['garbage is unusable', { HTTPS_PROXY: 'http://[nope' }, 'https://a.b', 'unusable'],
    ['bad percent-encoding in userinfo is unusable', { HTTPS_PROXY: 'http://u:%zz@proxy.corp' }, 'https://a.b', 'unusable'],
    ['an unusable proxy still lets NO_PROXY hosts through', { HTTPS_PROXY: 'ftp://x', NO_PROXY: 'a.b' }, 'https://a.b', 'direct'],
    ['other schemes never use a proxy', { HTTPS_PROXY: P, HTTP_PROXY: P }, 'ws://a.b', 'direct']
  ]
  for (const [name, env, url, want] of cases) t.equal(route(env, url), want, name)
})

t.test('loopback and link-local (IMDS) always go direct, whatever NO_PROXY says', async (t) => {
  const env = { HTTPS_PROXY: P, HTTP_PROXY: P }
  const direct = [
    'https://localhost:8443', 'http://localhost', 'https://127.0.0.1', 'https://127.45.6.7:99', 'https://[::1]:443',
    'https://[::ffff:127.0.0.1]', 'https://0x7f.1/', // WHATWG canonicalises both to loopback
    'http://169.254.169.254/metadata/identity/oauth2/token', 'http://169.254.169.254/metadata/THIM/amd/certification',
    'http://169.254.1.2', 'http://[fe80::1]'
  ]
  for (const url of direct) t.equal(route(env, url), 'direct', url)
  // Only the names themselves: Go matches "localhost" exactly and never resolves names.
  const proxied = ['https://localhost.example.com', 'https://127.0.0.1.nip.io', 'https://169.254.169.254.example', 'https://128.0.0.1', 'https://169.255.0.1']
  for (const url of proxied) t.equal(route(env, url), P, url)
})

t.test('NO_PROXY matching follows golang.org/x/net/http/httpproxy', async (t) => {
  // [NO_PROXY, url, goes direct?]
  const cases: Array<[string, string, boolean]> = [
    ['example.com', 'https://example.com', true],
    ['example.com', 'https://vault.example.com', true],
    ['example.com', 'https://a.b.example.com:8443', true],
    ['example.com', 'https://notexample.com', false],
    ['example.com', 'https://example.com.evil.net', false],
    ['.example.com', 'https://example.com', false],
    ['.example.com', 'https://vault.example.com', true],
    ['*.example.com', 'https://example.com', false],
    ['*.example.com', 'https://vault.example.com', true],
    ['example.com:443', 'https://example.com', true],
    ['example.com:443', 'https://example.com:8443', false],
    ['example.com:80', 'https://example.com', false],
    ['example.com:80', 'http://example.com', true],
    ['vault.azure.net', 'https://myvault.vault.azure.net', true],
    ['net', 'https://myvault.vault.azure.net', true],
    [' Example.COM ,, other.org', 'https://www.example.com', true],
    [' Example.COM ,, other.org', 'https://other.org', true],
    ['10.0.0.0/8', 'https://10.1.2.3', true],
    ['10.0.0.0/8', 'https://11.0.0.1', false],
    ['10.9.9.9/8', 'https://10.1.2.3', true], // host bits in the CIDR are ignored, as net.ParseCIDR does
    ['10.0.0.0/33', 'https://10.0.0.1', false], // not a CIDR, and a name entry never matches an IP
    ['10.1.2.3', 'https://10.1.2.3:8443', true],
    ['10.1.2.3:8443', 'https://10.1.2.3:8443', true],
    ['10.1.2.3:8443', 'https://10.1.2.3', false],
    ['2001:db8::/32', 'https://[2001:db8::42]', true],
    ['2001:db8::1', 'https://[2001:db8::1]', true],
    ['[2001:db8::1]:443', 'https://[2001:db8::1]', true],
    ['[2001:db8::1]:443', 'https://[2001:db8::1]:8443', false],
    ['10.1.2.3', 'https://10.1.2.3.example.com', false], // an IP entry never matches a name
    ['3.com', 'https://10.1.2.3.com', true],
    ['1.2.3', 'https://10.1.2.3', false], // a name entry never matches an IP literal
    ['bücher.de', 'https://www.bücher.de', true], // Unicode entries compare in punycode, as URL hosts do
    ['*', 'https://anything.at.all', true],
    ['example.com,*', 'https://anything.at.all', true],
    [':443, [::1, ,', 'https://example.com', false] // malformed entries are skipped
  ]
  for (const [noProxy, url, direct] of cases) {
    t.equal(route({ HTTPS_PROXY: P, HTTP_PROXY: P, NO_PROXY: noProxy }, url), direct ? 'direct' : P, `NO_PROXY=${JSON.stringify(noProxy)} ${url}`)
  }
  t.equal(route({ HTTPS_PROXY: P, no_proxy: 'example.com' }, 'https://example.com'), 'direct', 'no_proxy alone')
  t.equal(route({ HTTPS_PROXY: P, NO_PROXY: 'other.org', no_proxy: 'example.com' }, 'https://example.com'), P, 'NO_PROXY wins')
  t.equal(route({ HTTPS_PROXY: P, NO_PROXY: '', no_proxy: 'example.com' }, 'https://example.com'), 'direct', 'empty NO_PROXY is unset')
})

t.test('credentials become a Proxy-Authorization value and are never printed', async (t) => {
  const settings = parseProxyEnv({ HTTPS_PROXY: 'http://skr%2Duser:s3cr3t%40pw@proxy.corp:3128' })
  const proxy = settings.https
  if (!(proxy instanceof ProxyServer)) throw new Error('want a usable proxy')
  t.equal(proxy.variable, 'HTTPS_PROXY')
  t.equal(proxy.protocol, 'http:')
  t.equal(proxy.authorization(), `Basic ${Buffer.from('skr-user:s3cr3t@pw').toString('base64')}`)
  t.equal(parseProxyEnv({ HTTPS_PROXY: 'http://user@proxy.corp' }).https?.kind, 'proxy')
  t.equal((parseProxyEnv({ HTTPS_PROXY: 'http://user@proxy.corp' }).https as ProxyServer).authorization(), `Basic ${Buffer.from('user:').toString('base64')}`, 'user without password, as Go sends it')
  t.equal((parseProxyEnv({ HTTPS_PROXY: P }).https as ProxyServer).authorization(), undefined)
  const printed = [String(proxy), `${proxy}`, JSON.stringify(proxy), JSON.stringify(settings), inspect(proxy, { depth: null, showHidden: true }), inspect(settings, { depth: null })]
  for (const text of printed) {
    t.notMatch(text, /s3cr3t|skr-user|skr%2Duser|Basic/, text)
  }
  t.equal(String(proxy), P)
  t.throws(() => { (proxy as { origin: string }).origin = 'x' }, TypeError, 'frozen')

  const unusable = parseProxyEnv({ HTTP_PROXY: 'socks5://skr-user:s3cr3t@proxy.corp:1080' }).http
  t.match(unusable, { kind: 'unusable', variable: 'HTTP_PROXY', reason: 'scheme socks5 is not supported; want http or https' })
  t.notMatch(JSON.stringify(unusable), /s3cr3t|skr-user/)
  t.match(parseProxyEnv({ https_proxy: 'http://u:%zz@p' }).https, { kind: 'unusable', variable: 'https_proxy', reason: /percent-encoding/ })
})

t.test('NO_PROXY_SETTINGS never proxies', async (t) => {
  t.equal(proxyFor(NO_PROXY_SETTINGS, new URL('https://vault.azure.net')), null)
  t.ok(Object.isFrozen(parseProxyEnv({ NO_PROXY: 'a' }).noProxy))
})

t.test('proxyFromEnvironment reads process.env once', async (t) => {
  const saved = { HTTPS_PROXY: process.env.HTTPS_PROXY, https_proxy: process.env.https_proxy, NO_PROXY: process.env.NO_PROXY, no_proxy: process.env.no_proxy }
  t.teardown(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) Reflect.deleteProperty(process.env, k)
      else process.env[k] = v
    }
  })
  delete process.env.https_proxy
  delete process.env.no_proxy
  process.env.HTTPS_PROXY = 'http://first.example:1'
  process.env.NO_PROXY = ''
  const first = proxyFromEnvironment()
  process.env.HTTPS_PROXY = 'http://second.example:2'
  t.equal(proxyFromEnvironment(), first)
  t.equal(proxyFor(first, new URL('https://vault.azure.net'))?.kind, 'proxy')
  t.equal(String(proxyFor(first, new URL('https://vault.azure.net'))), 'http://first.example:1')
})

t.test('proxyRefusalStatus recognises only undici\'s proxy refusals', async (t) => {
  const err = (code: string, message: string): Error => Object.assign(new Error(message), { code })
  t.equal(proxyRefusalStatus(err('UND_ERR_ABORTED', 'Proxy response (407) !== 200 when HTTP Tunneling')), 407)
  t.equal(proxyRefusalStatus(err('UND_ERR_ABORTED', 'Proxy response (503) !== 200 when HTTP Tunneling')), 503)
  t.equal(proxyRefusalStatus(err('UND_ERR_INVALID_ARG', 'Proxy Authentication Required (407)')), 407)
  t.equal(proxyRefusalStatus(err('UND_ERR_ABORTED', 'Request aborted')), null)
  t.equal(proxyRefusalStatus(err('ECONNREFUSED', 'Proxy response (407) !== 200 when HTTP Tunneling')), null)
  t.equal(proxyRefusalStatus(err('UND_ERR_INVALID_ARG', 'invalid method')), null)
  t.equal(proxyRefusalStatus({ code: 'UND_ERR_ABORTED' }), null)
  t.equal(proxyRefusalStatus('Proxy response (407) !== 200 when HTTP Tunneling'), null)
  t.equal(proxyRefusalStatus(null), null)
})
