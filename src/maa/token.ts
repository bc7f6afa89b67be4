// Verification of an MAA attestation token (docs/protocols.md#maa-token, docs/protocols.md#maa-signing-keys): the signature
// against the expected issuer's /certs keys, the issuer and the lifetime, with jose. The issuer is
// derived from the endpoint skr was told to use, never from the token: a token's own `iss` or
// `jku` never makes us fetch keys from a URL of its choosing.
import { decodeBase64Url } from '../encoding/base64.ts'
import { decodeProtectedHeader, jwtVerify } from 'jose'
import type { ProtectedHeaderParameters } from 'jose'
import { MaaTokenInvalid, SidecarError } from '../errors.ts'
import { isObject } from '../text/untrusted.ts'
import type { JwksCache } from './jwks-cache.ts'

/** What verifyMaaToken needs: the MAA endpoint (host[:port]), the key source and optionally the clock. */
export interface VerifyMaaTokenOptions {
  endpoint: string
  jwks: JwksCache
  now?: Date
  signal?: AbortSignal
}

/** The signature algorithms an MAA token may use (MAA signs RS256; the RSA family is allowed, nothing else). */
export const MAA_TOKEN_ALGORITHMS: readonly string[] = Object.freeze(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'])

const CLOCK_TOLERANCE_S = 60

function invalid (check: string, message: string, cause?: unknown): MaaTokenInvalid {
  return new MaaTokenInvalid(message, { details: { check }, ...(cause === undefined ? {} : { cause }) })
}

/** The issuer MAA puts in tokens for an endpoint: https://{host[:port]}, host lowercased, no trailing slash. */
export function issuerFor (endpoint: string): string {
  if (typeof endpoint !== 'string' || endpoint === '' || /[/?#@\s]/.test(endpoint)) {
    throw new TypeError('endpoint must be a bare host[:port]')
  }
  return `https://${endpoint.toLowerCase()}`
}

function headerOf (token: string): ProtectedHeaderParameters {
  if (typeof token !== 'string' || token.split('.').length !== 3) throw invalid('format', 'MAA token is not a compact JWS')
  try {
    return decodeProtectedHeader(token)
  } catch (err) {
    throw invalid('format', 'MAA token header is not decodable', err)
  }
}

// Fixed messages per failed check: jose's own texts may quote claim values.
function mapJoseError (err: unknown): SidecarError {
  if (err instanceof SidecarError) return err
  const code = (err as { code?: unknown } | null)?.code
  const claim = (err as { claim?: unknown } | null)?.claim
  switch (code) {
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return invalid('signature', 'MAA token signature does not verify under the issuer\'s key', err)
    case 'ERR_JWT_EXPIRED':
      return invalid('exp', 'MAA token has expired', err)
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return invalid('alg', 'MAA token algorithm is not allowed', err)
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED': {
      const name = typeof claim === 'string' ? claim : 'claims'
      if (name === 'iss') return invalid('iss', 'MAA token issuer is not the MAA endpoint that was asked', err)
      if (name === 'nbf') return invalid('nbf', 'MAA token is not yet valid', err)
      if (name === 'exp') return invalid('exp', 'MAA token has no valid expiry', err)
      if (name === 'iat') return invalid('iat', 'MAA token issue time is invalid', err)
      return invalid('claims', 'MAA token claims are invalid', err)
    }
    case 'ERR_JWT_INVALID':
    case 'ERR_JWS_INVALID':
      return invalid('format', 'MAA token is malformed', err)
    default:
      return invalid('key', 'MAA token could not be verified with the issuer\'s key', err)
  }
}

/**
 * Verifies an MAA token and returns its claims: alg in MAA_TOKEN_ALGORITHMS, `jku` (if present)
 * equal to the issuer's /certs, signature under the key the issuer's /certs gives for `kid`, `iss`
 * equal to https://{endpoint} (with or without a trailing slash), `exp` present and not past,
 * `nbf` not future (60 s tolerance). Failures throw MaaTokenInvalid with details.check; failures
 * to fetch /certs surface as the upstream's own errors.
 */
export async function verifyMaaToken (token: string, options: VerifyMaaTokenOptions): Promise<Record<string, unknown>> {
  const issuer = issuerFor(options.endpoint)
  const header = headerOf(token)
  if (typeof header.alg !== 'string' || !MAA_TOKEN_ALGORITHMS.includes(header.alg)) {
    throw invalid('alg', 'MAA token algorithm is not allowed')
  }
  if (typeof header.kid !== 'string' || header.kid === '') throw invalid('kid', 'MAA token header has no kid')
  if (header.jku !== undefined) {
    const jku = typeof header.jku === 'string' ? header.jku.toLowerCase().replace(/\/+$/, '') : null
    if (jku !== `${issuer}/certs`) throw invalid('jku', 'MAA token jku is not the issuer\'s /certs')
  }
  const key = await options.jwks.keyFor(issuer, header.kid, options.signal)
  try {
    const { payload } = await jwtVerify(token, key, {
      algorithms: [...MAA_TOKEN_ALGORITHMS],
      issuer: [issuer, `${issuer}/`],
      clockTolerance: CLOCK_TOLERANCE_S,
      requiredClaims: ['exp'],
      ...(options.now === undefined ? {} : { currentDate: options.now })
    })
    return payload as Record<string, unknown>
  } catch (err) {
    throw mapJoseError(err)
  }
}

/**
 * The claims release policies commonly test (docs/protocols.md#maa-token-claims and docs/protocols.md#release-policy: the canonical ACI policy,
 * the AKS preset, the CVM default), in the order a denial lists them. They describe the TEE (its
 * type, compliance, policy hash, debug bit, VMPL and launch measurement), not a credential.
 */
export const POLICY_CLAIMS: readonly string[] = Object.freeze([
  'x-ms-attestation-type',
  'x-ms-compliance-status',
  'x-ms-sevsnpvm-hostdata',
  'x-ms-sevsnpvm-is-debuggable',
  'x-ms-sevsnpvm-vmpl',
  'x-ms-sevsnpvm-launchmeasurement'
])

/**
 * The payload of a compact JWT, NOT verified (for diagnostics: a token skr verified when it got
 * it, or one an operator saved); null when `token` is not a JWT with a JSON object payload. Never
 * throws, and nothing it returns contains the token or its signature.
 */
export function decodeTokenClaims (token: string): Record<string, unknown> | null {
  if (typeof token !== 'string') return null
  const parts = token.split('.')
  const bytes = parts.length === 3 && parts[1] !== undefined ? decodeBase64Url(parts[1]) : null
  if (bytes === null) return null
  try {
    const payload: unknown = JSON.parse(bytes.toString('utf8'))
    return isObject(payload) ? payload : null
  } catch {
    return null
  }
}
