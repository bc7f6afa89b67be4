import t from 'tap'
import type { X509Certificate } from 'node:crypto'
import { hostMatchesCert } from '../../../src/akv/host-match.ts'
import { createLeaf, createRootCa } from '../../helpers/test-pki.ts'
import type { TestCertOptions } from '../../helpers/test-pki.ts'

const root = await createRootCa()
const leaf = async (options: TestCertOptions): Promise<X509Certificate> =>
  (await createLeaf(root, { keyType: 'P-256', ...options })).cert

// [certificate names, host, expected] — RFC 6125 §6.4 as profiled in host-match.ts.
const exact = await leaf({ dnsNames: ['vault.test'] })
const wildcard = await leaf({ dnsNames: ['*.vault.test'] })
const tld = await leaf({ dnsNames: ['*.com'] })
const partial = await leaf({ dnsNames: ['f*.vault.test'] })
const inner = await leaf({ dnsNames: ['a.*.test'] })
const twoLabel = await leaf({ dnsNames: ['*.test'] })
const multi = await leaf({ dnsNames: ['other.test', 'myvault.vault.test'] })
const cnOnly = await leaf({ commonName: 'cn.vault.test' })
const cnAndSan = await leaf({ commonName: 'cn.vault.test', dnsNames: ['san.vault.test'] })
const cnAndIpSan = await leaf({ commonName: 'cn.vault.test', ipAddresses: ['10.0.0.1'] })
const ips = await leaf({ dnsNames: ['127.0.0.1'], ipAddresses: ['127.0.0.1', '::1'] })
const ipOnlyDns = await leaf({ dnsNames: ['10.1.2.3'] })
const cnIp = await leaf({ commonName: '127.0.0.1' })

const table: Array<[string, X509Certificate, string, boolean]> = [
  ['exact', exact, 'vault.test', true],
  ['exact, other case', exact, 'VAULT.Test', true],
  ['exact, trailing dot', exact, 'vault.test.', true],
  ['exact, subdomain', exact, 'a.vault.test', false],
  ['exact, prefix of name', exact, 'vault.tes', false],
  ['exact, superstring', exact, 'xvault.test', false],
  ['wildcard, one label', wildcard, 'a.vault.test', true],
  ['wildcard, one label, other case', wildcard, 'A.VAULT.test', true],
  ['wildcard, one label, trailing dot', wildcard, 'a.vault.test.', true],
  ['wildcard, two labels', wildcard, 'a.b.vault.test', false],
  ['wildcard, zero labels', wildcard, 'vault.test', false],
  ['wildcard, empty label', wildcard, '.vault.test', false],
  ['wildcard host is never a match', wildcard, '*.vault.test', false],
  ['wildcard over a public suffix', tld, 'example.com', false],
  ['wildcard of two labels', twoLabel, 'vault.test', false],
  ['partial wildcard', partial, 'foo.vault.test', false],
  ['wildcard not left-most', inner, 'a.b.test', false],
  ['second SAN', multi, 'myvault.vault.test', true],
  ['none of the SANs', multi, 'vault.test', false],
  ['CN only: CN used', cnOnly, 'cn.vault.test', true],
  ['CN ignored when a dNSName SAN exists', cnAndSan, 'cn.vault.test', false],
  ['SAN used when present', cnAndSan, 'san.vault.test', true],
  ['CN used when SANs hold no dNSName', cnAndIpSan, 'cn.vault.test', true],
  ['IPv4 against IP SAN', ips, '127.0.0.1', true],
  ['other IPv4', ips, '127.0.0.2', false],
  ['IPv6 against IP SAN', ips, '::1', true],
  ['bracketed IPv6', ips, '[::1]', true],
  ['IP literal never matches a dNSName SAN', ipOnlyDns, '10.1.2.3', false],
  ['IP literal never matches the CN', cnIp, '127.0.0.1', false],
  ['empty host', exact, '', false],
  ['lone dot', exact, '.', false],
  ['empty label', exact, 'vault..test', false],
  ['space', exact, 'vault .test', false],
  ['non-ASCII', exact, 'väult.test', false],
  ['NUL', exact, 'vault.test\u0000.evil', false],
  ['over-long label', exact, `${'a'.repeat(64)}.test`, false]
]

for (const [name, cert, host, expected] of table) {
  t.equal(hostMatchesCert(host, cert), expected, `${name}: ${JSON.stringify(host)} → ${String(expected)}`)
}

t.equal(hostMatchesCert(42 as unknown as string, exact), false, 'a non-string host never matches')
