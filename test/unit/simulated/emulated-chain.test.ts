import 'reflect-metadata'
import { createPublicKey, generateKeyPairSync } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { AsnConvert } from '@peculiar/asn1-schema'
import { AlgorithmIdentifier, Certificate } from '@peculiar/asn1-x509'
import { RsaSaPssParams } from '@peculiar/asn1-rsa'
import t from 'tap'
import type { Test } from 'tap'
import { parseChainPem, verifyAmdChain } from '../../../src/certs/amd-chain.ts'
import { thimDocument } from '../../../src/simulated/emulated-chain.ts'
import { defaultEmulatedCacheDir, loadOrCreateEmulatedChain } from '../../../src/simulated/emulated-chain-cache.ts'
import { generateEmulatedChain, vcekExtensionValues } from '../../../src/simulated/emulated-chain-generator.ts'
import type { EmulatedAmdChain } from '../../../src/simulated/emulated-chain.ts'
import { parseAmdExtensions } from '../../../src/certs/vcek-ext.ts'
import { needsVectors, vector } from '../../helpers/vectors.ts'

const NOW = new Date('2025-03-01T12:00:00Z')
const CHIP_ID = Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 7 + 1) & 0xff))
// The one RSA-4096 chain of this file: key generation is the slow part.
const chain = await generateEmulatedChain({ chipId: CHIP_ID, now: NOW })

