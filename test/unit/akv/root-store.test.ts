// The trusted roots as a store that parses them on demand (src/akv/root-store.ts), and the
// release-JWS chain check over it: same answers as the eager list it replaced.
import t from 'tap'
import tls from 'node:tls'
import { X509Certificate } from 'node:crypto'
import { asRootStore, createRootStore } from '../../../src/akv/root-store.ts'
import { loadRootStore, loadTrustedRoots } from '../../../src/akv/trust-store.ts'
import { readCertNames } from '../../../src/certs/cert-fields.ts'
import { createIntermediateCa, createLeaf, createRootCa, createSignerPki } from '../../helpers/test-pki.ts'

const pki = await createSignerPki()
const other = await createRootCa({ commonName: 'another root' })
const bundledDer = tls.rootCertificates.map((pem) => new X509Certificate(pem).raw)

t.test('readCertNames: a certificate\'s issuer bytes are its issuer\'s subject bytes', async (t) => {
  const leaf = readCertNames(pki.leaf.der)
  const intermediate = readCertNames(pki.intermediate.der)
  const root = readCertNames(pki.root.der)
  t.same(Buffer.from(leaf.issuer), Buffer.from(intermediate.subject))
  t.same(Buffer.from(intermediate.issuer), Buffer.from(root.subject))
  t.same(Buffer.from(root.issuer), Buffer.from(root.subject), 'a root is self-issued')
  t.throws(() => readCertNames(Buffer.from('not a certificate')), { name: 'DerError' })
})

t.test('a store finds the issuer among many roots by its name, and knows its own roots', async (t) => {
  const store = createRootStore([...bundledDer, pki.root.der, other.der, pki.root.der])
  t.equal(store.size, bundledDer.length + 2, 'duplicates dropped')
  t.ok(store.has(pki.root.cert))
  t.notOk(store.has(pki.intermediate.cert))
  const candidates = store.candidateIssuers(pki.intermediate.cert)
  t.same(candidates.map((c) => c.fingerprint256), [pki.root.cert.fingerprint256], 'only the root with the issuer\'s name')
  t.equal(store.all().length, bundledDer.length + 2)
})

t.test('a certificate whose issuer name no root has: every root is a candidate (names may be encoded differently)', async (t) => {
  const stranger = await createIntermediateCa(await createRootCa({ commonName: 'not in the store' }))
  const store = createRootStore([...bundledDer, pki.root.der])
  t.equal(store.candidateIssuers(stranger.cert).length, bundledDer.length + 1)
})

t.test('entries OpenSSL will not parse are skipped, not fatal', async (t) => {
  const store = createRootStore([Buffer.from('garbage'), Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01]), pki.root.der])
  t.equal(store.size, 3)
  t.same(store.candidateIssuers(pki.intermediate.cert).map((c) => c.fingerprint256), [pki.root.cert.fingerprint256])
  t.same(store.all().map((c) => c.fingerprint256), [pki.root.cert.fingerprint256])
  t.notOk(store.has(pki.intermediate.cert))
})

t.test('asRootStore: a store is itself; the same array gives the same store (the chain cache compares by identity)', async (t) => {
  const store = createRootStore([pki.root.der])
  t.equal(asRootStore(store), store)
  const list = [pki.root.cert]
  t.equal(asRootStore(list), asRootStore(list))
  t.not(asRootStore(list), asRootStore([pki.root.cert]))
  t.same(asRootStore(list).all(), list)
})

t.test('loadRootStore is memoised and equals the eager list', async (t) => {
  const a = loadRootStore({ env: {}, extraCaPem: [pki.root.pem] })
  t.equal(loadRootStore({ env: {}, extraCaPem: [pki.root.pem] }), a, 'the same store for the same input')
  const eager = loadTrustedRoots({ env: {}, extraCaPem: [pki.root.pem] })
  t.same(new Set(a.all().map((c) => c.fingerprint256)), new Set(eager.map((c) => c.fingerprint256)))
  t.ok(a.has(pki.root.cert), 'with the configured root')
  const leaf = await createLeaf(pki.intermediate)
  t.same(a.candidateIssuers(pki.intermediate.cert).map((c) => c.fingerprint256), [pki.root.cert.fingerprint256])
  t.equal(a.candidateIssuers(leaf.cert).length, a.all().length, 'no root has the intermediate\'s name: all of them are tried')
})
