import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import tls from 'node:tls'
import { checkExtraCaPems, loadTrustedRoots } from '../../../src/akv/trust-store.ts'
import { createRootCa } from '../../helpers/test-pki.ts'

const CONFIG = 'ERR_CONFIG_INVALID'
const rootA = await createRootCa({ commonName: 'trust-store root A' })
const rootB = await createRootCa({ commonName: 'trust-store root B' })
const fingerprints = (certs: X509Certificate[]): Set<string> => new Set(certs.map((c) => c.fingerprint256))

t.test('Node\'s bundled store is always in', async (t) => {
  const roots = loadTrustedRoots({ env: {} })
  const have = fingerprints(roots)
  t.equal(have.size, roots.length, 'no duplicates')
  for (const pem of tls.rootCertificates.slice(0, 5)) t.ok(have.has(new X509Certificate(pem).fingerprint256), 'a bundled root')
  t.notOk(have.has(rootA.cert.fingerprint256), 'a test root is not trusted by default')
})

t.test('the OS store is in unless turned off', { skip: typeof tls.getCACertificates !== 'function' && 'this Node cannot read the OS store' }, async (t) => {
  const withSystem = fingerprints(loadTrustedRoots({ env: {} }))
  const withoutSystem = fingerprints(loadTrustedRoots({ env: {}, includeSystem: false }))
  const system = tls.getCACertificates('system')
  for (const pem of system.slice(0, 20)) {
    let fp: string
    try { fp = new X509Certificate(pem).fingerprint256 } catch { continue }
    t.ok(withSystem.has(fp), 'an OS root is trusted')
  }
  t.ok(withoutSystem.size <= withSystem.size)
  const bundled = new Set(tls.rootCertificates.map((pem) => new X509Certificate(pem).fingerprint256))
  const osOnly = system.map((pem) => new X509Certificate(pem).fingerprint256).filter((fp) => !bundled.has(fp))
  for (const fp of osOnly.slice(0, 5)) t.notOk(withoutSystem.has(fp), 'an OS-only root is left out when includeSystem is false')
})

t.test('extra PEMs are added and deduplicated by fingerprint', async (t) => {
  const base = loadTrustedRoots({ env: {}, includeSystem: false })
  const one = loadTrustedRoots({ env: {}, includeSystem: false, extraCaPem: [rootA.pem] })
  t.equal(one.length, base.length + 1)
  t.ok(fingerprints(one).has(rootA.cert.fingerprint256))
  const bundle = loadTrustedRoots({ env: {}, includeSystem: false, extraCaPem: [rootA.pem + rootB.pem, rootA.pem, tls.rootCertificates[0] ?? ''] })
  t.equal(bundle.length, base.length + 2, 'a bundle of two, a repeat and a bundled root add two')
  t.ok(fingerprints(bundle).has(rootB.cert.fingerprint256))
})

t.test('NODE_EXTRA_CA_CERTS from the given env', async (t) => {
  const dir = t.testdir({ 'extra.pem': rootB.pem, 'empty.pem': 'nothing here\n', 'bad.pem': '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' })
  const roots = loadTrustedRoots({ env: { NODE_EXTRA_CA_CERTS: join(dir, 'extra.pem') }, includeSystem: false })
  t.ok(fingerprints(roots).has(rootB.cert.fingerprint256), 'the extra file is read')
  t.notOk(fingerprints(loadTrustedRoots({ env: { NODE_EXTRA_CA_CERTS: '' }, includeSystem: false })).has(rootB.cert.fingerprint256), 'empty means none')
  const missing = join(dir, 'missing.pem')
  t.throws(() => loadTrustedRoots({ env: { NODE_EXTRA_CA_CERTS: missing } }), { code: CONFIG, details: { key: 'NODE_EXTRA_CA_CERTS' } }, 'unreadable file')
  try { loadTrustedRoots({ env: { NODE_EXTRA_CA_CERTS: missing } }) } catch (err) {
    t.notMatch((err as Error).message, missing, 'the path is a value: not in the message')
  }
  t.throws(() => loadTrustedRoots({ env: { NODE_EXTRA_CA_CERTS: join(dir, 'empty.pem') } }), { code: CONFIG, details: { source: 'NODE_EXTRA_CA_CERTS' } }, 'no certificate in it')
  t.throws(() => loadTrustedRoots({ env: { NODE_EXTRA_CA_CERTS: join(dir, 'bad.pem') } }), { code: CONFIG, details: { source: 'NODE_EXTRA_CA_CERTS', index: 0 } }, 'a broken certificate')
  // A later edit of the file is picked up: the memo key covers the content.
  writeFileSync(join(dir, 'extra.pem'), rootA.pem)
  const again = fingerprints(loadTrustedRoots({ env: { NODE_EXTRA_CA_CERTS: join(dir, 'extra.pem') }, includeSystem: false }))
  t.ok(again.has(rootA.cert.fingerprint256) && !again.has(rootB.cert.fingerprint256), 'the new content is used')
})

t.test('malformed extra PEMs are ConfigInvalid', async (t) => {
  t.throws(() => loadTrustedRoots({ extraCaPem: ['not a pem'] }), { code: CONFIG, details: { source: 'extraCaPem[0]' } })
  t.throws(() => loadTrustedRoots({ extraCaPem: [rootA.pem, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----'] }),
    { code: CONFIG, details: { source: 'extraCaPem[1]', index: 0 } })
  t.throws(() => loadTrustedRoots({ extraCaPem: 'pem' as unknown as string[] }), TypeError)
  t.throws(() => loadTrustedRoots({ extraCaPem: [5] as unknown as string[] }), TypeError)
})

t.test('memoised per input, and callers cannot poison the memo', async (t) => {
  const a = loadTrustedRoots({ env: {}, extraCaPem: [rootA.pem] })
  const b = loadTrustedRoots({ env: {}, extraCaPem: [rootA.pem] })
  t.not(a, b, 'a fresh array each call')
  t.equal(a[0], b[0], 'the same parsed certificates')
  a.length = 0
  t.ok(loadTrustedRoots({ env: {}, extraCaPem: [rootA.pem] }).length > 0, 'emptying a returned array does not empty the memo')
  const c = loadTrustedRoots({ env: {}, extraCaPem: [rootB.pem] })
  t.notOk(fingerprints(c).has(rootA.cert.fingerprint256), 'another input is another entry')
  t.ok(loadTrustedRoots().length > 0, 'no options: Node\'s own stores')
})

t.test('checkExtraCaPems: the same strict check of configured PEMs, without Node\'s stores', async (t) => {
  t.doesNotThrow(() => { checkExtraCaPems([]) })
  t.doesNotThrow(() => { checkExtraCaPems([rootA.pem + rootB.pem, rootA.pem]) })
  t.throws(() => { checkExtraCaPems([rootA.pem, 'not a pem']) }, { code: CONFIG, details: { source: 'extraCaPem[1]' } })
  t.throws(() => { checkExtraCaPems(['-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----']) }, { code: CONFIG, details: { source: 'extraCaPem[0]', index: 0 } })
  t.throws(() => { checkExtraCaPems('pem' as unknown as string[]) }, TypeError)
})

