// Verifies the signed JWS a vault returns from `release` before any byte of it is trusted
// (docs/protocols.md#key-release-response, docs/protocols.md#verifying-the-release-jws). Stricter than the reference sidecar, which checks neither
// request.kid, enc nor the nonce: a JWS replayed from another key or vault is refused here.
import { X509Certificate } from 'node:crypto'
import { decodeBase64Url } from '../encoding/base64.ts'
import { ReleaseUnverified } from '../errors.ts'
import { isObject } from '../text/untrusted.ts'
import { hostMatchesCert } from './host-match.ts'
import { verifyJwsSignature } from './jws-signature.ts'
import type { ReleaseEnc } from './key-hsm.ts'
import { asRootStore, type RootStore, type TrustedRoots } from './root-store.ts'
import type { SignerChainCache } from './signer-chain-cache.ts'

/** What was asked of the vault, and what the signer chain must end in. */
export interface VerifyReleaseOptions {
  /** host[:port] as called; matched on the hostname only. */
  vaultHost: string
  keyName: string
  keyVersion?: string
  enc: ReleaseEnc
  nonce?: string
  /** A RootStore (./root-store.ts: parsed on demand), or parsed certificates. */
  trustedRoots: TrustedRoots
  now?: Date
  /** Remembers chains that verified (the signature, host and binding are still checked every time). */
  chainCache?: SignerChainCache
}

/** `response.key.key` of a verified release: the wrapped key and how to read it. */
export interface ReleasedKeyDescriptor {
  kid: string
  kty: string
  key_ops?: string[]
  crv?: string
  key_hsm: string
}

/** A release JWS whose signature, signer chain, host and request binding all verified. */
export interface VerifiedRelease {
  header: Record<string, unknown>
  payload: Record<string, unknown>
  key: ReleasedKeyDescriptor
  signer: X509Certificate
}

/** The JWS algorithms a vault signer may use; `none` and the HMAC family can never verify. */
export const RELEASE_JWS_ALGS: readonly string[] = Object.freeze(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384'])

const MAX_JWS_LENGTH = 1024 * 1024
const MAX_PATH = 5
const SEGMENT = /^[A-Za-z0-9_-]+$/
const STD_B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1'
const EKU_ANY = '2.5.29.37.0'

function fail (check: string, message: string): ReleaseUnverified {
  return new ReleaseUnverified(`release JWS ${message}`, { details: { check } })
}

function jsonObject (bytes: Uint8Array | null): Record<string, unknown> | null {
  if (bytes === null) return null
  try {
    const value: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
    return isObject(value) ? value : null
  } catch {
    return null
  }
}

/** The DER of each x5c entry (padded standard base64, RFC 7515 §4.1.6), checked for shape only. */
function x5cDer (value: unknown): Buffer[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_PATH) throw fail('x5c', 'x5c missing or malformed')
  return value.map((entry) => {
    if (typeof entry !== 'string' || entry === '' || !STD_B64.test(entry)) throw fail('x5c', 'x5c missing or malformed')
    return Buffer.from(entry, 'base64')
  })
}

function parseX5c (ders: readonly Buffer[]): X509Certificate[] {
  return ders.map((der) => {
    try {
      return new X509Certificate(der)
    } catch {
      throw fail('x5c', 'x5c missing or malformed')
    }
  })
}

function issuedBy (child: X509Certificate, parent: X509Certificate): boolean {
  try {
    return child.checkIssued(parent) && child.verify(parent.publicKey)
  } catch {
    return false
  }
}

/**
 * Walks x5c in order (RFC 7515 §4.1.6) until a certificate is, or is issued by, a trusted root;
 * `issuersOf` gives the roots to try for each certificate.
 */
