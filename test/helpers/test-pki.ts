// A throwaway signer PKI for release-JWS tests and the AKV emulator: root CA → intermediate →
// leaf with SANs, shaped like a vault's signer chain (docs/protocols.md#key-release-response), plus knobs to mint
// broken variants (expired, not yet valid, other names, other roots, no EKU).
import 'reflect-metadata' // @peculiar/x509 pulls in tsyringe, which needs the Reflect polyfill first
import { isIP } from 'node:net'
import { KeyObject, X509Certificate, webcrypto } from 'node:crypto'

type CryptoKeyPair = webcrypto.CryptoKeyPair
import * as x509 from '@peculiar/x509'

const crypto = webcrypto
x509.cryptoProvider.set(crypto)

const DAY_MS = 24 * 60 * 60 * 1000

/** Key types the helper can mint. */
export type TestKeyType = 'RSA-2048' | 'RSA-3072' | 'P-256' | 'P-384'

/** A certificate and its key, in every form a test needs. */
export interface TestCert {
  cert: X509Certificate
  der: Buffer
  pem: string
  /** Padded standard b64 DER: an x5c entry. */
  b64: string
  privateKey: KeyObject
  publicKey: KeyObject
  keyType: TestKeyType
  keys: CryptoKeyPair
  peculiar: x509.X509Certificate
}

/** How to shape one certificate; everything has a sensible default. */
export interface TestCertOptions {
  commonName?: string
  dnsNames?: string[]
  ipAddresses?: string[]
  notBefore?: Date
  notAfter?: Date
  keyType?: TestKeyType
  /** Leaf EKU OIDs; default [serverAuth]; null omits the extension. Ignored for CAs. */
  extKeyUsages?: string[] | null
  /** KeyUsageFlags bitmask; default keyCertSign|cRLSign for CAs, digitalSignature for leaves; null omits it. */
  keyUsages?: number | null
  /** Mark the certificate as a CA (basicConstraints cA); default per kind. */
  ca?: boolean
}

function keyAlgorithm (keyType: TestKeyType): webcrypto.RsaHashedKeyGenParams | webcrypto.EcKeyGenParams {
  switch (keyType) {
    case 'RSA-2048': return { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }
    case 'RSA-3072': return { name: 'RSASSA-PKCS1-v1_5', modulusLength: 3072, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }
    case 'P-256': return { name: 'ECDSA', namedCurve: 'P-256' }
    case 'P-384': return { name: 'ECDSA', namedCurve: 'P-384' }
  }
}

function signingAlgorithm (keyType: TestKeyType): webcrypto.Algorithm | webcrypto.EcdsaParams {
  if (keyType.startsWith('RSA')) return { name: 'RSASSA-PKCS1-v1_5' }
  return { name: 'ECDSA', hash: keyType === 'P-384' ? 'SHA-384' : 'SHA-256' } as webcrypto.EcdsaParams
}

function serial (): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  bytes[0] = (bytes[0] ?? 0) & 0x7f // a positive INTEGER
  return Buffer.from(bytes).toString('hex')
}

async function generateKeys (keyType: TestKeyType): Promise<CryptoKeyPair> {
  return await crypto.subtle.generateKey(keyAlgorithm(keyType), true, ['sign', 'verify']) as CryptoKeyPair
}

function finish (peculiar: x509.X509Certificate, keys: CryptoKeyPair, keyType: TestKeyType): TestCert {
  const der = Buffer.from(peculiar.rawData)
  return {
    cert: new X509Certificate(der),
    der,
    pem: peculiar.toString('pem') + '\n',
    b64: der.toString('base64'),
    privateKey: KeyObject.from(keys.privateKey),
    publicKey: KeyObject.from(keys.publicKey),
    keyType,
    keys,
    peculiar
  }
}

function altNames (options: TestCertOptions): x509.JsonGeneralName[] {
  const dns = (options.dnsNames ?? []).map((value): x509.JsonGeneralName => ({ type: 'dns', value }))
  const ip = (options.ipAddresses ?? []).map((value): x509.JsonGeneralName => {
    if (isIP(value) === 0) throw new TypeError(`not an IP address: ${value}`)
    return { type: 'ip', value }
  })
  return [...dns, ...ip]
}

