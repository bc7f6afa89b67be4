// The trusted roots as a store that parses them on demand (src/akv/root-store.ts), and the
// release-JWS chain check over it (src/akv/release-jws.ts): it parses only the root a chain
// names, and gives the answers the eager list gave.
import t from 'tap'
import tls from 'node:tls'
import { X509Certificate } from 'node:crypto'
import { CompactSign } from 'jose'
import { verifyReleaseJws } from '../../../src/akv/release-jws.ts'
import { asRootStore, createRootStore } from '../../../src/akv/root-store.ts'
import { loadRootStore, loadTrustedRoots } from '../../../src/akv/trust-store.ts'
import { readCertNames } from '../../../src/certs/cert-fields.ts'
import { createIntermediateCa, createLeaf, createRootCa, createSignerPki, x5cOf, type TestCert } from '../../helpers/test-pki.ts'

const HOST = 'vault.test'
const pki = await createSignerPki({ dnsNames: [HOST] })
const bundledDer = tls.rootCertificates.map((pem) => new X509Certificate(pem).raw)

/** A JWS signed by `leaf` with `x5c`; its payload is not a release, so a valid chain fails later, at 'request'. */
async function jwsFrom (leaf: TestCert, x5c: string[]): Promise<string> {
  return await new CompactSign(Buffer.from('{}')).setProtectedHeader({ alg: 'RS256', x5c }).sign(leaf.privateKey)
}

async function checkOf (jws: string, trustedRoots: Parameters<typeof asRootStore>[0]): Promise<unknown> {
  try {
    await verifyReleaseJws(jws, { vaultHost: HOST, keyName: 'k', enc: 'CKM_RSA_AES_KEY_WRAP', trustedRoots })
    return 'verified'
  } catch (err) {
    return (err as { details?: { check?: unknown } }).details?.check
  }
}

t.test('readCertNames: a certificate\'s issuer bytes are its issuer\'s subject bytes', async (t) => {
  const leaf = readCertNames(pki.leaf.der)
  const intermediate = readCertNames(pki.intermediate.der)
  const root = readCertNames(pki.root.der)
  t.same(Buffer.from(leaf.issuer), Buffer.from(intermediate.subject))
  t.same(Buffer.from(intermediate.issuer), Buffer.from(root.subject))
  t.same(Buffer.from(root.issuer), Buffer.from(root.subject), 'a root is self-issued')
  t.throws(() => readCertNames(Buffer.from('not a certificate')), { name: 'DerError' })
})

t.test('a store names the issuer among many roots without parsing the others, and knows its own roots', async (t) => {
  const other = await createRootCa({ commonName: 'another root' })
  const store = createRootStore([...bundledDer, pki.root.der, other.der, pki.root.der])
  t.equal(store.size, bundledDer.length + 2, 'duplicates dropped')
  t.equal(store.parsed, 0, 'nothing parsed yet')
  t.ok(store.has(pki.root.cert))
  t.notOk(store.has(pki.intermediate.cert))
  t.same(store.namedIssuers(pki.intermediate.cert).map((c) => c.fingerprint256), [pki.root.cert.fingerprint256])
  t.equal(store.parsed, 1, 'only the named root was parsed')
  t.same(store.namedIssuers(pki.leaf.cert), [], 'no root is named as the leaf\'s issuer (the intermediate is)')
  t.equal(store.all().length, bundledDer.length + 2)
})

