// The AMD certificate chain of an offline verification, from the forms people have on disk: one
// PEM bundle VCEK+ASK+ARK (/attest/combined's endorsements, decoded), a VCEK (PEM or DER, as KDS
// serves it) plus an ASK+ARK PEM (KDS cert_chain), or a THIM document — as JSON (IMDS's answer) or
// base64 JSON (the security context's host-amd-cert-base64 file). Pure.
import { X509Certificate } from 'node:crypto'
import { parseChainPem, type AmdChain } from '../certs/amd-chain.ts'
import { splitPem, toPem } from '../certs/pem.ts'
import { parseThimDocument } from '../collateral/thim.ts'
import { CertChainInvalid, isSidecarError } from '../errors.ts'

/** A chain and what it was read from; `tcbm` is THIM's TCB claim when the input was a THIM document. */
export interface ChainInput {
  chain: AmdChain
  form: 'pem-bundle' | 'vcek-and-chain' | 'thim-json' | 'thim-base64'
  tcbm: bigint | null
}

const PEM_MARK = '-----BEGIN'

function vcekFrom (bytes: Buffer): X509Certificate {
  const text = bytes.toString('latin1')
  if (text.includes(PEM_MARK)) {
    const certs = splitPem(text)
    if (certs.length !== 1 || certs[0] === undefined) throw new CertChainInvalid(`VCEK file holds ${certs.length} certificates, want 1`)
    return certs[0]
  }
  try {
    const cert = new X509Certificate(bytes)
    if (cert.raw.length !== bytes.length) throw new CertChainInvalid('VCEK file has bytes after the DER certificate')
    return cert
  } catch (err) {
    if (isSidecarError(err)) throw err
    throw new CertChainInvalid('VCEK file is neither PEM nor a DER X.509 certificate', { cause: err })
  }
}

function fromThim (json: unknown, form: 'thim-json' | 'thim-base64'): ChainInput {
  let doc
  try {
    doc = parseThimDocument(json, 'security-context')
  } catch (err) {
    throw new CertChainInvalid(`not a THIM document: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
  return { chain: parseChainPem(doc.vcekPem, doc.chainPem), form, tcbm: doc.tcbm }
}

function parseJson (text: string, what: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw new CertChainInvalid(`${what} is not JSON`)
  }
}

/**
 * Reads the chain. With `vcekFile`, `chainFile` must be the ASK+ARK PEM; without it, `chainFile`
 * is a VCEK+ASK+ARK bundle or a THIM document (JSON or base64). Throws CertChainInvalid.
 */
export function chainFromFiles (chainFile: Buffer, vcekFile?: Buffer): ChainInput {
  const text = chainFile.toString('utf8').trim()
  if (vcekFile !== undefined) {
    if (!text.includes(PEM_MARK)) throw new CertChainInvalid('with a separate VCEK the chain file must be the ASK and ARK as PEM')
    return { chain: parseChainPem(toPem(vcekFrom(vcekFile)), text), form: 'vcek-and-chain', tcbm: null }
  }
  if (text.startsWith('{')) return fromThim(parseJson(text, 'chain file'), 'thim-json')
  if (text.includes(PEM_MARK)) {
    const certs = splitPem(text)
    if (certs.length === 2) throw new CertChainInvalid('chain file holds 2 certificates (ASK and ARK): give the VCEK with --vcek')
    if (certs.length !== 3) throw new CertChainInvalid(`chain file holds ${certs.length} certificates, want 3 (VCEK, ASK, ARK)`)
    const [vcek, ask, ark] = certs as [X509Certificate, X509Certificate, X509Certificate]
    return { chain: { vcek, ask, ark }, form: 'pem-bundle', tcbm: null }
  }
  const compact = text.replace(/\s+/g, '')
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(compact) && compact.length % 4 === 0) {
    const decoded = Buffer.from(compact, 'base64').toString('utf8').trim()
    if (decoded.startsWith('{')) return fromThim(parseJson(decoded, 'base64-decoded chain file'), 'thim-base64')
  }
  throw new CertChainInvalid('chain file is not a PEM bundle (VCEK, ASK, ARK), a THIM JSON document or a base64 host-amd-cert file')
}
