// The AKV emulator's release-response signer: root CA → intermediate CA → RSA-2048 leaf whose SANs
// name the vault host(s), shaped like a vault's chain (docs/protocols.md#key-release-response), and the RS256 JWS it
// signs with the vault's header (kid = SHA-1 thumbprint hex upper, x5t, x5t#S256, typ, x5c padded
// b64 leaf→root). The CAs are ECDSA P-256 because they only sign certificates and mint fast; the
// leaf is RSA so the JWS is RS256 as a real vault's is.
import 'reflect-metadata' // @peculiar/x509 pulls in tsyringe, which needs the Reflect polyfill first
import { createHash, KeyObject, sign, X509Certificate, webcrypto } from 'node:crypto'
import { isIP } from 'node:net'
import * as x509 from '@peculiar/x509'

/** A certificate that can sign release responses, with the x5c that presents it. */
export interface ReleaseSigner {
  /** Padded standard b64 DER, leaf → intermediate → root. */
  x5c: string[]
  cert: X509Certificate
  privateKey: KeyObject
}

/** A signer PKI: its trust anchor, the default signer, and more leaves under the same intermediate. */
export interface SignerChain {
  rootPem: string
  signer: ReleaseSigner
  /** Issues another RSA leaf for `hosts` under the same intermediate (e.g. one naming the wrong host). */
  issueLeaf: (hosts: string[]) => Promise<ReleaseSigner>
}

const crypto = webcrypto
const DAY_MS = 24 * 60 * 60 * 1000
const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' }
const RSA = { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }

function serial (): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  bytes[0] = ((bytes[0] ?? 0) & 0x3f) | 0x40 // a positive INTEGER of 16 significant bytes
  return Buffer.from(bytes).toString('hex')
}

function altNames (hosts: string[]): x509.JsonGeneralName[] {
  return hosts.map((host) => isIP(host) !== 0 ? { type: 'ip', value: host } : { type: 'dns', value: host })
}

function b64 (cert: x509.X509Certificate): string {
  return Buffer.from(cert.rawData).toString('base64')
}

/** Builds a fresh chain valid from a day before `now`; the default leaf names `hosts` (IPs become iPAddress SANs). */
export async function createSignerChain (options: { hosts: string[], now?: Date, label?: string }): Promise<SignerChain> {
  const label = options.label ?? 'skr emulated vault'
  const notBefore = new Date((options.now ?? new Date()).getTime() - DAY_MS)
  const caYears = (years: number): Date => new Date(notBefore.getTime() + years * 365 * DAY_MS)

  const rootKeys = await crypto.subtle.generateKey(EC, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${label} root CA, O=skr emulator`,
    keys: rootKeys,
    signingAlgorithm: EC,
    notBefore,
    notAfter: caYears(10),
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey, false, crypto)
    ]
  }, crypto)

  const interKeys = await crypto.subtle.generateKey(EC, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair
  const intermediate = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${label} issuing CA, O=skr emulator`,
    issuer: root.subject,
    publicKey: interKeys.publicKey,
    signingKey: rootKeys.privateKey,
    signingAlgorithm: EC,
    notBefore,
    notAfter: caYears(5),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(interKeys.publicKey, false, crypto),
      await x509.AuthorityKeyIdentifierExtension.create(root, false, crypto)
    ]
  }, crypto)

  const issueLeaf = async (hosts: string[]): Promise<ReleaseSigner> => {
    if (!Array.isArray(hosts) || hosts.length === 0 || !hosts.every((h) => typeof h === 'string' && h !== '')) {
      throw new TypeError('issueLeaf: needs at least one host name or IP address')
    }
    const keys = await crypto.subtle.generateKey(RSA, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${hosts[0] ?? ''}, O=skr emulator`,
      issuer: intermediate.subject,
      publicKey: keys.publicKey,
      signingKey: interKeys.privateKey,
      signingAlgorithm: EC,
      notBefore,
      notAfter: caYears(1),
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        new x509.SubjectAlternativeNameExtension(altNames(hosts), false),
        await x509.AuthorityKeyIdentifierExtension.create(intermediate, false, crypto)
      ]
    }, crypto)
    return {
      x5c: [b64(leaf), b64(intermediate), b64(root)],
      cert: new X509Certificate(Buffer.from(leaf.rawData)),
      privateKey: KeyObject.from(keys.privateKey)
    }
  }

  return { rootPem: root.toString('pem') + '\n', signer: await issueLeaf(options.hosts), issueLeaf }
}

/** A release JWS protected header (docs/protocols.md#key-release-response). */
export type ReleaseJwsHeader = { alg: string, kid: string, x5t: string, 'x5t#S256': string, typ: 'JWT', x5c: string[] }

/** The protected header a vault puts on a release JWS, for `signer` (alg RS256 unless told otherwise). */
export function releaseJwsHeader (signer: ReleaseSigner, alg = 'RS256'): ReleaseJwsHeader {
  const der = signer.cert.raw
  const sha1 = createHash('sha1').update(der).digest()
  return {
    alg,
    kid: sha1.toString('hex').toUpperCase(),
    x5t: sha1.toString('base64url'),
    'x5t#S256': createHash('sha256').update(der).digest('base64url'),
    typ: 'JWT',
    x5c: [...signer.x5c]
  }
}

// The header of a signer never changes; hashing its certificate again for every release would be
// the double's cost, not skr's, in every latency the benchmark measures.
const headers = new WeakMap<ReleaseSigner, string>()

/**
 * Signs `payload` as a vault's release JWS (compact, unpadded b64url segments). RS256 through
 * node:crypto on the calling thread: the double answers sooner than through WebCrypto's thread pool.
 */
export async function signReleaseJws (signer: ReleaseSigner, payload: unknown): Promise<string> {
  let header = headers.get(signer)
  if (header === undefined) {
    header = Buffer.from(JSON.stringify(releaseJwsHeader(signer)), 'utf8').toString('base64url')
    headers.set(signer, header)
  }
  const input = `${header}.${Buffer.from(JSON.stringify(payload), 'utf8').toString('base64url')}`
  return `${input}.${sign('sha256', Buffer.from(input, 'ascii'), signer.privateKey).toString('base64url')}`
}

/** An unsecured JWS (`alg: "none"`, empty signature): only for the emulator's hostile fault mode. */
export function unsecuredReleaseJws (signer: ReleaseSigner, payload: unknown): string {
  const segment = (value: unknown): string => Buffer.from(JSON.stringify(value), 'utf8').toString('base64url')
  return `${segment(releaseJwsHeader(signer, 'none'))}.${segment(payload)}.`
}