const AMD_DN = 'OU=Engineering\nC=US\nL=Santa Clara\nST=CA\nO=Advanced Micro Devices\nCN='
const OID_SHA384 = '2.16.840.1.101.3.4.2.2'
const OID_MGF1 = '1.2.840.113549.1.1.8'
const OID_PSS = '1.2.840.113549.1.1.10'
const spki = (k: KeyObject): string => k.export({ type: 'spki', format: 'der' }).toString('hex')
const tmp = async (t: Test): Promise<string> => {
  const dir = await mkdtemp(join(tmpdir(), 'skr-emulated-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

// What the signature algorithm means, from the DER (defaults filled in by the schema).
function pssMeaning (der: Buffer): object {
  const cert = AsnConvert.parse(der, Certificate)
  const outer = cert.signatureAlgorithm
  const inner = cert.tbsCertificate.signature
  if (outer.parameters == null || inner.parameters == null) throw new Error('no PSS parameters')
  const params = AsnConvert.parse(outer.parameters, RsaSaPssParams)
  const mgfHash = params.maskGenAlgorithm.parameters == null ? null : AsnConvert.parse(params.maskGenAlgorithm.parameters, AlgorithmIdentifier).algorithm
  return {
    algorithm: outer.algorithm,
    sameAsTbs: outer.algorithm === inner.algorithm && Buffer.from(outer.parameters).equals(Buffer.from(inner.parameters)),
    hash: params.hashAlgorithm.algorithm,
    mgf: params.maskGenAlgorithm.algorithm,
    mgfHash,
    saltLength: params.saltLength,
    trailerField: params.trailerField
  }
}

function extensionList (der: Buffer): Array<{ oid: string, critical: boolean, value: string }> {
  const cert = AsnConvert.parse(der, Certificate)
  return (cert.tbsCertificate.extensions ?? []).map((e) => ({
    oid: e.extnID, critical: e.critical, value: Buffer.from(e.extnValue.buffer).toString('hex')
  }))
}

t.test('names, serials and key types are AMD\'s', async (t) => {
  t.equal(chain.ark.subject, `${AMD_DN}ARK-Milan`)
  t.equal(chain.ark.issuer, `${AMD_DN}ARK-Milan`)
  t.equal(chain.ask.subject, `${AMD_DN}SEV-Milan`)
  t.equal(chain.ask.issuer, `${AMD_DN}ARK-Milan`)
  t.equal(chain.vcek.subject, `${AMD_DN}SEV-VCEK`)
  t.equal(chain.vcek.issuer, `${AMD_DN}SEV-Milan`)
  t.equal(chain.vcek.serialNumber, '0')
  t.equal(chain.ark.serialNumber, '010000')
  t.equal(chain.ask.serialNumber, '010001')
  for (const cert of [chain.ark, chain.ask]) {
    t.equal(cert.publicKey.asymmetricKeyType, 'rsa')
    t.equal(cert.publicKey.asymmetricKeyDetails?.modulusLength, 4096)
    t.equal(cert.publicKey.asymmetricKeyDetails?.publicExponent, 65537n)
    t.equal(cert.ca, true)
  }
  t.equal(chain.vcek.ca, false)
  t.equal(chain.vcek.publicKey.asymmetricKeyType, 'ec')
  t.equal(chain.vcek.publicKey.asymmetricKeyDetails?.namedCurve, 'secp384r1')
  t.equal(chain.vcekKey.type, 'private')
  t.equal(spki(createPublicKey(chain.vcekKey)), spki(chain.vcek.publicKey), 'vcekKey is the VCEK\'s private key')
  t.equal(chain.product, 'Milan')
  t.equal(chain.arkFingerprint, chain.ark.fingerprint256)
  t.equal(new Date(chain.vcek.validFrom).getTime(), NOW.getTime(), 'validity starts at the injected clock')
  t.ok(chain.ark.infoAccess === undefined && chain.ark.keyUsage === undefined, 'no EKU or AIA')
})

t.test('all three are RSASSA-PSS SHA-384, MGF1 SHA-384, salt 48, trailer 1', async (t) => {
  const want = { algorithm: OID_PSS, sameAsTbs: true, hash: OID_SHA384, mgf: OID_MGF1, mgfHash: OID_SHA384, saltLength: 48, trailerField: 1 }
  for (const cert of [chain.ark, chain.ask, chain.vcek]) t.same(pssMeaning(cert.raw), want)
})

t.test('signatures verify along VCEK -> ASK -> ARK with node:crypto', async (t) => {
  t.ok(chain.vcek.verify(chain.ask.publicKey))
  t.ok(chain.ask.verify(chain.ark.publicKey))
  t.ok(chain.ark.verify(chain.ark.publicKey))
  t.notOk(chain.vcek.verify(chain.ark.publicKey), 'the VCEK is not signed by the ARK')
  t.ok(chain.ask.checkIssued(chain.ark) && chain.vcek.checkIssued(chain.ask))
})

t.test('CA extensions mirror AMD\'s ARK and ASK', async (t) => {
  const oids = (der: Buffer): string[] => extensionList(der).map((e) => e.oid)
  // keyUsage, SKID, basicConstraints, CRL DP (ARK); SKID, AKID, basicConstraints pathlen 0, keyUsage, CRL DP (ASK).
  t.same(oids(chain.ark.raw), ['2.5.29.15', '2.5.29.14', '2.5.29.19', '2.5.29.31'])
  t.same(oids(chain.ask.raw), ['2.5.29.14', '2.5.29.35', '2.5.29.19', '2.5.29.15', '2.5.29.31'])
  const crl = Buffer.from('https://kdsintf.amd.com/vcek/v1/Milan/crl')
  t.ok(chain.ark.raw.includes(crl) && chain.ask.raw.includes(crl), 'CRL distribution point')
  const ku = (der: Buffer): string | undefined => extensionList(der).find((e) => e.oid === '2.5.29.15')?.value
  t.equal(ku(chain.ark.raw), '03020106', 'ARK keyUsage keyCertSign + cRLSign')
  t.equal(ku(chain.ask.raw), '03020204', 'ASK keyUsage keyCertSign')
  t.equal(extensionList(chain.ask.raw).find((e) => e.oid === '2.5.29.19')?.value, '30060101ff020100', 'ASK CA pathlen 0')
})

t.test('VCEK carries only AMD extensions, encoded like AMD\'s', async (t) => {
  const exts = extensionList(chain.vcek.raw)
  const arc = '1.3.6.1.4.1.3704.1'
  t.same(exts.map((e) => e.oid), [`${arc}.1`, `${arc}.2`, `${arc}.3.1`, `${arc}.3.2`, `${arc}.3.4`, `${arc}.3.5`,
    `${arc}.3.6`, `${arc}.3.7`, `${arc}.3.3`, `${arc}.3.8`, `${arc}.4`])
  t.ok(exts.every((e) => !e.critical), 'none critical')
  const value = (leaf: string): string | undefined => exts.find((e) => e.oid === `${arc}.${leaf}`)?.value
  t.equal(value('1'), '020100', 'structVersion 0')
  t.equal(value('2'), '16084d696c616e2d4230', 'productName IA5String "Milan-B0"')
  t.equal(value('3.1'), '020103', 'blSPL 3')
  t.equal(value('3.2'), '020100', 'teeSPL 0')
  t.equal(value('3.3'), '020108', 'snpSPL 8')
  t.equal(value('3.8'), '020173', 'ucodeSPL 115')
  t.equal(value('4'), CHIP_ID.toString('hex'), 'hwID is the 64 raw chip id bytes')
  t.equal(chain.chipId.toString('hex'), CHIP_ID.toString('hex'))
  t.equal(chain.reportedTcb, 0x7308000000000003n)

  const parsed = parseAmdExtensions(chain.vcek)
  t.match(parsed, { structVersion: 0, productName: 'Milan-B0', bootloader: 3, tee: 0, snp: 8, microcode: 115, spl4: 0, spl7: 0, fmc: null, cspId: null })
  t.ok(parsed.hwId?.equals(CHIP_ID))
})

t.test('an SPL above 127 is a two-byte DER INTEGER', async (t) => {
  const values = vcekExtensionValues({ bootloader: 200, tee: 128, snp: 127, microcode: 255 }, CHIP_ID)
  const hex = (oid: string): string | undefined => values.find((v) => v.oid === `1.3.6.1.4.1.3704.1.${oid}`)?.value.toString('hex')
  t.equal(hex('3.1'), '020200c8')
  t.equal(hex('3.2'), '02020080')
  t.equal(hex('3.3'), '02017f')
  t.equal(hex('3.8'), '020200ff')
  t.throws(() => vcekExtensionValues({ bootloader: 256, tee: 0, snp: 0, microcode: 0 }, CHIP_ID), TypeError)
  t.throws(() => vcekExtensionValues({ bootloader: 0, tee: -1, snp: 0, microcode: 0 }, CHIP_ID), TypeError)
  t.throws(() => vcekExtensionValues({ bootloader: 0, tee: 0, snp: 0, microcode: 0 }, CHIP_ID.subarray(0, 8)), TypeError)
})

t.test('matches the genuine Milan VCEK\'s shape', needsVectors(), async (t) => {
  const genuine = vector('virtee-milan', 'vcek_milan.der')
  t.same(pssMeaning(chain.vcek.raw), pssMeaning(genuine), 'same signature algorithm meaning')
  const ours = extensionList(chain.vcek.raw)
  const theirs = extensionList(genuine)
  t.same(ours.map((e) => [e.oid, e.critical]), theirs.map((e) => [e.oid, e.critical]), 'same extensions, same order')
  // Genuine TCB is bl 3, tee 0, snp 8, ucode 115 too: every value but hwID is byte-identical.
  t.same(ours.filter((e) => !e.oid.endsWith('.4')), theirs.filter((e) => !e.oid.endsWith('.4')))
  t.equal(ours.at(-1)?.value.length, theirs.at(-1)?.value.length, 'hwID has the genuine length (64 raw bytes)')
  const names = (der: Buffer): string[] => {
    const tbs = AsnConvert.parse(der, Certificate).tbsCertificate
    return [tbs.subject, tbs.issuer].map((n) => Buffer.from(AsnConvert.serialize(n)).toString('hex'))
  }
  t.same(names(chain.vcek.raw), names(genuine), 'subject and issuer DER byte-identical (string types included)')
})

t.test('the emulated chain verifies only when its ARK is trusted', async (t) => {
  const verified = verifyAmdChain(chain, { trustedArkFingerprints: [chain.arkFingerprint], now: NOW })
  t.equal(verified.generation, 'Milan')
  t.equal(verified.signingKey, 'vcek')
  t.throws(() => verifyAmdChain(chain, { now: NOW }), { code: 'ERR_CERT_CHAIN_INVALID', details: { link: 'ark', check: 'pin' } },
    'AMD\'s ARKs do not vouch for it')
})

t.test('thimDocument has THIM\'s shape', async (t) => {
  const doc = thimDocument(chain)
  t.same(Object.keys(doc).sort(), ['cacheControl', 'certificateChain', 'tcbm', 'vcekCert'])
  t.equal(doc.tcbm, '7308000000000003')
  t.equal(doc.cacheControl, '86400')
  t.equal(doc.certificateChain, chain.ask.toString() + chain.ark.toString(), 'ASK then ARK')
  const parsed = parseChainPem(doc.vcekCert, doc.certificateChain)
  t.equal(parsed.vcek.fingerprint256, chain.vcek.fingerprint256)
  t.equal(parsed.ark.fingerprint256, chain.arkFingerprint)
})

t.test('generateEmulatedChain rejects misuse before generating keys', async (t) => {
  await t.rejects(generateEmulatedChain({ chipId: Buffer.alloc(63) }), TypeError)
  await t.rejects(generateEmulatedChain({ tcb: { bootloader: 0, tee: 0, snp: 0, microcode: 300 } }), TypeError)
  await t.rejects(generateEmulatedChain({ now: new Date(Number.NaN) }), TypeError)
})

// ---- cache --------------------------------------------------------------------------------------

function counting (c: EmulatedAmdChain = chain): { generate: (now: Date) => Promise<EmulatedAmdChain>, calls: () => number } {
  let calls = 0
  return { generate: async () => { calls++; return c }, calls: () => calls }
}

function sameChain (t: Test, got: EmulatedAmdChain, want: EmulatedAmdChain): void {
  t.equal(got.arkFingerprint, want.arkFingerprint)
  t.equal(got.ask.fingerprint256, want.ask.fingerprint256)
  t.equal(got.vcek.fingerprint256, want.vcek.fingerprint256)
  t.equal(spki(createPublicKey(got.vcekKey)), spki(want.vcek.publicKey))
  t.equal(got.chipId.toString('hex'), want.chipId.toString('hex'))
  t.equal(got.reportedTcb, want.reportedTcb)
  t.equal(got.chainPem, want.chainPem)
  t.equal(got.vcekPem, want.vcekPem)
  t.equal(got.product, 'Milan')
}

t.test('cache round trip: generated once, then loaded; 0600 file in a 0700 dir', async (t) => {
  const root = await tmp(t)
  const dir = join(root, 'nested', 'skr')
  const gen = counting()
  const first = await loadOrCreateEmulatedChain({ cacheDir: dir, now: NOW, generate: gen.generate })
  t.equal(first, chain, 'first use returns what was generated')
  t.equal(gen.calls(), 1)
  t.equal((await stat(dir)).mode & 0o777, 0o700)
  t.same(await readdir(dir), ['emulated-amd-chain.json'], 'no temporary file left behind')
  const file = join(dir, 'emulated-amd-chain.json')
  t.equal((await stat(file)).mode & 0o777, 0o600)
  const doc = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>
  t.same(Object.keys(doc).sort(), ['certChainPem', 'format', 'vcekKeyPem'])
  t.match(doc.vcekKeyPem, /^-----BEGIN PRIVATE KEY-----\n/, 'PKCS#8 PEM')

  const second = await loadOrCreateEmulatedChain({ cacheDir: dir, now: NOW, generate: gen.generate })
  t.equal(gen.calls(), 1, 'the second use does not generate')
  t.not(second, chain)
  sameChain(t, second, chain)
})

t.test('progress: a line before and after a generation, none for the cache or PEM input', async (t) => {
  const dir = join(await tmp(t), 'skr')
  const lines: string[] = []
  const progress = (message: string): void => { lines.push(message) }
  const gen = counting()
  await loadOrCreateEmulatedChain({ cacheDir: dir, now: NOW, generate: gen.generate, progress })
  t.equal(lines.length, 2)
  t.equal(lines[0], `generating the emulated AMD certificate chain (RSA-4096 keys: a few seconds, once; cached in ${dir})`)
  t.match(lines[1], /^emulated AMD certificate chain ready \(\d+\.\d s\)$/)
  lines.length = 0
  await loadOrCreateEmulatedChain({ cacheDir: dir, now: NOW, generate: gen.generate, progress })
  t.same(lines, [], 'nothing when the cache has the chain')
  await loadOrCreateEmulatedChain({ vcekKeyPem: chain.vcekKey.export({ type: 'pkcs8', format: 'pem' }) as string, certChainPem: chain.vcekPem + chain.chainPem, now: NOW, progress })
  t.same(lines, [], 'nothing when the chain is given as PEM')
  t.equal(gen.calls(), 1)
})

t.test('a corrupt or unusable cache is regenerated, not fatal', async (t) => {
  const dir = await tmp(t)
  const file = join(dir, 'emulated-amd-chain.json')
  const good = JSON.stringify({ format: 'skr-emulated-amd-chain/1', vcekKeyPem: chain.vcekKey.export({ type: 'pkcs8', format: 'pem' }), certChainPem: chain.vcekPem + chain.chainPem })
  const otherKey = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ type: 'pkcs8', format: 'pem' })
  const cases: Array<[string, string]> = [
    ['not JSON', '{"format": "skr-emul'],
    ['wrong format tag', good.replace('skr-emulated-amd-chain/1', 'something-else/1')],
    ['missing member', JSON.stringify({ format: 'skr-emulated-amd-chain/1', vcekKeyPem: 'x' })],
    ['key of another VCEK', good.replace(JSON.stringify(chain.vcekKey.export({ type: 'pkcs8', format: 'pem' })).slice(1, -1), JSON.stringify(otherKey).slice(1, -1))],
    ['chain missing the ARK', JSON.stringify({ format: 'skr-emulated-amd-chain/1', vcekKeyPem: chain.vcekKey.export({ type: 'pkcs8', format: 'pem' }), certChainPem: chain.vcekPem + chain.ask.toString() })]
  ]
  for (const [name, text] of cases) {
    await writeFile(file, text, { mode: 0o600 })
    const gen = counting()
    const got = await loadOrCreateEmulatedChain({ cacheDir: dir, now: NOW, generate: gen.generate })
    t.equal(gen.calls(), 1, `${name}: regenerated`)
    t.equal(got, chain)
    t.equal(await readFile(file, 'utf8'), good + '\n', `${name}: cache rewritten`)
  }
  // An expired chain is as good as corrupt: 8 years on, the 7-year VCEK has lapsed.
  const later = new Date(NOW.getTime() + 8 * 365 * 86_400_000)
  const gen = counting()
  await loadOrCreateEmulatedChain({ cacheDir: dir, now: later, generate: gen.generate })
  t.equal(gen.calls(), 1, 'expired cache regenerated')
})

t.test('concurrent first use: one cache file, and both users end up with the same chain', async (t) => {
  const dir = await tmp(t)
  const gen = counting()
  const results = await Promise.all([1, 2, 3].map(async () => await loadOrCreateEmulatedChain({ cacheDir: dir, now: NOW, generate: gen.generate })))
  t.same(await readdir(dir), ['emulated-amd-chain.json'])
  t.equal(results.filter((r) => r === chain).length, 1, 'exactly one caller\'s generated chain was cached; the others read it')
  for (const r of results) sameChain(t, r, chain)
})

t.test('an unwritable cache directory does not stop the simulator', async (t) => {
  const root = await tmp(t)
  await writeFile(join(root, 'file'), 'not a directory')
  const gen = counting()
  const got = await loadOrCreateEmulatedChain({ cacheDir: join(root, 'file', 'skr'), now: NOW, generate: gen.generate })
  t.equal(got, chain)
  t.equal(gen.calls(), 1)
})

t.test('default cache directory follows XDG_CACHE_HOME', async (t) => {
  t.equal(defaultEmulatedCacheDir({ XDG_CACHE_HOME: '/var/cache/me' }), '/var/cache/me/skr')
  t.equal(defaultEmulatedCacheDir({}), join(homedir(), '.cache', 'skr'))
  t.equal(defaultEmulatedCacheDir({ XDG_CACHE_HOME: 'relative' }), join(homedir(), '.cache', 'skr'), 'relative values are ignored')
})

// ---- SKR_SIMULATED_VCEK_KEY / SKR_SIMULATED_CERT_CHAIN ----------------------------------------

t.test('loads from PEM strings without touching the cache', async (t) => {
  const dir = await tmp(t)
  const gen = counting()
  const bundle = chain.vcekPem + chain.chainPem
  const pkcs8 = chain.vcekKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  const got = await loadOrCreateEmulatedChain({ cacheDir: dir, now: NOW, vcekKeyPem: pkcs8, certChainPem: bundle, generate: gen.generate })
  sameChain(t, got, chain)
  t.equal(gen.calls(), 0)
  t.same(await readdir(dir), [], 'nothing cached')
  const sec1 = chain.vcekKey.export({ type: 'sec1', format: 'pem' }).toString()
  sameChain(t, await loadOrCreateEmulatedChain({ now: NOW, vcekKeyPem: sec1, certChainPem: bundle }), chain)
})

t.test('PEM input errors name the variable, never its value', async (t) => {
  const bundle = chain.vcekPem + chain.chainPem
  const other = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  const cases: Array<[string, { vcekKeyPem?: string, certChainPem?: string }, string]> = [
    ['another EC key', { vcekKeyPem: other, certChainPem: bundle }, 'SKR_SIMULATED_VCEK_KEY'],
    ['an RSA key', { vcekKeyPem: rsa, certChainPem: bundle }, 'SKR_SIMULATED_VCEK_KEY'],
    ['not a key', { vcekKeyPem: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n', certChainPem: bundle }, 'SKR_SIMULATED_VCEK_KEY'],
    ['a public key', { vcekKeyPem: chain.vcek.publicKey.export({ type: 'spki', format: 'pem' }).toString(), certChainPem: bundle }, 'SKR_SIMULATED_VCEK_KEY'],
    ['key without chain', { vcekKeyPem: other }, 'SKR_SIMULATED_CERT_CHAIN'],
    ['chain without key', { certChainPem: bundle }, 'SKR_SIMULATED_VCEK_KEY'],
    ['empty key, no chain', { vcekKeyPem: '', certChainPem: bundle }, 'SKR_SIMULATED_VCEK_KEY'],
    ['key, empty chain', { vcekKeyPem: other, certChainPem: '' }, 'SKR_SIMULATED_CERT_CHAIN'],
    ['chain of two', { vcekKeyPem: other, certChainPem: chain.vcekPem + chain.ask.toString() }, 'SKR_SIMULATED_CERT_CHAIN'],
    ['chain out of order', { vcekKeyPem: other, certChainPem: chain.chainPem + chain.vcekPem }, 'SKR_SIMULATED_CERT_CHAIN'],
    ['not PEM', { vcekKeyPem: other, certChainPem: 'hello' }, 'SKR_SIMULATED_CERT_CHAIN']
  ]
  for (const [name, input, key] of cases) {
    const err = await loadOrCreateEmulatedChain({ now: NOW, ...input }).then(() => null, (e: unknown) => e)
    t.match(err, { code: 'ERR_CONFIG_INVALID', statusCode: 500, details: { key } }, name)
    const message = err instanceof Error ? err.message : ''
    t.match(message, key, `${name}: message names ${key}`)
    for (const secret of [other, rsa]) {
      const body = secret.split('\n')[1] ?? ''
      t.notOk(message.includes(body.slice(0, 20)), `${name}: message carries no key material`)
    }
  }
  // Expired at `now`: the chain is refused up front rather than failing every verification later.
  const later = new Date(NOW.getTime() + 8 * 365 * 86_400_000)
  const pkcs8 = chain.vcekKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  await t.rejects(loadOrCreateEmulatedChain({ now: later, vcekKeyPem: pkcs8, certChainPem: bundle }),
    { code: 'ERR_CONFIG_INVALID', details: { key: 'SKR_SIMULATED_CERT_CHAIN' } })
})
