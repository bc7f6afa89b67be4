import t from 'tap'
import {
  allowedHostEntries,
  DEFAULT_ALLOWED_HOSTS,
  DEFAULT_ALLOWED_SUFFIXES,
  isEndpointAllowed,
  parseAllowedHosts,
  type EndpointRole
} from '../../../src/http/allowed-hosts.ts'
import { normaliseEndpoint } from '../../../src/http/endpoint.ts'
import { VAULT_RESOURCES } from '../../../src/identity/resource.ts'

// What a caller sends goes through the same normalisation as in the routes.
const allowedAs = (role: EndpointRole) => (list: string | null, endpoint: string): boolean =>
  isEndpointAllowed(parseAllowedHosts(list), normaliseEndpoint(endpoint, `body.${role}`), role)
const allowed = allowedAs('akv_endpoint')
const allowedMaa = allowedAs('maa_endpoint')

t.test('the default allows the Azure hosts, the AKS docs\' examples among them, and nothing else', async t => {
  t.equal(parseAllowedHosts(null), DEFAULT_ALLOWED_HOSTS)
  t.equal(parseAllowedHosts('  '), DEFAULT_ALLOWED_HOSTS)
  // learn.microsoft.com/azure/aks/deploy-confidential-containers-default-policy (consumer.yaml)
  t.ok(allowed(null, 'myKeyVault.vault.azure.net'), 'the docs\' vault')
  t.ok(allowedMaa(null, 'sharedeus2.eus2.test.attest.azure.net'), 'the docs\' MAA')
  for (const host of [
    'https://myvault.vault.azure.net/',
    'myvault.vault.azure.net:443',
    'myhsm.managedhsm.azure.net',
    'v.vault.azure.cn',
    'h.managedhsm.azure.cn',
    'v.vault.usgovcloudapi.net',
    'h.managedhsm.usgovcloudapi.net',
    'MYVAULT.VAULT.AZURE.NET.'
  ]) t.ok(allowed(null, host), host)
  for (const host of ['sharedeus.eus.attest.azure.net', 'sharedeus.eus.attest.azure.net:443', 'sharedugv.ugv.attest.azure.us']) t.ok(allowedMaa(null, host), host)
  // Each suffix in its own role only, and on 443 only: Azure answers there; another port hangs.
  t.notOk(allowed(null, 'sharedeus.eus.attest.azure.net'), 'an MAA host is not a vault')
  t.notOk(allowedMaa(null, 'myvault.vault.azure.net'), 'a vault is not an MAA')
  t.notOk(allowed(null, 'myvault.vault.azure.net:8443'), 'another port of a vault')
  t.notOk(allowedMaa(null, 'x.attest.azure.net:9'), 'another port of an MAA')
  for (const host of [
    'vault.azure.net', // the suffix itself is not a vault
    'evil.example',
    'vault.azure.net.evil.example',
    'myvaultvault.azure.net',
    'evilvault.azure.net',
    '127.0.0.1',
    '[::1]',
    'localhost',
    '2130706433',
    'attest.azure.net',
    'x.attest.azure.cn'
  ]) t.notOk(allowed(null, host), host)
})

t.test('every Key Vault and Managed HSM suffix skr knows a token audience for is allowed by default', async t => {
  for (const { suffix } of VAULT_RESOURCES) t.ok(DEFAULT_ALLOWED_SUFFIXES.includes(`.${suffix}`), suffix)
})

