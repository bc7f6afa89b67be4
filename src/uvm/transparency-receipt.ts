// Transparency receipts on UVM endorsements. Since 2026 Microsoft registers each UVM endorsement
// with its signing transparency service (a CCF ledger, issuer esrp-cts-db.confidential-ledger.azure.com)
// and ACI ships the statement with the service's receipt in its unprotected header (label 394).
// A receipt is itself a COSE_Sign1 whose payload is detached: it is the Merkle root the verifier
// recomputes from the inclusion proof (draft-ietf-cose-merkle-tree-proofs; the CCF tree,
// draft-birkholz-cose-receipts-ccf-profile). What is checked offline, and what is not, is in
// docs/security.md ("UVM endorsements and their receipts").
import { createHash, createPublicKey, KeyObject, X509Certificate, type JsonWebKeyInput } from 'node:crypto'
import {
  algorithmOf, CWT, decodeCbor, decodeCoseSign1, HEADER, invalid, signatureVerifies, toBeSigned, withoutUnprotected, type CoseSign1
} from './cose-sign1.ts'
import { MICROSOFT_TRANSPARENCY_ISSUER, MICROSOFT_TRANSPARENCY_SPKIS } from './transparency-keys.ts'

/** A service key a receipt may be signed with; kid = hex SHA-256 of its SubjectPublicKeyInfo DER (as the service names it). */
export interface TransparencyKey {
  kid: string
  key: KeyObject
  /** When set, receipts signed with this key must name this issuer. */
  issuer?: string
  /** Where the key came from, for messages. */
  source: string
}

/** What a receipt states, before any check. */
export interface ReceiptInfo {
  issuer: string | null
  /** The ledger transaction that holds the statement (CCF "view.seqno"), from the leaf's commit evidence. */
  txid: string | null
  /** Receipt CWT iat, seconds since the epoch. */
  issuedAt: number | null
  kid: string
}

/** The outcome of checking a statement's receipts. */
export type ReceiptStatus =
  | { status: 'absent' }
  /** Inclusion proof, data hash and service signature all verified. */
  | { status: 'verified', receipts: ReceiptInfo[], keySource: string }
  /** The proof is consistent with the statement but no trusted key has the receipt's kid: the signature is unchecked. */
  | { status: 'unknown-key', receipts: ReceiptInfo[] }

const CCF_LEDGER_SHA256 = 2
const INCLUSION_PROOFS = -1
const sha256 = (...parts: Uint8Array[]): Buffer => {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return h.digest()
}

/** The kid a CCF service gives its key: lowercase hex SHA-256 of the SPKI DER. */
export function kidOf (key: KeyObject): string {
  return sha256(key.export({ type: 'spki', format: 'der' })).toString('hex')
}

let pinned: TransparencyKey[] | undefined

/** Microsoft's pinned service keys (src/uvm/transparency-keys.ts), each bound to the issuer it signs for. */
export function microsoftTransparencyKeys (): TransparencyKey[] {
  pinned ??= MICROSOFT_TRANSPARENCY_SPKIS.map((b64) => {
    const key = createPublicKey({ key: Buffer.from(b64, 'base64'), format: 'der', type: 'spki' })
    return { kid: kidOf(key), key, issuer: MICROSOFT_TRANSPARENCY_ISSUER, source: 'built-in Microsoft' }
  })
  return pinned
}

function bytes32 (value: unknown, what: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== 32) throw invalid('receipt', `${what} is not a 32-byte string`)
  return value
}

