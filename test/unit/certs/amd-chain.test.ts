import 'reflect-metadata'
import { webcrypto, X509Certificate } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import t from 'tap'
import { parseBundlePem, parseChainPem, verifyAmdChain } from '../../../src/certs/amd-chain.ts'
import type { AmdChain } from '../../../src/certs/amd-chain.ts'
import { AMD_ARK_FINGERPRINTS, AMD_ASK_FINGERPRINTS, AMD_ASVK_FINGERPRINTS } from '../../../src/certs/amd-roots.ts'
import { splitPem, toPem } from '../../../src/certs/pem.ts'
import { needsVectors, vector, vectorText } from '../../helpers/vectors.ts'

x509.cryptoProvider.set(webcrypto)

const NOW = new Date('2024-06-01T00:00:00Z')
const invalid = (check: string, link?: string): { code: string, details: Record<string, string> } =>
  ({ code: 'ERR_CERT_CHAIN_INVALID', details: link === undefined ? { check } : { check, link } })

function azure (): { vcekCert: string, certificateChain: string } {
  return JSON.parse(vectorText('azure-aci-milan', 'uvm_host_amd_certificate.json')) as { vcekCert: string, certificateChain: string }
}

// ---- a throwaway AMD-shaped chain (RSA-PSS SHA-384 like AMD's, smaller keys) ----------------------

const PSS_KEY = { name: 'RSA-PSS', hash: 'SHA-384', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) }
const PSS_SIGN = { name: 'RSA-PSS', saltLength: 48 }
const rsa = async (): Promise<webcrypto.CryptoKeyPair> => await webcrypto.subtle.generateKey(PSS_KEY, true, ['sign', 'verify'])
const [arkKeys, askKeys, otherKeys] = await Promise.all([rsa(), rsa(), rsa()])
const ecKeys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify'])
const DN = 'OU=Engineering, C=US, L=Santa Clara, ST=CA, O=Advanced Micro Devices'
const VALIDITY = { notBefore: new Date('2023-01-01T00:00:00Z'), notAfter: new Date('2030-01-01T00:00:00Z') }
const AMD = '1.3.6.1.4.1.3704.1'

interface FakeOptions {
  arkCn?: string
  askCn?: string
  leafCn?: string
  arkCa?: boolean
  askCa?: boolean
  leafKey?: webcrypto.CryptoKey
  leafSigner?: webcrypto.CryptoKey
  productName?: string
}

async function fakeChain (o: FakeOptions = {}): Promise<AmdChain> {
  const arkCn = o.arkCn ?? 'ARK-Milan'
  const askCn = o.askCn ?? 'SEV-Milan'
  const caExts = (ca: boolean): x509.Extension[] =>
    [new x509.BasicConstraintsExtension(ca, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)]
  const ark = await x509.X509CertificateGenerator.createSelfSigned({
    name: `${DN}, CN=${arkCn}`, keys: arkKeys, signingAlgorithm: PSS_SIGN, ...VALIDITY, extensions: caExts(o.arkCa ?? true)
  })
  const ask = await x509.X509CertificateGenerator.create({
    subject: `${DN}, CN=${askCn}`, issuer: ark.subject, publicKey: askKeys.publicKey, signingKey: arkKeys.privateKey,
    signingAlgorithm: PSS_SIGN, ...VALIDITY, extensions: caExts(o.askCa ?? true)
  })
  const leaf = await x509.X509CertificateGenerator.create({
    subject: `${DN}, CN=${o.leafCn ?? 'SEV-VCEK'}`, issuer: ask.subject, publicKey: o.leafKey ?? ecKeys.publicKey,
    signingKey: o.leafSigner ?? askKeys.privateKey, signingAlgorithm: PSS_SIGN, ...VALIDITY,
    extensions: [
      new x509.Extension(`${AMD}.2`, false, Buffer.concat([Buffer.from([0x16, (o.productName ?? 'Milan-B0').length]), Buffer.from(o.productName ?? 'Milan-B0')])),
      new x509.Extension(`${AMD}.3.3`, false, Buffer.from('020108', 'hex'))
    ]
  })
  const node = (c: x509.X509Certificate): X509Certificate => new X509Certificate(Buffer.from(c.rawData))
  return { vcek: node(leaf), ask: node(ask), ark: node(ark) }
}

const trustFake = (chain: AmdChain): { trustedArkFingerprints: string[], now: Date } =>
  ({ trustedArkFingerprints: [chain.ark.fingerprint256], now: NOW })

// ---- PEM ---------------------------------------------------------------------------------------

