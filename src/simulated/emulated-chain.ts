// An emulated AMD SEV-SNP certificate chain (ARK -> ASK -> VCEK) for the simulated attestation
// backend. Names, serials, key types, RSASSA-PSS SHA-384 parameters and extensions follow AMD's
// Milan certificates (docs/sev-snp.md §3.1, §3.2, §4.3; the VCEK's AMD extensions byte for byte),
// so every verifier path runs unchanged. Only the ARK fingerprint tells the chain apart: it is
// trusted by configuration alone (the genuine AMD ARKs are pinned elsewhere). Certificates are built with
// @peculiar/x509; only the small INTEGER/IA5String extension values are DER-encoded by ./der.ts.
// @peculiar/x509 (with reflect-metadata and tsyringe) is loaded only when a chain is generated:
// `skr serve` normally reads the cached chain and must not pay for it at start-up.
import { createPrivateKey, createPublicKey, generateKeyPair, randomBytes, webcrypto, X509Certificate } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { link, mkdir, open, readFile, rename, rm } from 'node:fs/promises'
import { homedir } from 'node:os'
import { isAbsolute, join } from 'node:path'
import { promisify } from 'node:util'
import type * as X509 from '@peculiar/x509'
import { CertChainInvalid, ConfigInvalid } from '../errors.ts'
import { encodeTcb, tcbToHex } from '../snp/tcb.ts'
import { parseBundlePem, verifyAmdChain } from '../certs/amd-chain.ts'
import { encodeIa5String, encodeInteger } from '../certs/der.ts'
import type { AmdChain, ChainVerification } from '../certs/amd-chain.ts'
import { extensionsTcb } from '../certs/vcek-ext.ts'

/** The emulated ARK/ASK/VCEK with the VCEK's private key and the facts a report must carry. */
export interface EmulatedAmdChain {
  ark: X509Certificate
  ask: X509Certificate
  vcek: X509Certificate
  /** EC P-384 private key of the VCEK: never log it. */
  vcekKey: KeyObject
  /** 64 bytes, equal to the VCEK's hwID extension. */
  chipId: Buffer
  /** REPORTED_TCB (Milan layout), equal to the VCEK's SPL extensions. */
  reportedTcb: bigint
  product: 'Milan'
  /** X509Certificate.fingerprint256 of the ARK: the one value a verifier must be told to trust. */
  arkFingerprint: string
  /** ASK then ARK, PEM (the order of THIM's certificateChain and KDS cert_chain). */
  chainPem: string
  vcekPem: string
}

/** Security patch levels written into the VCEK and the reports (Milan TCB_VERSION parts). */
export interface EmulatedTcb { bootloader: number, tee: number, snp: number, microcode: number }

/** Options of generateEmulatedChain. */
export interface GenerateEmulatedChainOptions { tcb?: EmulatedTcb, chipId?: Buffer, now?: Date }

const PRODUCT = 'Milan'
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
 * (genuine Milan VCEK, docs/sev-snp.md §4.3). Pure: the generator and its tests share it.
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

  return assemble(toNode(arkCert), toNode(askCert), toNode(vcekCert), vcekPair.privateKey, Buffer.from(chipId),
    encodeTcb({ ...tcb, fmc: null }, PRODUCT))
}

function assemble (ark: X509Certificate, ask: X509Certificate, vcek: X509Certificate, vcekKey: KeyObject,
  chipId: Buffer, reportedTcb: bigint): EmulatedAmdChain {
  return {
    ark,
    ask,
    vcek,
    vcekKey,
    chipId,
    reportedTcb,
    product: PRODUCT,
    arkFingerprint: ark.fingerprint256,
    chainPem: ask.toString() + ark.toString(),
    vcekPem: vcek.toString()
  }
}

/** Labels naming where PEM input came from, for error messages (never the values themselves). */
export interface PemSource { key: string, chain: string }

function invalid (message: string, key: string, cause?: unknown): ConfigInvalid {
  return new ConfigInvalid(message, { details: { key }, ...(cause === undefined ? {} : { cause }) })
}

/**
 * Rebuilds an emulated chain from the VCEK's PEM private key and one PEM holding VCEK, ASK, ARK (in
 * that order), verified as a chain (trusting its own ARK) at `now`. Throws ConfigInvalid naming
 * `source.key`/`source.chain`, never their values.
 */