function validity (options: TestCertOptions, years: number): { notBefore: Date, notAfter: Date } {
  const notBefore = options.notBefore ?? new Date(Date.now() - DAY_MS)
  return { notBefore, notAfter: options.notAfter ?? new Date(notBefore.getTime() + years * 365 * DAY_MS) }
}

/** A self-signed root CA (default P-256, valid from yesterday for ten years). */
export async function createRootCa (options: TestCertOptions = {}): Promise<TestCert> {
  const keyType = options.keyType ?? 'P-256'
  const keys = await generateKeys(keyType)
  const peculiar = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${options.commonName ?? 'skr test root CA'}, O=skr tests`,
    keys,
    signingAlgorithm: signingAlgorithm(keyType),
    ...validity(options, 10),
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto)
    ]
  }, crypto)
  return finish(peculiar, keys, keyType)
}

async function issue (issuer: TestCert, options: TestCertOptions, ca: boolean): Promise<TestCert> {
  const keyType = options.keyType ?? (ca ? 'P-256' : 'RSA-2048')
  const keys = await generateKeys(keyType)
  const names = altNames(options)
  const isCa = options.ca ?? ca
  const extensions: x509.Extension[] = [new x509.BasicConstraintsExtension(isCa, undefined, true)]
  const usages = options.keyUsages === undefined
    ? (isCa ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign : x509.KeyUsageFlags.digitalSignature)
    : options.keyUsages
  if (usages !== null) extensions.push(new x509.KeyUsagesExtension(usages, true))
  const eku = options.extKeyUsages === undefined ? [x509.ExtendedKeyUsage.serverAuth] : options.extKeyUsages
  if (!ca && eku !== null) extensions.push(new x509.ExtendedKeyUsageExtension(eku, false))
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, false))
  extensions.push(
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
    await x509.AuthorityKeyIdentifierExtension.create(issuer.keys.publicKey, false, crypto)
  )
  const peculiar = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${options.commonName ?? (ca ? 'skr test issuing CA' : options.dnsNames?.[0] ?? 'skr test signer')}, O=skr tests`,
    issuer: issuer.peculiar.subject,
    publicKey: keys.publicKey,
    signingKey: issuer.keys.privateKey,
    signingAlgorithm: signingAlgorithm(issuer.keyType),
    ...validity(options, ca ? 5 : 1),
    extensions
  }, crypto)
  return finish(peculiar, keys, keyType)
}

/** An intermediate CA issued by `issuer` (default P-256, no pathLen constraint). */
export async function createIntermediateCa (issuer: TestCert, options: TestCertOptions = {}): Promise<TestCert> {
  return await issue(issuer, options, true)
}

/** A leaf issued by `issuer` (default RSA-2048, digitalSignature, EKU serverAuth, SANs from the options). */
export async function createLeaf (issuer: TestCert, options: TestCertOptions = {}): Promise<TestCert> {
  return await issue(issuer, options, false)
}

/** The x5c header value for `certs`, in the order given (leaf first). */
export function x5cOf (...certs: TestCert[]): string[] {
  return certs.map((c) => c.b64)
}

/** A vault-like signer chain: root → intermediate → leaf. */
export interface SignerPki {
  root: TestCert
  intermediate: TestCert
  leaf: TestCert
  /** leaf, intermediate (a vault may also append the root). */
  x5c: string[]
  trustedRoots: X509Certificate[]
}

/** Builds root → intermediate → leaf, the leaf naming `dnsNames`/`ipAddresses` (default vault.test). */
export async function createSignerPki (options: { dnsNames?: string[], ipAddresses?: string[], leafKeyType?: TestKeyType } = {}): Promise<SignerPki> {
  const root = await createRootCa()
  const intermediate = await createIntermediateCa(root)
  const leaf = await createLeaf(intermediate, {
    dnsNames: options.dnsNames ?? ['vault.test'],
    ...(options.ipAddresses === undefined ? {} : { ipAddresses: options.ipAddresses }),
    ...(options.leafKeyType === undefined ? {} : { keyType: options.leafKeyType })
  })
  return { root, intermediate, leaf, x5c: x5cOf(leaf, intermediate), trustedRoots: [root.cert] }
}
