// A throwaway certificate authority for the embedded emulators and the HTTPS test doubles: clients
// are handed `caCertPem` as an extra trust root (never `rejectUnauthorized: false`). ECDSA P-256
// keeps issuing fast enough to mint a fresh leaf per double.
import 'reflect-metadata' // @peculiar/x509 pulls in tsyringe, which needs the Reflect polyfill first
import { isIP } from 'node:net'
import type { webcrypto } from 'node:crypto'
import * as x509 from '@peculiar/x509'

/** A local CA: its certificate, and a way to issue TLS server leaves under it. */
export interface LocalPki {
  caCertPem: string
  issue: (hosts: string[]) => Promise<{ certPem: string, keyPem: string }>
}

const DAY_MS = 24 * 60 * 60 * 1000
const YEAR_MS = 365 * DAY_MS
const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' }
const crypto = globalThis.crypto

function serial (): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  bytes[0] = ((bytes[0] ?? 0) & 0x3f) | 0x40 // positive INTEGER, always 16 significant bytes
  return Buffer.from(bytes).toString('hex')
}

async function privateKeyPem (key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await crypto.subtle.exportKey('pkcs8', key))
  const b64 = der.toString('base64').replace(/.{1,64}/g, '$&\n')
  return `-----BEGIN PRIVATE KEY-----\n${b64}-----END PRIVATE KEY-----\n`
}

function altNames (hosts: string[]): x509.JsonGeneralName[] {
  return hosts.map((host) => isIP(host) !== 0 ? { type: 'ip', value: host } : { type: 'dns', value: host })
}

/** Creates a CA (valid from one day before `now` for a year) that issues serverAuth leaves for the given hosts. */
export async function createLocalPki (options: { commonName?: string, now?: Date } = {}): Promise<LocalPki> {
  const now = options.now ?? new Date()
  const notBefore = new Date(now.getTime() - DAY_MS)
  const notAfter = new Date(notBefore.getTime() + YEAR_MS)
  const caName = `CN=${options.commonName ?? 'skr local test CA'}`
  const caKeys = await crypto.subtle.generateKey(EC, true, ['sign', 'verify'])
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: caName,
    keys: caKeys,
    signingAlgorithm: EC,
    notBefore,
    notAfter,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey, false, crypto)
    ]
  }, crypto)
  const authorityKeyId = await x509.AuthorityKeyIdentifierExtension.create(ca, false, crypto)

  const issue = async (hosts: string[]): Promise<{ certPem: string, keyPem: string }> => {
    if (!Array.isArray(hosts) || hosts.length === 0 || !hosts.every((h) => typeof h === 'string' && h !== '')) {
      throw new TypeError('issue() needs at least one non-empty host name or IP address')
    }
    const keys = await crypto.subtle.generateKey(EC, true, ['sign', 'verify'])
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${hosts[0] ?? ''}`,
      issuer: ca.subject,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: caKeys.privateKey,
      signingAlgorithm: EC,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        new x509.SubjectAlternativeNameExtension(altNames(hosts), false),
        authorityKeyId
      ]
    }, crypto)
    return { certPem: leaf.toString('pem') + '\n', keyPem: await privateKeyPem(keys.privateKey) }
  }

  return { caCertPem: ca.toString('pem') + '\n', issue }
}