export function emulatedChainFromPem (vcekKeyPem: string, certChainPem: string, source: PemSource, now: Date = new Date()): EmulatedAmdChain {
  let chain: AmdChain
  let verified: ChainVerification
  try {
    chain = parseBundlePem(certChainPem)
    verified = verifyAmdChain(chain, { trustedArkFingerprints: [chain.ark.fingerprint256], now })
  } catch (err) {
    const why = err instanceof CertChainInvalid ? err.message : 'it does not parse'
    throw invalid(`${source.chain} is not a usable VCEK, ASK, ARK chain: ${why}`, source.chain, err)
  }
  const { extensions } = verified
  if (verified.signingKey !== 'vcek' || verified.generation !== PRODUCT || extensions.hwId?.length !== 64) {
    throw invalid(`${source.chain} must be a ${PRODUCT} VCEK chain with a 64-byte hwID (got a ${verified.generation ?? 'unknown'} ${verified.signingKey.toUpperCase()})`, source.chain)
  }
  let vcekKey: KeyObject
  try {
    vcekKey = createPrivateKey(vcekKeyPem)
  } catch {
    // The parser's error could quote key bytes: leave it out.
    throw invalid(`${source.key} is not a PEM private key`, source.key)
  }
  const spki = (k: KeyObject): Buffer => k.export({ type: 'spki', format: 'der' })
  if (vcekKey.type !== 'private' || !spki(createPublicKey(vcekKey)).equals(spki(chain.vcek.publicKey))) {
    throw invalid(`${source.key} does not match the public key of the VCEK in ${source.chain}; want the VCEK's EC P-384 private key`, source.key)
  }
  let tcb: bigint
  try {
    tcb = encodeTcb(extensionsTcb(extensions, PRODUCT), PRODUCT)
  } catch (err) {
    throw invalid(`${source.chain} VCEK lacks a TCB extension`, source.chain, err)
  }
  return assemble(chain.ark, chain.ask, chain.vcek, vcekKey, Buffer.from(extensions.hwId), tcb)
}

/** The chain as THIM serves it from IMDS (wire-protocols.md §5.1): all four members are strings. */
export function thimDocument (chain: EmulatedAmdChain): { vcekCert: string, tcbm: string, certificateChain: string, cacheControl: string } {
  return { vcekCert: chain.vcekPem, tcbm: tcbToHex(chain.reportedTcb), certificateChain: chain.chainPem, cacheControl: '86400' }
}

/** Options of loadOrCreateEmulatedChain. */
export interface LoadEmulatedChainOptions {
  /** Where the generated chain is cached; default defaultEmulatedCacheDir(). */
  cacheDir?: string
  /** SKR_SIMULATED_VCEK_KEY: the VCEK's PEM private key (with certChainPem, replaces the cache). */
  vcekKeyPem?: string
  /** SKR_SIMULATED_CERT_CHAIN: PEM VCEK, ASK, ARK. */
  certChainPem?: string
  now?: Date
  /** Makes a chain when the cache has no usable one; default generateEmulatedChain. */
  generate?: (now: Date) => Promise<EmulatedAmdChain>
  /**
   * Called with a line for a person before and after a chain is generated (seconds of work with
   * nothing else to show, on a first run); not called when the chain comes from the cache or PEM.
   * Callers print it on stderr, so a command's JSON on stdout stays parseable.
   */
  progress?: (message: string) => void
}

const CACHE_FILE = 'emulated-amd-chain.json'
const CACHE_FORMAT = 'skr-emulated-amd-chain/1'
const ENV_SOURCE: PemSource = { key: 'SKR_SIMULATED_VCEK_KEY', chain: 'SKR_SIMULATED_CERT_CHAIN' }

/** `${XDG_CACHE_HOME:-~/.cache}/skr` (XDG says a relative XDG_CACHE_HOME is to be ignored). */
export function defaultEmulatedCacheDir (env: Readonly<Record<string, string | undefined>> = process.env): string {
  const xdg = env.XDG_CACHE_HOME
  return join(xdg !== undefined && isAbsolute(xdg) ? xdg : join(homedir(), '.cache'), 'skr')
}

