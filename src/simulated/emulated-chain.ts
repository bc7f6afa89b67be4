// An emulated AMD SEV-SNP certificate chain (ARK -> ASK -> VCEK) for the simulated attestation
// backend. Names, serials, key types, RSASSA-PSS SHA-384 parameters and extensions follow AMD's
// Milan certificates (docs/sev-snp.md#amd-certificate-chain, docs/sev-snp.md#vcek-extensions; the VCEK's AMD extensions byte for byte),
// so every verifier path runs unchanged. Only the ARK fingerprint tells the chain apart: it is
// trusted by configuration alone (the genuine AMD ARKs are pinned elsewhere). This module holds the
// chain, rebuilds it from PEM and serves it as THIM does; ./emulated-chain-generator.ts makes a
// fresh one and ./emulated-chain-cache.ts keeps it on disk.
import { createPrivateKey, createPublicKey } from 'node:crypto'
import type { KeyObject, X509Certificate } from 'node:crypto'
import { CertChainInvalid, ConfigInvalid } from '../errors.ts'
import { encodeTcb, tcbToHex } from '../snp/tcb.ts'
import { parseBundlePem, verifyAmdChain } from '../certs/amd-chain.ts'
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

/** The product the emulated chain is for (AMD's name, as in the certificates' CNs). */
export const PRODUCT = 'Milan'

/** The chain from its parts; the fingerprint and PEMs are derived from the certificates. */
export function assembleEmulatedChain (ark: X509Certificate, ask: X509Certificate, vcek: X509Certificate, vcekKey: KeyObject,
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
  return assembleEmulatedChain(chain.ark, chain.ask, chain.vcek, vcekKey, Buffer.from(extensions.hwId), tcb)
}

/** The chain as THIM serves it from IMDS (docs/protocols.md#thim): all four members are strings. */
export function thimDocument (chain: EmulatedAmdChain): { vcekCert: string, tcbm: string, certificateChain: string, cacheControl: string } {
  return { vcekCert: chain.vcekPem, tcbm: tcbToHex(chain.reportedTcb), certificateChain: chain.chainPem, cacheControl: '86400' }
}