/** Recomputes the Merkle root from one CCF inclusion proof; returns it with the leaf's data hash and commit evidence. */
function rootOf (proofBytes: unknown): { root: Buffer, dataHash: Uint8Array, evidence: string } {
  if (!(proofBytes instanceof Uint8Array)) throw invalid('receipt', 'inclusion proof is not a byte string')
  const proof = decodeCbor(proofBytes, 'inclusion proof', 'receipt')
  if (!(proof instanceof Map)) throw invalid('receipt', 'inclusion proof is not a map')
  const leaf = proof.get(1)
  const path = proof.get(2)
  if (!Array.isArray(leaf) || leaf.length !== 3) throw invalid('receipt', 'inclusion proof leaf is not [hash, evidence, data hash]')
  const [internalHash, evidence, dataHash] = leaf as unknown[]
  if (typeof evidence !== 'string' || evidence.length === 0 || Buffer.byteLength(evidence) > 1024) {
    throw invalid('receipt', 'inclusion proof evidence is not a text string of 1..1024 bytes')
  }
  if (!Array.isArray(path)) throw invalid('receipt', 'inclusion proof path is not an array')
  // The CCF leaf hash, then one step per path element, towards the root.
  let node = sha256(bytes32(internalHash, 'leaf transaction hash'), sha256(Buffer.from(evidence, 'utf8')), bytes32(dataHash, 'leaf data hash'))
  for (const step of path as unknown[]) {
    if (!Array.isArray(step) || step.length !== 2 || typeof step[0] !== 'boolean') throw invalid('receipt', 'inclusion proof path element is not [bool, hash]')
    const sibling = bytes32(step[1], 'inclusion proof path hash')
    node = step[0] ? sha256(sibling, node) : sha256(node, sibling)
  }
  return { root: node, dataHash: dataHash as Uint8Array, evidence }
}

function infoOf (receipt: CoseSign1, evidence: string): ReceiptInfo {
  const kid = receipt.protectedHeader.get(HEADER.kid)
  if (!(kid instanceof Uint8Array) || kid.length === 0) throw invalid('receipt', 'receipt has no kid')
  const claims = receipt.protectedHeader.get(HEADER.cwtClaims)
  const cwt = claims instanceof Map ? claims : new Map()
  const issuer = cwt.get(CWT.iss)
  const iat = cwt.get(CWT.iat)
  // Commit evidence is "ce:<view>.<seqno>:<hex>" (CCF's format); the txid is its middle part.
  const txid = /^ce:(\d+\.\d+):/.exec(evidence)?.[1] ?? null
  return {
    issuer: typeof issuer === 'string' ? issuer : null,
    txid,
    issuedAt: typeof iat === 'number' && Number.isSafeInteger(iat) ? iat : null,
    kid: Buffer.from(kid).toString('utf8')
  }
}

/** The receipts of a statement (unprotected label 394), each decoded; [] when there are none. */
function receiptsOf (statement: CoseSign1): CoseSign1[] {
  const raw = statement.unprotectedHeader.get(HEADER.receipts)
  if (raw === undefined) return []
  if (!Array.isArray(raw) || raw.length === 0) throw invalid('receipt', 'receipts header (394) is not a non-empty array')
  return raw.map((r, i) => {
    if (!(r instanceof Uint8Array)) throw invalid('receipt', `receipt ${i} is not a byte string`)
    return decodeCoseSign1(r, `receipt ${i}`, 'receipt')
  })
}

/** How many receipts the statement carries (no check). */
export function receiptCount (statement: CoseSign1): number {
  const raw = statement.unprotectedHeader.get(HEADER.receipts)
  return Array.isArray(raw) ? raw.length : 0
}

/**
 * Checks every receipt of `statement`: it is a CCF-ledger receipt (vds 2) with a detached payload;
 * each inclusion proof's data hash is SHA-256 of the statement as registered (unprotected header
 * emptied) and all proofs lead to the same root; that root's signature verifies under the trusted
 * key whose kid the receipt names (and whose issuer, when pinned, the receipt names). A receipt
 * whose kid no trusted key has is 'unknown-key' (the proof was still checked). Throws
 * UvmEndorsementInvalid (check 'receipt') on anything inconsistent.
 */
