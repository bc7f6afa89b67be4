// Receipts as the emulated transparency service makes them (the same shape as the genuine one in
// reference-info-cwt.test.ts), the key files an operator passes, and the kid rule.
import { generateKeyPairSync, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { decode, encode, Tagged } from 'cborg'
import t from 'tap'
import { createUvmEndorser } from '../../../src/emulator/uvm-endorser.ts'
import { verifyUvmReferenceInfo } from '../../../src/uvm/reference-info.ts'
import { kidOf, microsoftTransparencyKeys, parseTransparencyKeys, type TransparencyKey } from '../../../src/uvm/transparency-receipt.ts'
import { repoRoot } from '../../helpers/vectors.ts'

const endorser = await createUvmEndorser()
const roots = [endorser.rootFingerprint]
const measurement = Buffer.alloc(48, 0xab)
const emulated: TransparencyKey = { kid: endorser.transparency.kid, key: endorser.transparency.publicKey, issuer: endorser.transparency.issuer, source: 'emulated' }

t.test('an emulated cwt-claims endorsement with its receipt', async (t) => {
  const cose = endorser.endorse({ launchMeasurement: measurement, guestSvn: '7' })
  const v = verifyUvmReferenceInfo(cose, { trustedRootFingerprints: roots, transparencyKeys: [emulated] })
  t.equal(v.layout, 'cwt-claims')
  t.equal(v.launchMeasurement, measurement.toString('hex'))
  t.equal(v.guestSvn, '7')
  t.match(v.receipt, { status: 'verified', keySource: 'emulated', receipts: [{ issuer: endorser.transparency.issuer, txid: /^2\.\d+$/ }] })
  // Microsoft's keys do not know the emulated service.
  t.match(verifyUvmReferenceInfo(cose, { trustedRootFingerprints: roots }).receipt, { status: 'unknown-key' })
  // Another service's key with the same kid cannot exist; a different key under the emulated kid fails.
  const impostor = { ...emulated, key: generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey }
  t.throws(() => verifyUvmReferenceInfo(cose, { trustedRootFingerprints: roots, transparencyKeys: [impostor] }),
    { code: 'ERR_UVM_ENDORSEMENT_INVALID', details: { check: 'receipt' } })
})

t.test('the older layout and a cwt-claims endorsement without receipt', async (t) => {
  const json = verifyUvmReferenceInfo(endorser.endorse({ launchMeasurement: measurement, guestSvn: '3', layout: 'json-payload' }), { trustedRootFingerprints: roots })
  t.equal(json.layout, 'json-payload')
  t.same(json.payload, { 'x-ms-sevsnpvm-guestsvn': '3', 'x-ms-sevsnpvm-launchmeasurement': measurement.toString('hex') })
  t.same(json.receipt, { status: 'absent' })
  const bare = verifyUvmReferenceInfo(endorser.endorse({ launchMeasurement: measurement, guestSvn: '3', receipt: false }), { trustedRootFingerprints: roots })
  t.equal(bare.layout, 'cwt-claims')
  t.same(bare.receipt, { status: 'absent' })
  t.throws(() => endorser.endorse({ launchMeasurement: measurement, guestSvn: 'v3' }), TypeError, 'the newer layout has an integer SVN')
})

t.test('key files: JWKS, CCF trust store, PEM; the kid is computed, never read', async (t) => {
  const jwks = endorser.transparency.jwks()
  const fromJwks = parseTransparencyKeys(JSON.stringify(jwks), 'jwks.json')
  t.equal(fromJwks.length, 1)
  t.equal(fromJwks[0]?.kid, endorser.transparency.kid)
  // A JWKS that lies about the kid does not change which key a receipt needs.
  const lying = parseTransparencyKeys(JSON.stringify({ keys: [{ ...jwks.keys[0], kid: 'f'.repeat(64) }] }), 'lying.json')
  t.equal(lying[0]?.kid, endorser.transparency.kid)

  const store = readFileSync(join(repoRoot, 'test', 'fixtures', 'vectors', 'scitt-ccf-ledger', 'esrp-cts-db.json'), 'utf8')
  const fromStore = parseTransparencyKeys(store, 'store')
  t.same(fromStore.map((k) => k.kid).sort(), microsoftTransparencyKeys().map((k) => k.kid).sort(), 'the pinned keys are the trust store\'s')
  const cert = new X509Certificate(Buffer.from((JSON.parse(store) as { parameters: Array<{ serviceCertificate: string }> }).parameters[0]?.serviceCertificate ?? '', 'base64'))
  t.equal(parseTransparencyKeys(cert.toString(), 'cert.pem')[0]?.kid, kidOf(cert.publicKey))
  const spki = endorser.transparency.publicKey.export({ type: 'spki', format: 'pem' }).toString()
  t.equal(parseTransparencyKeys(spki, 'key.pem')[0]?.kid, endorser.transparency.kid)

  t.throws(() => parseTransparencyKeys('{"foo":1}', 'x'), TypeError)
  t.throws(() => parseTransparencyKeys('not a key', 'x'), TypeError)
  t.throws(() => parseTransparencyKeys(JSON.stringify({ parameters: [{}] }), 'x'), TypeError)
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString()
  t.throws(() => parseTransparencyKeys(rsa, 'rsa.pem'), /not an EC public key/)
})

t.test('a genuine receipt moved onto another statement is refused: its leaf commits to the first statement', async (t) => {
  const tags: Array<(inner: () => unknown) => unknown> = []
  tags[18] = (inner) => inner()
  tags[1] = (inner) => new Tagged(1, inner())
  type Parts = [Uint8Array, Map<unknown, unknown>, Uint8Array, Uint8Array]
  const first = decode(endorser.endorse({ launchMeasurement: measurement, guestSvn: '1' }), { useMaps: true, tags }) as Parts
  const second = decode(endorser.endorse({ launchMeasurement: Buffer.alloc(48, 0xcd), guestSvn: '1' }), { useMaps: true, tags }) as Parts
  // Each statement keeps its own (valid) signature; only the receipts change places.
  const swapped = Buffer.from(encode(new Tagged(18, [second[0], first[1], second[2], second[3]])))
  t.throws(() => verifyUvmReferenceInfo(swapped, { trustedRootFingerprints: roots, transparencyKeys: [emulated] }),
    { code: 'ERR_UVM_ENDORSEMENT_INVALID', details: { check: 'receipt' }, message: /data hash is not the hash of this statement/ })
  // The same holds when skr does not know the service's key: the proof is still checked.
  t.throws(() => verifyUvmReferenceInfo(swapped, { trustedRootFingerprints: roots, transparencyKeys: [] }), { code: 'ERR_UVM_ENDORSEMENT_INVALID', details: { check: 'receipt' } })
})
