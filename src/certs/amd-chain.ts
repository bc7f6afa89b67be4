// The AMD certificate chain ARK -> ASK (or ASVK) -> VCEK (or VLEK) (docs/sev-snp.md#amd-certificate-chain,
// docs/sev-snp.md#verifying-a-report). Signatures go through node:crypto X509Certificate.verify, which handles AMD's
// RSASSA-PSS SHA-384; trust comes from pinning the ARK's SHA-256 fingerprint, never from the chain
// the host or THIM handed us.
import { X509Certificate } from 'node:crypto'
import { CertChainInvalid } from '../errors.ts'
import type { Generation } from '../snp/tcb.ts'
import { AMD_ARK_FINGERPRINTS } from './amd-roots.ts'
import { readCertFields } from './cert-fields.ts'
import { splitPem } from './pem.ts'
import { generationFromProductName, parseAmdExtensions } from './vcek-ext.ts'
import type { AmdCertExtensions } from './vcek-ext.ts'

/** A leaf and its issuers; `vcek` may be a VLEK, and then `ask` is the ASVK. */
export interface AmdChain { vcek: X509Certificate, ask: X509Certificate, ark: X509Certificate }

/** How to verify a chain: the pinned ARKs (default: AMD's three) and the clock. */
export interface ChainVerifyOptions {
  /** fingerprint256 values ("AB:CD:…"); the simulator's emulated ARK is added here by configuration. */
  trustedArkFingerprints?: readonly string[]
  now?: Date
}

/** What a verified chain tells about the leaf. */
export interface ChainVerification {
  generation: Generation | null
  extensions: AmdCertExtensions
  signingKey: 'vcek' | 'vlek'
}

type Link = 'vcek' | 'ask' | 'ark'
const NAMES: Readonly<Record<Link, string>> = { vcek: 'VCEK', ask: 'ASK', ark: 'ARK' }

function fail (link: Link, check: string, message: string): CertChainInvalid {
  return new CertChainInvalid(`${NAMES[link]} ${message}`, { details: { link, check } })
}

/** Parses a VCEK PEM and a THIM/KDS chain PEM (ASK then ARK); throws CertChainInvalid on wrong counts. */
export function parseChainPem (vcekPem: string, chainPem: string): AmdChain {
  const leaf = splitPem(vcekPem)
  const chain = splitPem(chainPem)
  if (leaf.length !== 1) throw new CertChainInvalid(`VCEK PEM holds ${leaf.length} certificates, want 1`)
  if (chain.length !== 2) throw new CertChainInvalid(`chain PEM holds ${chain.length} certificates, want 2 (ASK then ARK)`)
  const [vcek] = leaf as [X509Certificate]
  const [ask, ark] = chain as [X509Certificate, X509Certificate]
  return { vcek, ask, ark }
}

/** Parses one PEM holding VCEK, ASK and ARK in that order. */
export function parseBundlePem (pem: string): AmdChain {
  const certs = splitPem(pem)
  if (certs.length !== 3) throw new CertChainInvalid(`certificate bundle holds ${certs.length} certificates, want 3 (VCEK, ASK, ARK)`)
  const [vcek, ask, ark] = certs as [X509Certificate, X509Certificate, X509Certificate]
  return { vcek, ask, ark }
}

// node:crypto certificates are immutable, so their parsed subject CNs can be kept per object.
const cnCache = new WeakMap<X509Certificate, readonly string[]>()

function commonName (cert: X509Certificate, link: Link): string {
  let cns = cnCache.get(cert)
  if (cns === undefined) {
    try {
      cns = Object.freeze(readCertFields(cert.raw).subjectCommonNames)
    } catch (err) {
      throw new CertChainInvalid(`${NAMES[link]} subject cannot be parsed`, { cause: err, details: { link, check: 'subject' } })
    }
    cnCache.set(cert, cns)
  }
  if (cns.length !== 1 || cns[0] === undefined) throw fail(link, 'subject', `subject has ${cns.length} CNs, want 1`)
  return cns[0]
}

function normalizeFingerprint (fp: string): string {
  return fp.replace(/[\s:]/g, '').toUpperCase()
}

function signedBy (cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey)
  } catch {
    // verify throws when the issuer key cannot check this signature algorithm at all.
    return false
  }
}

