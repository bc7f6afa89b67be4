// Generates a fresh emulated AMD chain (./emulated-chain.ts): ARK, ASK and VCEK as AMD issues
// them for Milan (docs/sev-snp.md#amd-certificate-chain, docs/sev-snp.md#vcek-extensions).
// Certificates are built with @peculiar/x509; only the small INTEGER/IA5String extension values are
// DER-encoded by ../certs/der.ts.
// @peculiar/x509 (with reflect-metadata and tsyringe) is loaded only when a chain is generated:
// `skr serve` normally reads the cached chain and must not pay for it at start-up.
import { generateKeyPair, randomBytes, webcrypto, X509Certificate } from 'node:crypto'
import { promisify } from 'node:util'
import type * as X509 from '@peculiar/x509'
import { encodeTcb } from '../snp/tcb.ts'
import { encodeIa5String, encodeInteger } from '../certs/der.ts'
import { assembleEmulatedChain, PRODUCT, type EmulatedAmdChain } from './emulated-chain.ts'

/** Security patch levels written into the VCEK and the reports (Milan TCB_VERSION parts). */
export interface EmulatedTcb { bootloader: number, tee: number, snp: number, microcode: number }

/** Options of generateEmulatedChain. */
export interface GenerateEmulatedChainOptions { tcb?: EmulatedTcb, chipId?: Buffer, now?: Date }

const CRL_URL = `https://kdsintf.amd.com/vcek/v1/${PRODUCT}/crl`
// Like the genuine Azure ACI VCEK (tcbm 7308000000000003).
const DEFAULT_TCB: EmulatedTcb = { bootloader: 3, tee: 0, snp: 8, microcode: 115 }
const AMD_OID = '1.3.6.1.4.1.3704.1'
const OID = {
  structVersion: `${AMD_OID}.1`,
  productName: `${AMD_OID}.2`,
  blSpl: `${AMD_OID}.3.1`,
  teeSpl: `${AMD_OID}.3.2`,
  snpSpl: `${AMD_OID}.3.3`,
  ucodeSpl: `${AMD_OID}.3.8`,
  hwId: `${AMD_OID}.4`
} as const
const DAY_MS = 86_400_000
const YEAR_MS = 365 * DAY_MS
const PSS = { name: 'RSA-PSS', hash: 'SHA-384' } as const
const PSS_SIGN = { name: 'RSA-PSS', saltLength: 48 } as const

const generateKeyPairAsync = promisify(generateKeyPair)

type X509Module = typeof X509

let x509Module: Promise<X509Module> | undefined

/** @peculiar/x509, loaded on first use (with the reflect-metadata polyfill it needs first). */
async function loadX509 (): Promise<X509Module> {
  x509Module ??= import('../certs/x509-parts.ts').then(m => m.x509)
  return await x509Module
}

// AMD's DNs: every attribute UTF8String except C (PrintableString), in this RDN order.
function amdName (x509: X509Module, cn: string): X509.Name {
  return new x509.Name([
    { OU: [{ utf8String: 'Engineering' }] },
    { C: [{ printableString: 'US' }] },
    { L: [{ utf8String: 'Santa Clara' }] },
    { ST: [{ utf8String: 'CA' }] },
    { O: [{ utf8String: 'Advanced Micro Devices' }] },
    { CN: [{ utf8String: cn }] }
  ])
}

function checkTcb (tcb: EmulatedTcb): EmulatedTcb {
  for (const k of ['bootloader', 'tee', 'snp', 'microcode'] as const) {
    const v: unknown = tcb[k]
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xff) throw new TypeError(`tcb.${k} must be an integer in 0..255`)
  }
  return { bootloader: tcb.bootloader, tee: tcb.tee, snp: tcb.snp, microcode: tcb.microcode }
}

/**
 * The DER extnValues of AMD's VCEK extensions for a TCB and chip, in the order AMD issues them
 * (genuine Milan VCEK, docs/sev-snp.md#vcek-extensions). Pure: the generator and its tests share it.
 */
export function vcekExtensionValues (tcb: EmulatedTcb, chipId: Uint8Array): Array<{ oid: string, value: Buffer }> {
  const spl = checkTcb(tcb)
  if (!(chipId instanceof Uint8Array) || chipId.length !== 64) throw new TypeError('chipId must be 64 bytes')
  const int = encodeInteger
  return [
    { oid: OID.structVersion, value: int(0) },
    { oid: OID.productName, value: encodeIa5String(`${PRODUCT}-B0`) },
    { oid: OID.blSpl, value: int(spl.bootloader) },
    { oid: OID.teeSpl, value: int(spl.tee) },
    ...[4, 5, 6, 7].map((n) => ({ oid: `${AMD_OID}.3.${n}`, value: int(0) })),
    { oid: OID.snpSpl, value: int(spl.snp) },
    { oid: OID.ucodeSpl, value: int(spl.microcode) },
    // hwID is the raw 64 bytes, without an inner OCTET STRING, as AMD issues it.
    { oid: OID.hwId, value: Buffer.from(chipId) }
  ]
}

