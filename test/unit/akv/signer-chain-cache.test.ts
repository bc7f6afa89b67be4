import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { CompactSign } from 'jose'
import { verifyReleaseJws } from '../../../src/akv/release-jws.ts'
import type { VerifyReleaseOptions } from '../../../src/akv/release-jws.ts'
import { createSignerChainCache, x5cFingerprint } from '../../../src/akv/signer-chain-cache.ts'
import { asRootStore } from '../../../src/akv/root-store.ts'
import { createIntermediateCa, createLeaf, createSignerPki, x5cOf } from '../../helpers/test-pki.ts'
import type { TestCert } from '../../helpers/test-pki.ts'

const HOST = 'myvault.vault.test'
const OTHER_HOST = 'other.vault.test'
const HOUR = 60 * 60 * 1000
const pki = await createSignerPki({ dnsNames: [HOST] })
const NOW = new Date()

const payload = {
  request: { 'api-version': '7.4', enc: 'CKM_RSA_AES_KEY_WRAP', kid: `https://${HOST}/keys/mykey` },
  response: { key: { key: { kid: `https://${HOST}/keys/mykey/0123456789abcdef0123456789abcdef`, kty: 'oct-HSM', key_hsm: 'e30' } } }
}

async function sign (signer: TestCert = pki.leaf, x5c: string[] = pki.x5c, body: unknown = payload): Promise<string> {
  return await new CompactSign(Buffer.from(JSON.stringify(body))).setProtectedHeader({ alg: 'RS256', x5c }).sign(signer.privateKey)
}

// tap's subtest type (the last overload of t.test takes just the callback).
type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

/** Counts chain-building work: every link check is an X509Certificate#verify. */
function countVerifies (t: Tap): () => number {
  const original = X509Certificate.prototype.verify
  let n = 0
  X509Certificate.prototype.verify = function (this: X509Certificate, key) { n++; return original.call(this, key) }
  t.teardown(() => { X509Certificate.prototype.verify = original })
  return () => n
}

function setup (options: Parameters<typeof createSignerChainCache>[0] = {}): {
  cache: ReturnType<typeof createSignerChainCache>
  results: boolean[]
  opts: (o?: Partial<VerifyReleaseOptions>) => VerifyReleaseOptions
} {
  const results: boolean[] = []
  const cache = createSignerChainCache({ ...options, metrics: { cacheResult: (name, hit) => { if (name === 'signer_chain') results.push(hit) } } })
  const opts = (o: Partial<VerifyReleaseOptions> = {}): VerifyReleaseOptions =>
    ({ vaultHost: HOST, keyName: 'mykey', enc: 'CKM_RSA_AES_KEY_WRAP', trustedRoots: pki.trustedRoots, now: NOW, chainCache: cache, ...o })
  return { cache, results, opts }
}

t.test('the second verification under the same x5c skips chain building; the signature is still checked', async (t) => {
  const verifies = countVerifies(t)
  const { cache, results, opts } = setup()
  const jws = await sign()
  const first = await verifyReleaseJws(jws, opts())
  const built = verifies()
  t.ok(built > 0, 'the first verification builds the chain')
  const second = await verifyReleaseJws(await sign(), opts())
  t.equal(verifies(), built, 'no link verified again')
  t.equal(second.signer, first.signer, 'the cached signer')
  t.same(results, [false, true])
  t.equal(cache.size(), 1)

  // A tampered JWS under the same (cached) x5c: its signature is checked against the cached leaf.
  const [h, p, s] = jws.split('.') as [string, string, string]
  const forgedPayload = Buffer.from(JSON.stringify({ ...payload, request: { ...payload.request, kid: `https://${HOST}/keys/other` } })).toString('base64url')
  await t.rejects(verifyReleaseJws(`${h}.${forgedPayload}.${s}`, opts()), { code: 'ERR_RELEASE_UNVERIFIED', message: 'release JWS signature invalid' })
  const flipped = `${s.slice(0, -2)}${s.slice(-2) === 'AA' ? 'AB' : 'AA'}`
  await t.rejects(verifyReleaseJws(`${h}.${p}.${flipped}`, opts()), { message: 'release JWS signature invalid' })
  // Signed by another key but claiming the cached x5c.
  const impostor = await createLeaf(pki.intermediate, { dnsNames: [HOST] })
  await t.rejects(verifyReleaseJws(await sign(impostor, pki.x5c), opts()), { message: 'release JWS signature invalid' })
  t.same(results, [false, true, true, true, true], 'all served from the cache, all refused')
})