t.test('entries: host, host:port, .suffix, *.suffix, IP literals, *', async t => {
  const list = 'vault.contoso.example, maa.contoso.example:8443, .corp.example, *.other.example:444, 10.1.2.3, [fd00::1]:9443, ::2'
  t.ok(allowed(list, 'vault.contoso.example'))
  t.ok(allowed(list, 'vault.contoso.example:9999'), 'a host entry allows any port')
  t.ok(allowed(list, 'maa.contoso.example:8443'))
  t.notOk(allowed(list, 'maa.contoso.example'), 'host:port allows that port only (443 is the default)')
  t.ok(allowed(list, 'a.b.corp.example:1234'))
  t.notOk(allowed(list, 'corp.example'), 'a suffix matches names strictly under it')
  t.ok(allowed(list, 'x.other.example:444'))
  t.notOk(allowed(list, 'x.other.example'))
  t.ok(allowed(list, '10.1.2.3:443'))
  t.ok(allowed(list, '[fd00::1]:9443'))
  t.notOk(allowed(list, '[fd00::1]'))
  t.ok(allowed(list, '[0:0::2]'), 'a bare IPv6 entry without a port')
  t.notOk(allowed(list, 'evil.example'))
  t.ok(allowed('*', 'evil.example:1'))
  t.ok(allowed('evil.example, *', '1.2.3.4'))
  t.same(parseAllowedHosts('*'), { any: true, rules: [], source: 'configured' })
  t.ok(allowedMaa(list, 'vault.contoso.example'), 'operator entries serve either role')
})

t.test('IP literals in any spelling match only an entry naming that address', async t => {
  for (const spelling of ['127.0.0.1', '2130706433', '0x7f000001', '127.1', '0177.0.0.1', '[::ffff:127.0.0.1]', '[::ffff:7f00:1]']) {
    t.ok(allowed('127.0.0.1', spelling), `${spelling} is 127.0.0.1`)
    t.notOk(allowed('127.0.0.2', spelling), `${spelling} is not 127.0.0.2`)
    t.throws(() => parseAllowedHosts('.0.0.1'), RangeError, 'a suffix cannot be written to match addresses')
    t.notOk(allowed(null, spelling), `${spelling}: not in the default`)
  }
  t.ok(allowed('2130706433', '127.0.0.1'), 'entries are canonical too')
  t.ok(allowed('[0:0:0:0:0:0:0:1]', '[::1]'))
  t.notOk(allowed('[::1]', '127.0.0.1'), '::1 and 127.0.0.1 are different addresses')
})

t.test('names are compared in canonical form', async t => {
  t.ok(allowed('Vault.Contoso.Example.', 'vault.contoso.example'))
  t.ok(allowed('bücher.example', 'xn--bcher-kva.example'))
  t.ok(allowed('xn--bcher-kva.example', 'BÜCHER.example'))
  t.ok(allowed('.Contoso.Example', 'a.contoso.example.'))
})

t.test('bad entries are refused by position, without echoing the value', async t => {
  const cases: Array<[string, RegExp]> = [
    ['https://vault.example', /^entry 1 .* it has a URL/],
    ['ok.example, under_score.example', /^entry 2 .* it has an invalid host name$/],
    ['.10.0.0.1', /^entry 1 .* it has a suffix that is an IP address/],
    ['host:0', /^entry 1 .* it has a bad port$/],
    ['[fe80::1%eth0]', /^entry 1 .* it has an IPv6 zone id/],
    ['user@host', /^entry 1 .* it has an invalid host name$/],
    [',,', /^lists no host/]
  ]
  for (const [text, message] of cases) {
    t.throws(() => parseAllowedHosts(text), { name: 'RangeError', message }, text)
    try { parseAllowedHosts(text) } catch (err) { t.notMatch((err as Error).message, /under_score|user@|vault\.example/, 'no value echoed') }
  }
})

t.test('allowedHostEntries prints the rules back', async t => {
  t.same(allowedHostEntries(parseAllowedHosts('A.example, b.example:8443, *.c.example, [::1]:9, 2130706433')),
    ['a.example', 'b.example:8443', '.c.example', '[::1]:9', '127.0.0.1'])
  t.same(allowedHostEntries(parseAllowedHosts('*')), ['*'])
  t.same(allowedHostEntries(DEFAULT_ALLOWED_HOSTS), DEFAULT_ALLOWED_SUFFIXES.map(s => `${s}:443`))
})

t.test('an endpoint that is not canonical host[:port] is never allowed', async t => {
  t.notOk(isEndpointAllowed(parseAllowedHosts('a.example'), 'a.example/path', 'akv_endpoint'))
  t.notOk(isEndpointAllowed(parseAllowedHosts('a.example'), '', 'maa_endpoint'))
  t.ok(isEndpointAllowed(parseAllowedHosts('a.example'), 'a.example', 'maa_endpoint'), 'an operator entry allows either role')
})