// @peculiar/x509 replaces an all-zero serial with random bytes; AMD's VCEKs have serial 0, so the
// VCEK is built with a provider whose "random" serial is zero (x509 then encodes INTEGER 0).
const zeroSerialCrypto = {
  subtle: webcrypto.subtle,
  getRandomValues: <T extends ArrayBufferView | null>(array: T): T => {
    if (array !== null) new Uint8Array(array.buffer, array.byteOffset, array.byteLength).fill(0)
    return array
  }
} as unknown as Parameters<typeof X509.X509CertificateGenerator.create>[1]

async function rsaKeys (): Promise<{ spki: Buffer, signingKey: webcrypto.CryptoKey }> {
  const { publicKey, privateKey } = await generateKeyPairAsync('rsa', { modulusLength: 4096, publicExponent: 0x10001 })
  const signingKey = await webcrypto.subtle.importKey('pkcs8', privateKey.export({ type: 'pkcs8', format: 'der' }), PSS, false, ['sign'])
  return { spki: publicKey.export({ type: 'spki', format: 'der' }), signingKey }
}

function toNode (cert: X509.X509Certificate): X509Certificate {
  return new X509Certificate(Buffer.from(cert.rawData))
}

/** Generates a fresh emulated chain (two RSA-4096 keys: seconds of thread-pool time, off the event loop). */
export async function generateEmulatedChain (options: GenerateEmulatedChainOptions = {}): Promise<EmulatedAmdChain> {
  const tcb = checkTcb(options.tcb ?? DEFAULT_TCB)
  const chipId = options.chipId ?? randomBytes(64)
  if (!(chipId instanceof Uint8Array) || chipId.length !== 64) throw new TypeError('chipId must be 64 bytes')
  const now = options.now ?? new Date()
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) throw new TypeError('now must be a valid Date')
  const notBefore = new Date(Math.floor(now.getTime() / 1000) * 1000)

  const [x509, ark, ask, vcekPair] = await Promise.all([
    loadX509(),
    rsaKeys(),
    rsaKeys(),
    generateKeyPairAsync('ec', { namedCurve: 'P-384' })
  ])
  const crl = new x509.CRLDistributionPointsExtension([CRL_URL])
  const arkSkid = await x509.SubjectKeyIdentifierExtension.create(ark.spki, false, webcrypto)
  const arkCert = await x509.X509CertificateGenerator.create({
    serialNumber: '010000',
    subject: amdName(x509, `ARK-${PRODUCT}`),
    issuer: amdName(x509, `ARK-${PRODUCT}`),
    notBefore,
    notAfter: new Date(notBefore.getTime() + 25 * YEAR_MS),
    publicKey: ark.spki,
    signingKey: ark.signingKey,
    signingAlgorithm: PSS_SIGN,
    extensions: [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      arkSkid,
      new x509.BasicConstraintsExtension(true, undefined, true),
      crl
    ]
  }, webcrypto)
  const askCert = await x509.X509CertificateGenerator.create({
    serialNumber: '010001',
    subject: amdName(x509, `SEV-${PRODUCT}`),
    issuer: amdName(x509, `ARK-${PRODUCT}`),
    notBefore,
    notAfter: new Date(notBefore.getTime() + 25 * YEAR_MS),
    publicKey: ask.spki,
    signingKey: ark.signingKey,
    signingAlgorithm: PSS_SIGN,
    extensions: [
      await x509.SubjectKeyIdentifierExtension.create(ask.spki, false, webcrypto),
      new x509.AuthorityKeyIdentifierExtension(arkSkid.keyId),
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
      crl
    ]
  }, webcrypto)
  const vcekCert = await x509.X509CertificateGenerator.create({
    subject: amdName(x509, 'SEV-VCEK'),
    issuer: amdName(x509, `SEV-${PRODUCT}`),
    notBefore,
    notAfter: new Date(notBefore.getTime() + 7 * YEAR_MS),
    publicKey: vcekPair.publicKey.export({ type: 'spki', format: 'der' }),
    signingKey: ask.signingKey,
    signingAlgorithm: PSS_SIGN,
    // AMD's VCEK carries nothing but its own extensions, all non-critical.
    extensions: vcekExtensionValues(tcb, chipId).map(({ oid, value }) => new x509.Extension(oid, false, value))
  }, zeroSerialCrypto)

  return assembleEmulatedChain(toNode(arkCert), toNode(askCert), toNode(vcekCert), vcekPair.privateKey, Buffer.from(chipId),
    encodeTcb({ ...tcb, fmc: null }, PRODUCT))
}