t.test('the host name is checked on every use of a cached chain', async (t) => {
  const { opts } = setup()
  await verifyReleaseJws(await sign(), opts())
  const elsewhere = { ...payload, request: { ...payload.request, kid: `https://${OTHER_HOST}/keys/mykey` } }
  await t.rejects(verifyReleaseJws(await sign(pki.leaf, pki.x5c, elsewhere), opts({ vaultHost: OTHER_HOST })),
    { message: 'release JWS signer certificate does not name the vault host' })
})

t.test('failures are not cached', async (t) => {
  const { cache, results, opts } = setup()
  const other = await createSignerPki({ dnsNames: [HOST] })
  const untrusted = await sign(other.leaf, other.x5c)
  for (let i = 0; i < 2; i++) {
    await t.rejects(verifyReleaseJws(untrusted, opts()), { message: 'release JWS signer chain does not reach a trusted root' })
  }
  t.same(results, [false, false])
  t.equal(cache.size(), 0)
})

t.test('an entry expires after max age, at the earliest notAfter, and when the roots change', async (t) => {
  const verifies = countVerifies(t)
  const { cache, results, opts } = setup({ maxAgeMs: HOUR })
  const jws = await sign()
  await verifyReleaseJws(jws, opts())
  await verifyReleaseJws(jws, opts({ now: new Date(NOW.getTime() + HOUR - 1) }))
  await verifyReleaseJws(jws, opts({ now: new Date(NOW.getTime() + HOUR) }))
  t.same(results, [false, true, false], 'rebuilt after an hour')

  // A leaf that expires in a minute: cached for a minute, then the validity check fails again.
  const shortLeaf = await createLeaf(pki.intermediate, { dnsNames: [HOST], notBefore: new Date(NOW.getTime() - HOUR), notAfter: new Date(NOW.getTime() + 60_000) })
  const short = await sign(shortLeaf, x5cOf(shortLeaf, pki.intermediate))
  await verifyReleaseJws(short, opts())
  await verifyReleaseJws(short, opts({ now: new Date(NOW.getTime() + 59_000) }))
  await t.rejects(verifyReleaseJws(short, opts({ now: new Date(NOW.getTime() + 61_000) })), { message: 'release JWS signer chain certificate not valid now' })
  t.same(results.slice(3), [false, true, false])

  // A clock set back before a certificate's notBefore re-verifies (and fails).
  await t.rejects(verifyReleaseJws(jws, opts({ now: new Date(pki.leaf.cert.validFromDate.getTime() - 1000) })), { message: 'release JWS signer chain certificate not valid now' })

  const before = verifies()
  await verifyReleaseJws(jws, opts({ trustedRoots: [...pki.trustedRoots] }))
  t.ok(verifies() > before, 'a different root set (a reload) rebuilds')
  t.equal(cache.size(), 1, 'and forgot chains verified under the old set')
})

t.test('bounded: the least recently used chain goes first', async (t) => {
  const { cache, results, opts } = setup({ maxEntries: 2 })
  const inter2 = await createIntermediateCa(pki.root)
  const leaf2 = await createLeaf(inter2, { dnsNames: [HOST] })
  const leaf3 = await createLeaf(pki.intermediate, { dnsNames: [HOST] })
  const a = await sign()
  const b = await sign(leaf2, x5cOf(leaf2, inter2))
  const c = await sign(leaf3, x5cOf(leaf3, pki.intermediate))
  await verifyReleaseJws(a, opts())
  await verifyReleaseJws(b, opts())
  await verifyReleaseJws(a, opts())
  await verifyReleaseJws(c, opts())
  t.equal(cache.size(), 2)
  await verifyReleaseJws(a, opts())
  await verifyReleaseJws(b, opts())
  t.same(results, [false, false, true, false, true, false], 'a was used recently and stayed; b was dropped')
  cache.clear()
  t.equal(cache.size(), 0)
})

t.test('the key is the SHA-256 of the length-prefixed DER list; settings are checked', async (t) => {
  const ab = x5cFingerprint([Buffer.from('ab'), Buffer.from('c')])
  t.not(ab, x5cFingerprint([Buffer.from('a'), Buffer.from('bc')]), 'no collision by concatenation')
  t.match(ab, /^[0-9a-f]{64}$/)
  t.throws(() => createSignerChainCache({ maxEntries: 0 }), TypeError)
  t.throws(() => createSignerChainCache({ maxAgeMs: -1 }), TypeError)
  t.throws(() => createSignerChainCache().signerFor([], asRootStore([]), NOW, () => []), TypeError)
})
