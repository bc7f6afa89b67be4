// The one home of skr's errors. Every class has a fixed machine code (never reused once
// retired) and the HTTP status it maps to. Messages say what was found and what was
// expected; they never carry tokens, key bytes or raw upstream bodies. Safe, structured
// facts (errno, firmware status, upstream status) go in `details`; anything else in `cause`.
//
// Add a class here (never elsewhere) and document its code in docs/errors.md: a test keeps
// the two in step.

export type ErrorDetails = Readonly<Record<string, string | number | boolean | null | undefined>>

export interface SidecarErrorOptions {
  cause?: unknown
  details?: ErrorDetails
}

export abstract class SidecarError extends Error {
  abstract readonly code: string
  abstract readonly statusCode: number
  readonly details: ErrorDetails
  constructor (message: string, options: SidecarErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.details = Object.freeze({ ...(options.details ?? {}) })
  }
}

export function isSidecarError (err: unknown): err is SidecarError {
  return err instanceof SidecarError
}

// ---- 400 family: the caller's request is wrong --------------------------------------------

/** The request body, a parameter or a header is malformed or missing. */
export class RequestInvalid extends SidecarError {
  readonly code = 'ERR_REQUEST_INVALID'
  readonly statusCode = 400
}

/** A route that does not exist. */
export class NotFound extends SidecarError {
  readonly code = 'ERR_NOT_FOUND'
  readonly statusCode = 404
}

/** The request (its headers, or headers and body) did not arrive within the listener's timeouts. */
export class RequestTimeout extends SidecarError {
  readonly code = 'ERR_REQUEST_TIMEOUT'
  readonly statusCode = 408
}

/** The request headers are larger than the server accepts. */
export class HeadersTooLarge extends SidecarError {
  readonly code = 'ERR_HEADERS_TOO_LARGE'
  readonly statusCode = 431
}

/**
 * The caller went away (closed its connection, cancelled its gRPC call) before the answer was
 * ready; the work for it was stopped. Never seen by a client: it names the outcome in skr's own
 * logs and metrics (status 499, as nginx records the same event), so a caller's disconnect is not
 * reported as a server failure.
 */
export class ClientClosed extends SidecarError {
  readonly code = 'ERR_CLIENT_CLOSED'
  readonly statusCode = 499
}

/** The body is larger than the server accepts. */
export class RequestTooLarge extends SidecarError {
  readonly code = 'ERR_REQUEST_TOO_LARGE'
  readonly statusCode = 413
}

/** The body is not `application/json`. */
export class UnsupportedMediaType extends SidecarError {
  readonly code = 'ERR_UNSUPPORTED_MEDIA_TYPE'
  readonly statusCode = 415
}

/** The key named for wrapping or unwrapping is unusable (key info file, public key, or a released key that is not RSA). */
export class WrappingKeyInvalid extends SidecarError {
  readonly code = 'ERR_WRAPPING_KEY_INVALID'
  readonly statusCode = 422
}

// ---- 403 family: "you are not allowed" (as the reference answers) --------------------------

/** The key's release policy is not met by the attestation token (AKV/mHSM said 403). */
export class KeyReleaseDenied extends SidecarError {
  readonly code = 'ERR_KEY_RELEASE_DENIED'
  readonly statusCode = 403
}

/** The vault or MAA refused our credentials (401, or 403 that is not a policy denial). */
export class AccessDenied extends SidecarError {
  readonly code = 'ERR_ACCESS_DENIED'
  readonly statusCode = 403
}

/** The vault has no key of that name/version (the reference answers 403 here too). */
export class KeyNotFound extends SidecarError {
  readonly code = 'ERR_KEY_NOT_FOUND'
  readonly statusCode = 403
}

/**
 * The request's Host header is not a loopback name or address, nor a name the operator configured
 * (SKR_SERVER_NAMES): what a page that rebound its DNS name to 127.0.0.1 would send.
 */
export class HostNotAllowed extends SidecarError {
  readonly code = 'ERR_HOST_NOT_ALLOWED'
  readonly statusCode = 403
}

/** The request carries an Origin header or a cross-site Sec-Fetch-Site: a web page sent it. */
export class CrossOriginRefused extends SidecarError {
  readonly code = 'ERR_CROSS_ORIGIN_REFUSED'
  readonly statusCode = 403
}

/**
 * The caller named an MAA or AKV/mHSM host that SKR_ALLOWED_HOSTS does not allow; nothing was sent
 * anywhere (no report, no MAA call, no token request).
 */
export class EndpointNotAllowed extends SidecarError {
  readonly code = 'ERR_ENDPOINT_NOT_ALLOWED'
  readonly statusCode = 403
}

/** The signed release response failed verification (signature, chain, host name, kid, enc). */
export class ReleaseUnverified extends SidecarError {
  readonly code = 'ERR_RELEASE_UNVERIFIED'
  readonly statusCode = 403
}

// ---- 5xx: something upstream or inside the TEE failed --------------------------------------

/** An upstream answered with an error we cannot act on (4xx other than auth, or a bad body). */
export class UpstreamRejected extends SidecarError {
  readonly code = 'ERR_UPSTREAM_REJECTED'
  readonly statusCode = 502
}