function buildPath (x5c: readonly X509Certificate[], roots: RootStore, issuersOf: (cert: X509Certificate) => readonly X509Certificate[]): X509Certificate[] {
  let current = x5c[0] as X509Certificate
  const path = [current]
  while (!roots.has(current)) {
    if (path.length >= MAX_PATH) throw fail('chain', 'signer chain does not reach a trusted root')
    const anchor = issuersOf(current).find((root) => issuedBy(current, root))
    if (anchor !== undefined) {
      path.push(anchor)
      break
    }
    const parent = x5c[path.length]
    if (parent === undefined || !issuedBy(current, parent)) throw fail('chain', 'signer chain does not reach a trusted root')
    path.push(parent)
    current = parent
  }
  return path
}

function checkPath (path: readonly X509Certificate[], now: Date): void {
  const t = now.getTime()
  path.forEach((cert, index) => {
    if (t < cert.validFromDate.getTime() || t > cert.validToDate.getTime()) throw fail('validity', 'signer chain certificate not valid now')
    if (index > 0 && !cert.ca) throw fail('ca', 'signer chain issuer is not a CA')
  })
  const eku = (path[0] as X509Certificate).keyUsage as string[] | undefined
  // Go's x509.Verify (the reference) demands serverAuth of a leaf that lists any EKU.
  if (eku !== undefined && !eku.includes(EKU_SERVER_AUTH) && !eku.includes(EKU_ANY)) throw fail('eku', 'signer certificate not for server auth')
}

function hostnameOf (vaultHost: string): string {
  if (typeof vaultHost !== 'string') throw new TypeError('verifyReleaseJws: vaultHost must be host[:port]')
  let url: URL
  try {
    url = new URL(`https://${vaultHost}`)
  } catch {
    throw new TypeError('verifyReleaseJws: vaultHost must be host[:port]')
  }
  if (vaultHost === '' || url.pathname !== '/' || url.username !== '' || url.search !== '' || url.hash !== '' || vaultHost.includes('/')) {
    throw new TypeError('verifyReleaseJws: vaultHost must be host[:port]')
  }
  return url.hostname
}

interface KeyId { hostname: string, name: string, version: string | undefined }

function parseKid (kid: unknown): KeyId | null {
  if (typeof kid !== 'string' || kid.length > 2048) return null
  try {
    const url = new URL(kid)
    if (url.protocol !== 'https:') return null
    const parts = url.pathname.replace(/\/$/, '').split('/').map(decodeURIComponent)
    if (parts.length < 3 || parts.length > 4 || parts[0] !== '' || parts[1]?.toLowerCase() !== 'keys') return null
    if (parts.slice(2).some((p) => p === '')) return null
    return { hostname: url.hostname, name: parts[2] as string, version: parts[3] }
  } catch {
    return null
  }
}

function namesAskedKey (kid: unknown, hostname: string, options: VerifyReleaseOptions): boolean {
  const id = parseKid(kid)
  if (id === null || id.hostname !== hostname) return false
  // Key Vault object names and versions are case-insensitive.
  if (id.name.toLowerCase() !== options.keyName.toLowerCase()) return false
  return options.keyVersion === undefined || id.version?.toLowerCase() === options.keyVersion.toLowerCase()
}

function releasedKey (payload: Record<string, unknown>): ReleasedKeyDescriptor {
  const response = payload['response']
  const outer = isObject(response) ? response['key'] : undefined
  const key = isObject(outer) ? outer['key'] : undefined
  if (!isObject(key)) throw fail('response.key', 'response key missing')
  const { kid, kty, key_ops: keyOps, crv, key_hsm: keyHsm } = key
  if (typeof kty !== 'string' || kty === '' || typeof keyHsm !== 'string' || keyHsm === '' || typeof kid !== 'string') {
    throw fail('response.key', 'response key missing kid, kty or key_hsm')
  }
  if (keyOps !== undefined && !(Array.isArray(keyOps) && keyOps.every((op) => typeof op === 'string'))) throw fail('response.key', 'response key_ops malformed')
  if (crv !== undefined && typeof crv !== 'string') throw fail('response.key', 'response key crv malformed')
  return { kid, kty, key_hsm: keyHsm, ...(keyOps === undefined ? {} : { key_ops: [...keyOps] }), ...(crv === undefined ? {} : { crv }) }
}