/**
 * The emulated chain: from vcekKeyPem + certChainPem when given (ConfigInvalid if they are
 * inconsistent), else from the cache in cacheDir, else freshly generated and cached (JSON, 0600,
 * written atomically). A corrupt or expired cache is regenerated; a cache that cannot be written is
 * skipped (the chain still works, it is just generated again next time).
 */
export async function loadOrCreateEmulatedChain (options: LoadEmulatedChainOptions = {}): Promise<EmulatedAmdChain> {
  const now = options.now ?? new Date()
  // An empty value counts as unset, so the message names the variable that is really missing.
  const vcekKeyPem = options.vcekKeyPem === '' ? undefined : options.vcekKeyPem
  const certChainPem = options.certChainPem === '' ? undefined : options.certChainPem
  if (vcekKeyPem !== undefined || certChainPem !== undefined) {
    if (vcekKeyPem === undefined) throw invalid(`${ENV_SOURCE.chain} is set but ${ENV_SOURCE.key} is not; set both or neither`, ENV_SOURCE.key)
    if (certChainPem === undefined) throw invalid(`${ENV_SOURCE.key} is set but ${ENV_SOURCE.chain} is not; set both or neither`, ENV_SOURCE.chain)
    return emulatedChainFromPem(vcekKeyPem, certChainPem, ENV_SOURCE, now)
  }
  const dir = options.cacheDir ?? defaultEmulatedCacheDir()
  const file = join(dir, CACHE_FILE)
  const cached = await readCache(file, now)
  if (cached.chain !== null) return cached.chain
  const generate = options.generate ?? (async (at: Date) => await generateEmulatedChain({ now: at }))
  const started = performance.now()
  options.progress?.(`generating the emulated AMD certificate chain (RSA-4096 keys: a few seconds, once; cached in ${dir})`)
  const chain = await writeCache(dir, file, await generate(now), cached.exists, now)
  options.progress?.(`emulated AMD certificate chain ready (${((performance.now() - started) / 1000).toFixed(1)} s)`)
  return chain
}

function errnoOf (err: unknown): unknown {
  return typeof err === 'object' && err !== null && 'code' in err ? err.code : undefined
}

async function readCache (file: string, now: Date): Promise<{ chain: EmulatedAmdChain | null, exists: boolean }> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    return { chain: null, exists: errnoOf(err) !== 'ENOENT' }
  }
  try {
    const doc: unknown = JSON.parse(text)
    if (typeof doc !== 'object' || doc === null || !('format' in doc) || doc.format !== CACHE_FORMAT ||
      !('vcekKeyPem' in doc) || typeof doc.vcekKeyPem !== 'string' ||
      !('certChainPem' in doc) || typeof doc.certChainPem !== 'string') return { chain: null, exists: true }
    // Verified at `now`, so an expired cache is regenerated like a corrupt one.
    return { chain: emulatedChainFromPem(doc.vcekKeyPem, doc.certChainPem, { key: file, chain: file }, now), exists: true }
  } catch {
    return { chain: null, exists: true }
  }
}

async function writeCache (dir: string, file: string, chain: EmulatedAmdChain, replace: boolean, now: Date): Promise<EmulatedAmdChain> {
  const body = JSON.stringify({
    format: CACHE_FORMAT,
    vcekKeyPem: chain.vcekKey.export({ type: 'pkcs8', format: 'pem' }),
    certChainPem: chain.vcekPem + chain.chainPem
  }) + '\n'
  const tmp = join(dir, `.${CACHE_FILE}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 })
    const fh = await open(tmp, 'wx', 0o600)
    try {
      await fh.chmod(0o600) // open()'s mode goes through the umask; the file holds a private key
      await fh.writeFile(body)
      await fh.sync()
    } finally {
      await fh.close()
    }
    if (!replace) {
      try {
        // link, unlike rename, fails when another process cached a chain first: then both use that one.
        await link(tmp, file)
        return chain
      } catch (err) {
        if (errnoOf(err) === 'EEXIST') {
          const theirs = await readCache(file, now)
          if (theirs.chain !== null) return theirs.chain
        }
      }
    }
    await rename(tmp, file)
    return chain
  } catch {
    return chain
  } finally {
    // Gone already after a rename; may be unreachable when the directory is not.
    await rm(tmp, { force: true }).catch(() => {})
  }
}