/** An upstream answered 200 with a body that is not what its protocol promises. */
export class UpstreamResponseInvalid extends SidecarError {
  readonly code = 'ERR_UPSTREAM_RESPONSE_INVALID'
  readonly statusCode = 502
}

/** The MAA token failed verification (signature, issuer, lifetime, claims). */
export class MaaTokenInvalid extends SidecarError {
  readonly code = 'ERR_MAA_TOKEN_INVALID'
  readonly statusCode = 502
}

/** The UVM reference info (COSE_Sign1 endorsement) is malformed or its signature/chain does not verify. */
export class UvmEndorsementInvalid extends SidecarError {
  readonly code = 'ERR_UVM_ENDORSEMENT_INVALID'
  readonly statusCode = 502
}

/** A certificate chain (VCEK/ASK/ARK, or a signer chain) does not verify or is malformed. */
export class CertChainInvalid extends SidecarError {
  readonly code = 'ERR_CERT_CHAIN_INVALID'
  readonly statusCode = 502
}

/** The report's REPORTED_TCB does not match the VCEK chain even after a refresh. */
export class TcbMismatch extends SidecarError {
  readonly code = 'ERR_TCB_MISMATCH'
  readonly statusCode = 502
}

/** The released key material could not be unwrapped or decoded. */
export class KeyUnwrapFailed extends SidecarError {
  readonly code = 'ERR_KEY_UNWRAP_FAILED'
  readonly statusCode = 502
}

/**
 * An upstream's host name does not exist (DNS answered NXDOMAIN: ENOTFOUND). Usually a host the
 * caller named (maa_endpoint, akv_endpoint): the same request will fail the same way, so it is
 * 502, not the retryable 503 (a resolver that cannot answer right now, EAI_AGAIN, stays 503).
 */
export class UpstreamNotFound extends SidecarError {
  readonly code = 'ERR_UPSTREAM_NOT_FOUND'
  readonly statusCode = 502
}

/** An upstream (MAA, AKV, IMDS, THIM, KDS) could not be reached or answered 5xx/429. */
export class UpstreamUnavailable extends SidecarError {
  readonly code = 'ERR_UPSTREAM_UNAVAILABLE'
  readonly statusCode = 503
}

/** An upstream did not answer within its deadline. */
export class UpstreamTimeout extends SidecarError {
  readonly code = 'ERR_UPSTREAM_TIMEOUT'
  readonly statusCode = 504
}

/** No SEV-SNP attestation interface is usable (no device, no addon, not Linux, no permission). */
export class SnpDeviceUnavailable extends SidecarError {
  readonly code = 'ERR_SNP_DEVICE_UNAVAILABLE'
  readonly statusCode = 503
}

/** No identity could provide a token (IMDS down, workload identity files missing). */
export class IdentityUnavailable extends SidecarError {
  readonly code = 'ERR_IDENTITY_UNAVAILABLE'
  readonly statusCode = 503
}

/** Collateral (VCEK chain, security policy, UVM endorsements) is not available. */
export class CollateralUnavailable extends SidecarError {
  readonly code = 'ERR_COLLATERAL_UNAVAILABLE'
  readonly statusCode = 503
}

/** Too many releases in flight; retry after the indicated delay. */
export class Overloaded extends SidecarError {
  readonly code = 'ERR_OVERLOADED'
  readonly statusCode = 503
}

/** The server is draining before it stops: new work is refused, in-flight work finishes. */
export class ShuttingDown extends SidecarError {
  readonly code = 'ERR_SHUTTING_DOWN'
  readonly statusCode = 503
}

/** The AMD secure processor answered with an error (firmware status or VMM error). */
export class SnpFirmwareError extends SidecarError {
  readonly code = 'ERR_SNP_FIRMWARE'
  readonly statusCode = 500
}

/** Bytes that should be an attestation report are not a valid one. */
export class ReportInvalid extends SidecarError {
  readonly code = 'ERR_SNP_REPORT_INVALID'
  readonly statusCode = 500
}

/** A report's signature, chain or binding to its VCEK does not verify. */
export class ReportUnverified extends SidecarError {
  readonly code = 'ERR_SNP_REPORT_UNVERIFIED'
  readonly statusCode = 500
}

/** A bug: something that should not happen. The message is generic; the log has the cause. */
export class InternalError extends SidecarError {
  readonly code = 'ERR_INTERNAL'
  readonly statusCode = 500
}

// ---- start-up ----------------------------------------------------------------------------

/** The configuration is invalid. Names the offending keys, never their values. */
export class ConfigInvalid extends SidecarError {
  readonly code = 'ERR_CONFIG_INVALID'
  readonly statusCode = 500
}

/**
 * A listener could not be opened (port in use, a privileged port, a host that is not this
 * machine's). Not ERR_CONFIG_INVALID: the same settings may work once the port is free. The
 * message names the setting to change; `details.errno` has the system's code.
 */
export class ListenFailed extends SidecarError {
  readonly code = 'ERR_LISTEN_FAILED'
  readonly statusCode = 500
}