function checkValidity (cert: X509Certificate, link: Link, now: Date): void {
  const from = new Date(cert.validFrom)
  const to = new Date(cert.validTo)
  if (!(now >= from && now <= to)) {
    throw fail(link, 'validity', `is valid from ${from.toISOString()} to ${to.toISOString()}, not at ${now.toISOString()}`)
  }
}

function checkInput (chain: AmdChain): void {
  for (const link of ['vcek', 'ask', 'ark'] as const) {
    if (!((chain as Partial<AmdChain> | null)?.[link] instanceof X509Certificate)) {
      throw new TypeError(`chain.${link} must be a node:crypto X509Certificate`)
    }
  }
}

/**
 * Verifies ARK (pinned, self-signed) -> ASK/ASVK -> VCEK/VLEK at `now`: signatures, names, CA
 * flags, validity, the leaf's P-384 key and its AMD extensions. Throws CertChainInvalid naming the
 * failing link.
 */
export function verifyAmdChain (chain: AmdChain, options: ChainVerifyOptions = {}): ChainVerification {
  checkInput(chain)
  const { vcek, ask, ark } = chain
  const now = options.now ?? new Date()
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) throw new TypeError('options.now must be a valid Date')
  const trusted = new Set((options.trustedArkFingerprints ?? Object.values(AMD_ARK_FINGERPRINTS)).map(normalizeFingerprint))

  const arkCn = commonName(ark, 'ark')
  const product = /^ARK-(.+)$/.exec(arkCn)?.[1]
  if (product === undefined) throw fail('ark', 'subject', `subject CN is "${arkCn}", want "ARK-<product>"`)
  if (!trusted.has(normalizeFingerprint(ark.fingerprint256))) {
    throw fail('ark', 'pin', `fingerprint ${ark.fingerprint256} is not one of the ${trusted.size} trusted ARK fingerprints`)
  }
  if (!signedBy(ark, ark)) throw fail('ark', 'signature', `"${arkCn}" is not self-signed`)
  if (ark.ca !== true) throw fail('ark', 'ca', 'is not a CA certificate (basicConstraints cA is not true)')

  const askCn = commonName(ask, 'ask')
  let signingKey: 'vcek' | 'vlek'
  if (askCn === `SEV-${product}`) signingKey = 'vcek'
  else if (askCn === `SEV-VLEK-${product}`) signingKey = 'vlek'
  else throw fail('ask', 'subject', `subject CN is "${askCn}", want "SEV-${product}" or "SEV-VLEK-${product}"`)
  if (!signedBy(ask, ark)) throw fail('ask', 'signature', `"${askCn}" is not signed by "${arkCn}"`)
  if (ask.ca !== true) throw fail('ask', 'ca', 'is not a CA certificate (basicConstraints cA is not true)')

  const leafCn = commonName(vcek, 'vcek')
  const wantCn = signingKey === 'vcek' ? 'SEV-VCEK' : 'SEV-VLEK'
  if (leafCn !== wantCn) throw fail('vcek', 'subject', `subject CN is "${leafCn}", want "${wantCn}" under "${askCn}"`)
  if (!signedBy(vcek, ask)) throw fail('vcek', 'signature', `"${leafCn}" is not signed by "${askCn}"`)
  if (vcek.ca) throw fail('vcek', 'ca', 'is a CA certificate, want an end-entity certificate')
  const key = vcek.publicKey
  const curve = key.asymmetricKeyDetails?.namedCurve
  if (key.asymmetricKeyType !== 'ec' || curve !== 'secp384r1') {
    throw fail('vcek', 'key', `public key is ${key.asymmetricKeyType ?? 'unknown'}${curve === undefined ? '' : ` ${curve}`}, want ec secp384r1`)
  }

  for (const [link, cert] of [['ark', ark], ['ask', ask], ['vcek', vcek]] as const) checkValidity(cert, link, now)

  const extensions = parseAmdExtensions(vcek)
  const arkGeneration = generationFromProductName(product)
  let generation = arkGeneration
  if (extensions.productName !== null) {
    const named = generationFromProductName(extensions.productName)
    if (arkGeneration !== null && named !== arkGeneration) {
      throw fail('vcek', 'product', `productName "${extensions.productName}" does not belong under "${arkCn}"`)
    }
    generation = named
  }
  return { generation, extensions, signingKey }
}