t.test('splitPem and toPem', needsVectors(), async (t) => {
  const bundle = vectorText('azure-aci-milan', 'uvm_host_amd_certificate.pem')
  const certs = splitPem(bundle)
  t.equal(certs.length, 3)
  t.same(certs.map((c) => c.subject.match(/CN=(.*)/)?.[1]), ['SEV-VCEK', 'SEV-Milan', 'ARK-Milan'])
  t.equal(certs.map(toPem).join(''), bundle.replace(/\r\n/g, '\n').trim() + '\n', 'toPem reproduces the KDS formatting')
  const [first] = certs as [X509Certificate]
  t.ok(splitPem(toPem(first))[0]?.raw.equals(first.raw), 'round trip')

  const mixed = `subject=CN=SEV-VCEK\n-----BEGIN EC PRIVATE KEY-----\nnot parsed\n-----END EC PRIVATE KEY-----\n${toPem(first).replace(/\n/g, '\r\n')}`
  t.equal(splitPem(mixed).length, 1, 'other block types and explanatory text are ignored; CRLF is fine')
  t.same(splitPem(''), [])
  t.same(splitPem('-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n'), [])

  const body = toPem(first).split('\n').slice(1, -2).join('')
  const der = Buffer.from(body, 'base64')
  const cases: ReadonlyArray<readonly [string, string, RegExp]> = [
    ['not PEM', 'hello world', /no -----BEGIN/],
    ['unterminated', toPem(first).replace('-----END CERTIFICATE-----', ''), /unterminated or malformed/],
    ['mismatched labels', toPem(first).replace('END CERTIFICATE', 'END PUBLIC KEY'), /ends as "PUBLIC KEY"/],
    ['non-base64', toPem(first).replace(body.slice(0, 4), '!!!!'), /outside base64/],
    ['truncated DER', `-----BEGIN CERTIFICATE-----\n${der.subarray(0, 100).toString('base64')}\n-----END CERTIFICATE-----`, /not a DER X\.509/],
    ['trailing bytes', `-----BEGIN CERTIFICATE-----\n${Buffer.concat([der, Buffer.alloc(2)]).toString('base64')}\n-----END CERTIFICATE-----`, /2 bytes after the certificate/]
  ]
  for (const [name, text, message] of cases) t.throws(() => splitPem(text), { code: 'ERR_CERT_CHAIN_INVALID', message }, name)
  t.throws(() => splitPem(Buffer.from('x') as unknown as string), TypeError)
  t.throws(() => toPem({} as X509Certificate), TypeError)
})

t.test('parseChainPem and parseBundlePem insist on the certificate counts', needsVectors(), async (t) => {
  const { vcekCert, certificateChain } = azure()
  const chain = parseChainPem(vcekCert, certificateChain)
  const bundle = parseBundlePem(vectorText('azure-aci-milan', 'uvm_host_amd_certificate.pem'))
  for (const link of ['vcek', 'ask', 'ark'] as const) t.ok(chain[link].raw.equals(bundle[link].raw), `${link} is the same either way`)
  t.throws(() => parseChainPem(certificateChain, certificateChain), { code: 'ERR_CERT_CHAIN_INVALID', message: 'VCEK PEM holds 2 certificates, want 1' })
  t.throws(() => parseChainPem(vcekCert, vcekCert), { code: 'ERR_CERT_CHAIN_INVALID', message: 'chain PEM holds 1 certificates, want 2 (ASK then ARK)' })
  t.throws(() => parseBundlePem(certificateChain), { code: 'ERR_CERT_CHAIN_INVALID', message: /holds 2 certificates, want 3/ })
})

// ---- genuine chains ------------------------------------------------------------------------------

t.test('genuine chains verify against the pinned AMD roots', needsVectors(), async (t) => {
  const { vcekCert, certificateChain } = azure()
  const result = verifyAmdChain(parseChainPem(vcekCert, certificateChain), { now: NOW })
  t.equal(result.generation, 'Milan')
  t.equal(result.signingKey, 'vcek')
  t.match(result.extensions, { productName: 'Milan-B0', bootloader: 3, tee: 0, snp: 8, microcode: 115 })

  const der = (file: string, dir: string): string => toPem(new X509Certificate(vector(dir, file)))
  const virtee = verifyAmdChain(parseChainPem(der('vcek_milan.der', 'virtee-milan'), vectorText('virtee-milan', 'cert_chain_milan')), { now: NOW })
  t.equal(virtee.generation, 'Milan')
  const gsg = verifyAmdChain(parseChainPem(der('vcek.testcer', 'gsg-milan-debug'), vectorText('gsg-milan-debug', 'milan.testcer')), { now: NOW })
  t.equal(gsg.generation, 'Milan')

  const turinChain = parseChainPem(der('vcek_turin.der', 'virtee-turin'), vectorText('virtee-turin', 'cert_chain_turin'))
  const turin = verifyAmdChain(turinChain, { now: new Date('2025-06-01T00:00:00Z'), trustedArkFingerprints: [AMD_ARK_FINGERPRINTS.Turin] })
  t.equal(turin.generation, 'Turin')
  t.equal(turin.extensions.hwId?.length, 8)
  t.throws(() => verifyAmdChain(turinChain, { now: new Date('2025-06-01T00:00:00Z'), trustedArkFingerprints: [AMD_ARK_FINGERPRINTS.Milan] }),
    invalid('pin', 'ark'), 'the Turin ARK is not trusted when only Milan is')
})