export function checkReceipts (statement: CoseSign1, keys: readonly TransparencyKey[] = microsoftTransparencyKeys()): ReceiptStatus {
  const receipts = receiptsOf(statement)
  if (receipts.length === 0) return { status: 'absent' }
  const expectedDataHash = sha256(withoutUnprotected(statement))
  const infos: ReceiptInfo[] = []
  let unknownKey = false
  let keySource = ''
  for (const [i, receipt] of receipts.entries()) {
    const alg = algorithmOf(receipt.protectedHeader, 'ecdsa', `receipt ${i}`, 'receipt')
    if (receipt.protectedHeader.get(HEADER.verifiableDataStructure) !== CCF_LEDGER_SHA256) {
      throw invalid('receipt', `receipt ${i}: verifiable data structure is not CCF_LEDGER_SHA256 (2)`)
    }
    if (receipt.payload !== null) throw invalid('receipt', `receipt ${i}: payload is not detached (the root must be recomputed)`)
    const proofs = receipt.unprotectedHeader.get(HEADER.verifiableDataProofs)
    const inclusion = proofs instanceof Map ? proofs.get(INCLUSION_PROOFS) : undefined
    if (!Array.isArray(inclusion) || inclusion.length === 0) throw invalid('receipt', `receipt ${i}: no inclusion proof (396 / -1)`)
    const computed = inclusion.map(rootOf)
    const first = computed[0] as ReturnType<typeof rootOf>
    for (const c of computed) {
      if (!expectedDataHash.equals(c.dataHash)) throw invalid('receipt', `receipt ${i}: the proof's data hash is not the hash of this statement`)
      if (!c.root.equals(first.root)) throw invalid('receipt', `receipt ${i}: inclusion proofs lead to different roots`)
    }
    const info = infoOf(receipt, first.evidence)
    infos.push(info)
    const key = keys.find((k) => k.kid === info.kid)
    if (key === undefined) {
      unknownKey = true
      continue
    }
    if (key.issuer !== undefined && info.issuer !== key.issuer) {
      throw invalid('receipt', `receipt ${i}: kid ${info.kid} belongs to ${key.issuer}, the receipt names ${String(info.issuer)}`)
    }
    if (!signatureVerifies(alg, key.key, toBeSigned(receipt.protectedBytes, first.root), receipt.signature)) {
      throw invalid('receipt', `receipt ${i}: signature does not verify under the ${key.source} key ${info.kid}`)
    }
    keySource = key.source
  }
  return unknownKey ? { status: 'unknown-key', receipts: infos } : { status: 'verified', receipts: infos, keySource }
}

function unique (keys: TransparencyKey[]): TransparencyKey[] {
  return keys.filter((k, i) => keys.findIndex((o) => o.kid === k.kid) === i)
}

function keyFrom (input: KeyObject | Parameters<typeof createPublicKey>[0], source: string): TransparencyKey {
  const key = input instanceof KeyObject ? input : createPublicKey(input)
  if (key.asymmetricKeyType !== 'ec') throw new TypeError(`${source}: not an EC public key`)
  // Operator-supplied keys are trusted for any issuer: the receipt's issuer claim is shown, not checked.
  return { kid: kidOf(key), key, source }
}

/**
 * Reads service keys from a file's text: a JWKS (`{"keys":[…]}`, as the service's /jwks serves),
 * a CCF trust store (`{"parameters":[{"serviceCertificate": base64 DER}]}`), or PEM certificates /
 * public keys. The kid is always computed from the key, never taken from the file.
 */
export function parseTransparencyKeys (text: string, source: string): TransparencyKey[] {
  const trimmed = text.trim()
  if (trimmed.startsWith('{')) {
    const doc = JSON.parse(trimmed) as { keys?: unknown, parameters?: unknown }
    if (Array.isArray(doc.keys)) return unique(doc.keys.map((jwk) => keyFrom({ key: jwk as JsonWebKeyInput['key'], format: 'jwk' }, source)))
    if (Array.isArray(doc.parameters)) {
      return unique(doc.parameters.map((p: { serviceCertificate?: unknown }) => {
        if (typeof p?.serviceCertificate !== 'string') throw new TypeError(`${source}: a parameters entry has no serviceCertificate`)
        return keyFrom(new X509Certificate(Buffer.from(p.serviceCertificate, 'base64')).publicKey, source)
      }))
    }
    throw new TypeError(`${source}: JSON is neither a JWKS ({"keys":[…]}) nor a trust store ({"parameters":[…]})`)
  }
  const blocks = trimmed.match(/-----BEGIN ([A-Z ]+)-----[\s\S]+?-----END \1-----/g) ?? []
  if (blocks.length === 0) throw new TypeError(`${source}: no JWKS, trust store or PEM found`)
  return unique(blocks.map((pem) => keyFrom(pem.includes('CERTIFICATE') ? new X509Certificate(pem).publicKey : pem, source)))
}