/**
 * Verifies a release JWS: compact form, an allowed `alg`, an `x5c` chain to `trustedRoots`, valid
 * at `now`, whose leaf names the vault host, the signature under that leaf, then the payload's
 * binding to the request (request.kid, enc, nonce) and response.key.key. Every failure is
 * ReleaseUnverified with a fixed message naming the check (`details.check`). With `chainCache`,
 * a chain that already verified is not rebuilt; everything else is checked every time.
 */
export async function verifyReleaseJws (jws: string, options: VerifyReleaseOptions): Promise<VerifiedRelease> {
  const hostname = hostnameOf(options.vaultHost)
  if (typeof jws !== 'string' || jws.length > MAX_JWS_LENGTH) throw fail('compact', 'is not a compact JWS')
  const segments = jws.split('.')
  if (segments.length !== 3 || !segments.every((s) => SEGMENT.test(s))) throw fail('compact', 'is not a compact JWS')

  const header = jsonObject(decodeBase64Url(segments[0] as string))
  if (header === null) throw fail('header', 'protected header malformed')
  const alg = header['alg']
  if (typeof alg !== 'string' || !RELEASE_JWS_ALGS.includes(alg)) throw fail('alg', 'alg not allowed')

  const ders = x5cDer(header['x5c'])
  const now = options.now ?? new Date()
  const roots = asRootStore(options.trustedRoots)
  const verifyChain = (): X509Certificate[] => {
    const x5c = parseX5c(ders)
    // First with the roots named as each certificate's issuer (parsing only those: ./root-store.ts),
    // then, if that gives no valid path, with every root in order, which is the whole search and
    // gives the answer (and the error) it always gave. A path the first finds anchors in a trusted
    // root and passes the same checks.
    try {
      const path = buildPath(x5c, roots, (cert) => roots.namedIssuers(cert))
      checkPath(path, now)
      return path
    } catch (err) {
      if (!(err instanceof ReleaseUnverified)) throw err
    }
    const path = buildPath(x5c, roots, () => roots.all())
    checkPath(path, now)
    return path
  }
  const signer = options.chainCache === undefined
    ? verifyChain()[0] as X509Certificate
    : options.chainCache.signerFor(ders, roots, now, verifyChain)
  if (!hostMatchesCert(hostname, signer)) throw fail('host', 'signer certificate does not name the vault host')

  // No JWS extension is understood here, so any `crit` must be refused (RFC 7515 §4.1.11).
  if (header['crit'] !== undefined) throw fail('signature', 'signature invalid')
  const signingInput = Buffer.from(`${segments[0] as string}.${segments[1] as string}`, 'ascii')
  const signature = decodeBase64Url(segments[2] as string)
  if (signature === null || !verifyJwsSignature(alg, signingInput, signature, signer.publicKey)) throw fail('signature', 'signature invalid')
  const payload = jsonObject(decodeBase64Url(segments[1] as string))
  if (payload === null) throw fail('payload', 'payload malformed')

  const request = payload['request']
  if (!isObject(request)) throw fail('request', 'payload has no request')
  if (!namesAskedKey(request['kid'], hostname, options)) throw fail('request.kid', 'request.kid does not name the requested key')
  if ((request['enc'] ?? 'CKM_RSA_AES_KEY_WRAP') !== options.enc) throw fail('request.enc', 'request.enc does not match')
  if (options.nonce !== undefined && request['nonce'] !== options.nonce) throw fail('request.nonce', 'nonce not echoed')

  const key = releasedKey(payload)
  if (!namesAskedKey(key.kid, hostname, options)) throw fail('response.key.kid', 'response key kid does not name the requested key')
  return { header, payload, key, signer }
}