t.test('the pinned fingerprints are those of the genuine roots', needsVectors(), async (t) => {
  const milan = splitPem(vectorText('virtee-milan', 'cert_chain_milan'))
  const turin = splitPem(vectorText('virtee-turin', 'cert_chain_turin'))
  const vlek = splitPem(vectorText('gsg-milan-debug', 'milanvlek.testcer'))
  t.same(milan.map((c) => c.fingerprint256), [AMD_ASK_FINGERPRINTS.Milan, AMD_ARK_FINGERPRINTS.Milan])
  t.same(turin.map((c) => c.fingerprint256), [AMD_ASK_FINGERPRINTS.Turin, AMD_ARK_FINGERPRINTS.Turin])
  t.same(vlek.map((c) => c.fingerprint256), [AMD_ASVK_FINGERPRINTS.Milan, AMD_ARK_FINGERPRINTS.Milan])
  for (const table of [AMD_ARK_FINGERPRINTS, AMD_ASK_FINGERPRINTS, AMD_ASVK_FINGERPRINTS]) {
    t.same(Object.keys(table), ['Milan', 'Genoa', 'Turin'])
    for (const fp of Object.values(table)) t.match(fp, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/)
    t.ok(Object.isFrozen(table))
  }
})

t.test('genuine chains: every broken link is CertChainInvalid', needsVectors(), async (t) => {
  const { vcekCert, certificateChain } = azure()
  const chain = parseChainPem(vcekCert, certificateChain)
  t.throws(() => verifyAmdChain(chain, { now: new Date('2050-01-01T00:00:00Z') }),
    { ...invalid('validity', 'ark'), message: /^ARK is valid from 2020-10-22T17:23:05\.000Z to 2045-10-22T17:23:05\.000Z, not at 2050/ })
  t.throws(() => verifyAmdChain(chain, { now: new Date('2030-06-01T00:00:00Z') }), invalid('validity', 'vcek'), 'VCEK expired in 2029')
  t.throws(() => verifyAmdChain(chain, { now: new Date('2022-11-01T00:00:00Z') }), invalid('validity', 'vcek'), 'VCEK not yet valid')
  t.throws(() => verifyAmdChain(chain, { now: NOW, trustedArkFingerprints: [] }),
    { ...invalid('pin', 'ark'), message: `ARK fingerprint ${AMD_ARK_FINGERPRINTS.Milan} is not one of the 0 trusted ARK fingerprints` })
  t.doesNotThrow(() => verifyAmdChain(chain, { now: NOW, trustedArkFingerprints: [AMD_ARK_FINGERPRINTS.Milan.replace(/:/g, '').toLowerCase()] }),
    'fingerprints compare without colons or case')
  t.throws(() => verifyAmdChain({ ...chain, ask: chain.ark, ark: chain.ask }, { now: NOW }),
    { ...invalid('subject', 'ark'), message: 'ARK subject CN is "SEV-Milan", want "ARK-<product>"' })
  t.throws(() => verifyAmdChain({ ...chain, ask: chain.ark }, { now: NOW }),
    { ...invalid('subject', 'ask'), message: 'ASK subject CN is "ARK-Milan", want "SEV-Milan" or "SEV-VLEK-Milan"' })
  t.throws(() => verifyAmdChain({ ...chain, vcek: chain.ask }, { now: NOW }), invalid('subject', 'vcek'))

  const vlekRoots = splitPem(vectorText('gsg-milan-debug', 'milanvlek.testcer')) as [X509Certificate, X509Certificate]
  t.throws(() => verifyAmdChain({ vcek: chain.vcek, ask: vlekRoots[0], ark: vlekRoots[1] }, { now: NOW }),
    { ...invalid('subject', 'vcek'), message: 'VCEK subject CN is "SEV-VCEK", want "SEV-VLEK" under "SEV-VLEK-Milan"' })

  const turinVcek = new X509Certificate(vector('virtee-turin', 'vcek_turin.der'))
  t.throws(() => verifyAmdChain({ ...chain, vcek: turinVcek }, { now: new Date('2025-06-01T00:00:00Z') }),
    { ...invalid('signature', 'vcek'), message: 'VCEK "SEV-VCEK" is not signed by "SEV-Milan"' })
  const turinRoots = splitPem(vectorText('virtee-turin', 'cert_chain_turin')) as [X509Certificate, X509Certificate]
  t.throws(() => verifyAmdChain({ ...chain, ask: turinRoots[0] }, { now: NOW }), invalid('subject', 'ask'), 'SEV-Turin under ARK-Milan')

  t.throws(() => verifyAmdChain({ vcek: chain.vcek, ask: chain.ask } as AmdChain), TypeError)
  t.throws(() => verifyAmdChain(chain, { now: new Date('nope') }), TypeError)
})

