// The emulated environment's stand-in for Microsoft's UVM signing service: a throwaway signing
// chain (root CA → leaf with the ContainerPlat code-signing EKU) that issues UVM reference infos
// (COSE_Sign1, PS384) in either layout ACI has shipped (src/uvm/reference-info.ts):
//   json-payload: text protected-header entries `iss` (a did:x509 naming the root and the EKU),
//     `feed` and `signingtime`, and a JSON payload with the launch measurement and the guest SVN
//     (as the genuine vector test/fixtures/vectors/azure-aci-milan/body.uvm_reference_info.bin);
//   cwt-claims: a CWT-claims header (iss, sub = feed, iat, svn), a SHA-384 hash envelope whose
//     payload is the 48-byte measurement, and a receipt from the emulated transparency service in
//     the unprotected header (as test/fixtures/vectors/scitt-ccf-ledger/uvm_0.2.10.cose).
// On real ACI every container group has one in its security context, and MAA issues
// `x-ms-compliance-status: azure-compliant-uvm` only after validating it; the emulated MAA does the
// same when told to trust this root, so a release policy that requires the claim (the default of
// `skr import-key` and `skr policy` for ACI) works end to end in the emulated environment too.
import 'reflect-metadata' // @peculiar/x509 pulls in tsyringe, which needs the Reflect polyfill first
import { constants, createHash, KeyObject, sign, webcrypto, X509Certificate } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import { encode, Tagged } from 'cborg'
import { toBeSigned, withoutUnprotected } from '../uvm/cose-sign1.ts'
import type { UvmEndorsementLayout } from '../uvm/reference-info.ts'
import { createTransparencyService, type TransparencyService } from './transparency-service.ts'

/** The EKU of Microsoft's ContainerPlat UVM signing leaf (as in the genuine endorsement's `iss`). */
export const UVM_SIGNING_EKU = '1.3.6.1.4.1.311.76.59.1.2'
/** The feed the emulated endorsements name. */
export const EMULATED_UVM_FEED = 'ContainerPlat-AMD-UVM'

/** What one endorsement states. */
export interface EndorsementClaims {
  /** The report's MEASUREMENT (48 bytes). */
  launchMeasurement: Buffer
  /** The UVM's guest SVN, as Microsoft's feed writes it (a decimal string). */
  guestSvn: string
  /** Signing time; default now. */
  signingTime?: Date
  /** Default 'cwt-claims', what ACI ships since 2026. */
  layout?: UvmEndorsementLayout
  /** cwt-claims only: attach the transparency service's receipt (default true). */
  receipt?: boolean
}

/** A signing service for emulated UVM endorsements. */
export interface UvmEndorser {
  /** SHA-256 fingerprint of the root (X509Certificate.fingerprint256): what a verifier must trust. */
  readonly rootFingerprint: string
  readonly rootPem: string
  /** The transparency service whose receipts cwt-claims endorsements carry. */
  readonly transparency: TransparencyService
  /** A COSE_Sign1 UVM reference info for `claims`. */
  endorse (claims: EndorsementClaims): Buffer
}

const crypto = webcrypto
const DAY_MS = 24 * 60 * 60 * 1000
const PSS_KEY = { name: 'RSA-PSS', hash: 'SHA-384', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) }
const PSS_SIGN = { name: 'RSA-PSS', saltLength: 48 }
// COSE: alg (1) PS384 = -38, content type (3), CWT claims (15), x5chain (33), payload-hash-alg (258)
// SHA-384 = -43, preimage content type (259), receipts (394); tag 18 = COSE_Sign1, tag 1 = epoch time.
const ALG_PS384 = -38
const SHA384 = -43

function serial (): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  bytes[0] = ((bytes[0] ?? 0) & 0x3f) | 0x40
  return Buffer.from(bytes).toString('hex')
}

/** Creates the chain (valid from a day before `now` for ten years) and the signer. */
export async function createUvmEndorser (options: { now?: Date } = {}): Promise<UvmEndorser> {
  const notBefore = new Date((options.now ?? new Date()).getTime() - DAY_MS)
  const notAfter = new Date(notBefore.getTime() + 10 * 365 * DAY_MS)
  const rootKeys = await crypto.subtle.generateKey(PSS_KEY, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair
  const leafKeys = await crypto.subtle.generateKey(PSS_KEY, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: 'CN=skr emulated UVM signing root, O=skr emulator',
    keys: rootKeys,
    signingAlgorithm: PSS_SIGN,
    notBefore,
    notAfter,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)]
  }, crypto)
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: 'CN=skr emulated ContainerPlat UVM signing, O=skr emulator',
    issuer: root.subject,
    publicKey: leafKeys.publicKey,
    signingKey: rootKeys.privateKey,
    signingAlgorithm: PSS_SIGN,
    notBefore,
    notAfter,
    extensions: [new x509.ExtendedKeyUsageExtension([UVM_SIGNING_EKU]), new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true)]
  }, crypto)
  const rootDer = Buffer.from(root.rawData)
  const leafDer = Buffer.from(leaf.rawData)
  const leafKey = KeyObject.from(leafKeys.privateKey)
  const transparency = createTransparencyService()
  const issuer = `did:x509:0:sha256:${createHash('sha256').update(rootDer).digest('base64url')}::eku:${UVM_SIGNING_EKU}`

  return {
    rootFingerprint: new X509Certificate(rootDer).fingerprint256,
    rootPem: root.toString('pem'),
    transparency,
    endorse (claims) {
      if (!Buffer.isBuffer(claims.launchMeasurement) || claims.launchMeasurement.length !== 48) throw new TypeError('launchMeasurement must be 48 bytes')
      const signingTime = Math.floor((claims.signingTime ?? new Date()).getTime() / 1000)
      const cwt = (claims.layout ?? 'cwt-claims') === 'cwt-claims'
      if (cwt && !/^\d+$/.test(claims.guestSvn)) throw new TypeError('guestSvn must be a decimal integer for the cwt-claims layout')
      const protectedBytes = encode(new Map<unknown, unknown>(cwt
        ? [
            [1, ALG_PS384],
            [15, new Map<unknown, unknown>([[1, issuer], [2, EMULATED_UVM_FEED], [6, new Tagged(1, signingTime)], ['svn', Number(claims.guestSvn)]])],
            [33, [leafDer, rootDer]], [258, SHA384], [259, 'application/octet-stream']
          ]
        : [
            [1, ALG_PS384], [3, 'application/json'], [33, [leafDer, rootDer]],
            ['iss', issuer], ['feed', EMULATED_UVM_FEED], ['signingtime', new Tagged(1, signingTime)]
          ]))
      const payload = cwt
        ? claims.launchMeasurement
        : Buffer.from(JSON.stringify({
          'x-ms-sevsnpvm-guestsvn': claims.guestSvn,
          'x-ms-sevsnpvm-launchmeasurement': claims.launchMeasurement.toString('hex')
        }))
      const signature = sign('sha384', toBeSigned(protectedBytes, payload), { key: leafKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 })
      const registered = withoutUnprotected({ protectedBytes, protectedHeader: new Map(), unprotectedHeader: new Map(), payload, signature })
      if (!cwt || claims.receipt === false) return Buffer.from(registered)
      const receipt = transparency.receipt(registered, claims.signingTime === undefined ? {} : { issuedAt: claims.signingTime })
      return Buffer.from(encode(new Tagged(18, [protectedBytes, new Map([[394, [receipt]]]), payload, signature])))
    }
  }
}