t.test('a three-certificate chain verifies after parsing one root; an untrusted one fails as before, after the full search', async (t) => {
  const store = createRootStore([...bundledDer, pki.root.der])
  t.equal(await checkOf(await jwsFrom(pki.leaf, x5cOf(pki.leaf, pki.intermediate)), store), 'request', 'the chain verified (the JWS fails later, on its payload\'s request)')
  t.equal(store.parsed, 1, 'one root parsed for leaf ← intermediate ← root')
  t.equal(await checkOf(await jwsFrom(pki.leaf, x5cOf(pki.leaf, pki.intermediate, pki.root)), store), 'request', 'a chain that carries its root too')

  const strangerRoot = await createRootCa({ commonName: 'not trusted' })
  const strangerInter = await createIntermediateCa(strangerRoot)
  const strangerLeaf = await createLeaf(strangerInter, { dnsNames: [HOST] })
  const untrusted = await jwsFrom(strangerLeaf, x5cOf(strangerLeaf, strangerInter, strangerRoot))
  t.equal(await checkOf(untrusted, store), 'chain', 'refused: the chain does not reach a trusted root')
  t.equal(await checkOf(untrusted, [pki.root.cert]), 'chain', 'the same answer from a list')
  t.equal(store.parsed, store.size, 'the full search ran before refusing')
})

t.test('the store and a list of the same roots give the same answers', async (t) => {
  const store = createRootStore([...bundledDer, pki.root.der])
  const list = [pki.root.cert]
  const other = await createIntermediateCa(await createRootCa({ commonName: 'elsewhere' }))
  for (const [what, x5c] of [['leaf, intermediate', x5cOf(pki.leaf, pki.intermediate)], ['the leaf alone', x5cOf(pki.leaf)], ['a wrong intermediate', x5cOf(pki.leaf, other)]] as const) {
    t.equal(await checkOf(await jwsFrom(pki.leaf, [...x5c]), store), await checkOf(await jwsFrom(pki.leaf, [...x5c]), list), what)
  }
})

t.test('entries OpenSSL will not parse are skipped, not fatal', async (t) => {
  const store = createRootStore([Buffer.from('garbage'), Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01]), pki.root.der])
  t.equal(store.size, 3)
  t.same(store.namedIssuers(pki.intermediate.cert).map((c) => c.fingerprint256), [pki.root.cert.fingerprint256], 'unreadable entries are tried too')
  t.same(store.all().map((c) => c.fingerprint256), [pki.root.cert.fingerprint256])
  t.notOk(store.has(pki.intermediate.cert))
})

t.test('order: the first copy is kept, and the full search tries roots in the order given', async (t) => {
  const other = await createRootCa({ commonName: 'second' })
  const store = createRootStore([other.cert, pki.root.der, other.der])
  t.same(store.all().map((c) => c.fingerprint256), [other.cert.fingerprint256, pki.root.cert.fingerprint256])
  t.equal(store.parsed, 2, 'a certificate handed in parsed counts as parsed')
})

t.test('asRootStore: a store is itself; the same array gives the same store (the chain cache compares by identity)', async (t) => {
  const store = createRootStore([pki.root.der])
  t.equal(asRootStore(store), store)
  const list = [pki.root.cert]
  t.equal(asRootStore(list), asRootStore(list))
  t.not(asRootStore(list), asRootStore([pki.root.cert]))
  t.same(asRootStore(list).all(), list)
})

t.test('loadRootStore is memoised, reads Node\'s stores without parsing them, and equals the eager list', async (t) => {
  const a = loadRootStore({ env: {}, extraCaPem: [pki.root.pem] })
  t.equal(loadRootStore({ env: {}, extraCaPem: [pki.root.pem] }), a, 'the same store for the same input')
  t.equal(a.parsed, 1, 'only the configured root is parsed (to check it)')
  const eager = loadTrustedRoots({ env: {}, extraCaPem: [pki.root.pem] })
  t.same(eager.map((c) => c.fingerprint256), a.all().map((c) => c.fingerprint256), 'the same roots in the same order')
  t.equal(eager.at(-1)?.fingerprint256, pki.root.cert.fingerprint256, 'configured roots come last, as in the eager list')
  t.throws(() => loadRootStore({ extraCaPem: [5] as unknown as string[] }), { name: 'TypeError', message: /^loadRootStore:/ })
})