// ---- throwaway chains for what genuine ones cannot show ------------------------------------------

t.test('a throwaway chain verifies only once its ARK is trusted', async (t) => {
  const chain = await fakeChain()
  t.throws(() => verifyAmdChain(chain, { now: NOW }), invalid('pin', 'ark'), 'not trusted by default')
  const result = verifyAmdChain(chain, trustFake(chain))
  t.same({ generation: result.generation, signingKey: result.signingKey, snp: result.extensions.snp }, { generation: 'Milan', signingKey: 'vcek', snp: 8 })
})

t.test('a VLEK under an ASVK', async (t) => {
  const chain = await fakeChain({ askCn: 'SEV-VLEK-Milan', leafCn: 'SEV-VLEK', productName: 'Milan' })
  t.match(verifyAmdChain(chain, trustFake(chain)), { signingKey: 'vlek', generation: 'Milan' })
  const wrong = await fakeChain({ askCn: 'SEV-VLEK-Milan', leafCn: 'SEV-VCEK' })
  t.throws(() => verifyAmdChain(wrong, trustFake(wrong)), invalid('subject', 'vcek'))
})

t.test('throwaway chains: names, CA flags, keys, signatures and product', async (t) => {
  const notCa = await fakeChain({ askCa: false })
  t.throws(() => verifyAmdChain(notCa, trustFake(notCa)), invalid('ca', 'ask'))
  const arkNotCa = await fakeChain({ arkCa: false })
  t.throws(() => verifyAmdChain(arkNotCa, trustFake(arkNotCa)), invalid('ca', 'ark'))

  const rsaLeaf = await fakeChain({ leafKey: otherKeys.publicKey })
  t.throws(() => verifyAmdChain(rsaLeaf, trustFake(rsaLeaf)),
    { ...invalid('key', 'vcek'), message: /^VCEK public key is rsa(-pss)?, want ec secp384r1$/ })

  const forged = await fakeChain({ leafSigner: otherKeys.privateKey })
  t.throws(() => verifyAmdChain(forged, trustFake(forged)), invalid('signature', 'vcek'))

  const genoa = await fakeChain({ productName: 'Genoa' })
  t.throws(() => verifyAmdChain(genoa, trustFake(genoa)),
    { ...invalid('product', 'vcek'), message: 'VCEK productName "Genoa" does not belong under "ARK-Milan"' })

  const unknown = await fakeChain({ arkCn: 'ARK-Venice', askCn: 'SEV-Venice', productName: 'Venice-A0' })
  t.equal(verifyAmdChain(unknown, trustFake(unknown)).generation, null, 'an unknown product verifies with generation null')

  const badAsk = await fakeChain({ askCn: 'SEV-Genoa' })
  t.throws(() => verifyAmdChain(badAsk, trustFake(badAsk)), invalid('subject', 'ask'))

  // An ARK that is pinned but was not signed by its own key.
  const good = await fakeChain()
  const other = await fakeChain()
  const notSelfSigned = await x509.X509CertificateGenerator.create({
    subject: `${DN}, CN=ARK-Milan`, issuer: `${DN}, CN=ARK-Milan`, publicKey: arkKeys.publicKey, signingKey: otherKeys.privateKey,
    signingAlgorithm: PSS_SIGN, ...VALIDITY, extensions: [new x509.BasicConstraintsExtension(true, undefined, true)]
  })
  const ark = new X509Certificate(Buffer.from(notSelfSigned.rawData))
  t.throws(() => verifyAmdChain({ ...good, ark }, trustFake({ ...good, ark })), invalid('signature', 'ark'))
  t.doesNotThrow(() => verifyAmdChain(other, trustFake(other)), 'same keys, fresh certificates verify')
})
