// The emulated environment's stand-in for Microsoft's signing transparency service (a CCF ledger):
// it "registers" a statement and returns a receipt shaped like the genuine one in
// test/fixtures/vectors/scitt-ccf-ledger: a COSE_Sign1 signed ES384 by the service's P-384 key,
// kid = hex SHA-256 of the key's SPKI, verifiable data structure 2 (CCF_LEDGER_SHA256), CWT claims
// (iss, sub, iat), a detached payload, and one inclusion proof whose leaf commits to SHA-256 of
// the statement. The tree is virtual (random sibling hashes): a verifier sees only the path, so the
// receipt is as checkable as a real one, with real crypto.
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto'
import { encode } from 'cborg'
import { toBeSigned } from '../uvm/cose-sign1.ts'
import { kidOf } from '../uvm/transparency-receipt.ts'

export const EMULATED_TRANSPARENCY_ISSUER = 'transparency.skr-emulator.invalid'

/** The emulated service. */
export interface TransparencyService {
  readonly issuer: string
  readonly kid: string
  readonly publicKey: KeyObject
  /** The service's keys as its /jwks serves them (what `skr verify --transparency-keys` reads). */
  jwks (): { keys: Array<Record<string, unknown>> }
  /** A receipt for a statement whose registered bytes (tag 18, empty unprotected header) are `registered`. */
  receipt (registered: Uint8Array, options?: { issuedAt?: Date }): Uint8Array
}

const sha256 = (...parts: Uint8Array[]): Buffer => {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return h.digest()
}

/** A fresh service key; each receipt gets a new transaction id. */
export function createTransparencyService (): TransparencyService {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' })
  const kid = kidOf(publicKey)
  let seqno = 100
  return {
    issuer: EMULATED_TRANSPARENCY_ISSUER,
    kid,
    publicKey,
    jwks: () => ({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid, alg: 'ES384' }] }),
    receipt (registered, options = {}) {
      seqno += 2
      const evidence = `ce:2.${seqno}:${randomBytes(32).toString('hex')}`
      const leaf = [randomBytes(32), evidence, sha256(registered)]
      const path: Array<[boolean, Buffer]> = [[true, randomBytes(32)], [false, randomBytes(32)], [true, randomBytes(32)]]
      // CCF leaf hash, then the path towards the root (draft-birkholz-cose-receipts-ccf-profile).
      let root = sha256(leaf[0] as Buffer, sha256(Buffer.from(evidence)), leaf[2] as Buffer)
      for (const [left, sibling] of path) root = left ? sha256(sibling, root) : sha256(root, sibling)
      const protectedBytes = encode(new Map<unknown, unknown>([
        [1, -35], [4, Buffer.from(kid)], [395, 2],
        [15, new Map<unknown, unknown>([[1, EMULATED_TRANSPARENCY_ISSUER], [2, 'scitt.ccf.signature.v1'], [6, Math.floor((options.issuedAt ?? new Date()).getTime() / 1000)]])],
        ['ccf.v1', new Map([['txid', `2.${seqno + 1}`]])]
      ]))
      const signature = sign('sha384', toBeSigned(protectedBytes, root), { key: privateKey, dsaEncoding: 'ieee-p1363' })
      const proof = encode(new Map<unknown, unknown>([[1, leaf], [2, path]]))
      return encode([protectedBytes, new Map([[396, new Map([[-1, [proof]]])]]), null, signature])
    }
  }
}
