// The 5xx classes of skr's errors: an upstream or the TEE failed, or start-up did. Each carries the
// fixed publicMessage a client sees instead of its message (../errors.ts checks that at compile time).
import { SidecarError } from './sidecar-error.ts'

// ---- 5xx: something upstream or inside the TEE failed --------------------------------------

/** An upstream answered with an error we cannot act on (4xx other than auth, or a bad body). */
export class UpstreamRejected extends SidecarError {
  readonly code = 'ERR_UPSTREAM_REJECTED'
  readonly statusCode = 502
  override get publicMessage () { return 'upstream rejected the request' }
}

/** An upstream answered 200 with a body that is not what its protocol promises. */
export class UpstreamResponseInvalid extends SidecarError {
  readonly code = 'ERR_UPSTREAM_RESPONSE_INVALID'
  readonly statusCode = 502
  override get publicMessage () { return 'upstream response invalid' }
}

/** The MAA token failed verification (signature, issuer, lifetime, claims). */
export class MaaTokenInvalid extends SidecarError {
  readonly code = 'ERR_MAA_TOKEN_INVALID'
  readonly statusCode = 502
  override get publicMessage () { return 'attestation token failed verification' }
}

/** The UVM reference info (COSE_Sign1 endorsement) is malformed or its signature/chain does not verify. */
export class UvmEndorsementInvalid extends SidecarError {
  readonly code = 'ERR_UVM_ENDORSEMENT_INVALID'
  readonly statusCode = 502
  override get publicMessage () { return 'internal error' }
}

/** A certificate chain (VCEK/ASK/ARK, or a signer chain) does not verify or is malformed. */
export class CertChainInvalid extends SidecarError {
  readonly code = 'ERR_CERT_CHAIN_INVALID'
  readonly statusCode = 502
  override get publicMessage () { return 'certificate chain invalid' }
}

/** The report's REPORTED_TCB does not match the VCEK chain even after a refresh. */
export class TcbMismatch extends SidecarError {
  readonly code = 'ERR_TCB_MISMATCH'
  readonly statusCode = 502
  override get publicMessage () { return 'platform TCB does not match the certificate chain' }
}

/** The released key material could not be unwrapped or decoded. */
export class KeyUnwrapFailed extends SidecarError {
  readonly code = 'ERR_KEY_UNWRAP_FAILED'
  readonly statusCode = 502
  override get publicMessage () { return 'released key could not be unwrapped' }
}

/**
 * An upstream's host name does not exist (DNS answered NXDOMAIN: ENOTFOUND). Usually a host the
 * caller named (maa_endpoint, akv_endpoint): the same request will fail the same way, so it is
 * 502, not the retryable 503 (a resolver that cannot answer right now, EAI_AGAIN, stays 503).
 */
export class UpstreamNotFound extends SidecarError {
  readonly code = 'ERR_UPSTREAM_NOT_FOUND'
  readonly statusCode = 502
  override get publicMessage () { return 'upstream host not found' }
}

/** An upstream (MAA, AKV, IMDS, THIM, KDS) could not be reached or answered 5xx/429. */
export class UpstreamUnavailable extends SidecarError {
  readonly code = 'ERR_UPSTREAM_UNAVAILABLE'
  readonly statusCode = 503
  override get publicMessage () { return 'upstream unavailable' }
}

/** An upstream did not answer within its deadline. */
export class UpstreamTimeout extends SidecarError {
  readonly code = 'ERR_UPSTREAM_TIMEOUT'
  readonly statusCode = 504
  override get publicMessage () { return 'request deadline exceeded' }
}

/** No SEV-SNP attestation interface is usable (no device, no addon, not Linux, no permission). */
export class SnpDeviceUnavailable extends SidecarError {
  readonly code = 'ERR_SNP_DEVICE_UNAVAILABLE'
  readonly statusCode = 503
  override get publicMessage () { return 'attestation device unavailable' }
}

/** No identity could provide a token (IMDS down, workload identity files missing). */
export class IdentityUnavailable extends SidecarError {
  readonly code = 'ERR_IDENTITY_UNAVAILABLE'
  readonly statusCode = 503
  override get publicMessage () { return 'identity unavailable' }
}

/** Collateral (VCEK chain, security policy, UVM endorsements) is not available. */
export class CollateralUnavailable extends SidecarError {
  readonly code = 'ERR_COLLATERAL_UNAVAILABLE'
  readonly statusCode = 503
  override get publicMessage () { return 'attestation collateral unavailable' }
}

/** Too many releases in flight; retry after the indicated delay. */
export class Overloaded extends SidecarError {
  readonly code = 'ERR_OVERLOADED'
  readonly statusCode = 503
  override get publicMessage () { return 'too many requests in flight; retry later' }
}

/** The server is draining before it stops: new work is refused, in-flight work finishes. */
export class ShuttingDown extends SidecarError {
  readonly code = 'ERR_SHUTTING_DOWN'
  readonly statusCode = 503
  override get publicMessage () { return 'server is shutting down; retry later' }
}

/** The AMD secure processor answered with an error (firmware status or VMM error). */
export class SnpFirmwareError extends SidecarError {
  readonly code = 'ERR_SNP_FIRMWARE'
  readonly statusCode = 500
  override get publicMessage () { return 'attestation device error' }
}

/** Bytes that should be an attestation report are not a valid one. */
export class ReportInvalid extends SidecarError {
  readonly code = 'ERR_SNP_REPORT_INVALID'
  readonly statusCode = 500
  override get publicMessage () { return 'attestation device error' }
}

/** A report's signature, chain or binding to its VCEK does not verify. */
export class ReportUnverified extends SidecarError {
  readonly code = 'ERR_SNP_REPORT_UNVERIFIED'
  readonly statusCode = 500
  override get publicMessage () { return 'attestation device error' }
}

/** A bug: something that should not happen. The message is generic; the log has the cause. */
export class InternalError extends SidecarError {
  readonly code = 'ERR_INTERNAL'
  readonly statusCode = 500
  override get publicMessage () { return 'internal error' }
}

// ---- start-up ----------------------------------------------------------------------------

/** The configuration is invalid. Names the offending keys, never their values. */
export class ConfigInvalid extends SidecarError {
  readonly code = 'ERR_CONFIG_INVALID'
  readonly statusCode = 500
  override get publicMessage () { return 'internal error' }
}

/**
 * A listener could not be opened (port in use, a privileged port, a host that is not this
 * machine's). Not ERR_CONFIG_INVALID: the same settings may work once the port is free. The
 * message names the setting to change; `details.errno` has the system's code.
 */
export class ListenFailed extends SidecarError {
  readonly code = 'ERR_LISTEN_FAILED'
  readonly statusCode = 500
  override get publicMessage () { return 'internal error' }
}
