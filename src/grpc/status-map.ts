// SidecarError → gRPC status. The reference returns bare Go errors from UnWrapKey, which
// grpc-go sends as Code: Unknown; skr gives every failure the status a gRPC client can act on
// (retry UNAVAILABLE/DEADLINE_EXCEEDED, fix the request on INVALID_ARGUMENT, stop on
// PERMISSION_DENIED/FAILED_PRECONDITION). Details follow the HTTP rules (../public-error.ts): a
// 4xx-class error's own message (it describes the caller's mistake), its class's fixed publicMessage
// plus its safe facts (step, upstream host, status, code) for server-side failures. The stable
// code travels in the message and in the `skr-error-code`
// trailer, for clients that branch on it.
import { Metadata, status } from '@grpc/grpc-js'
import type { StatusObject } from '@grpc/grpc-js'
import { InternalError, isSidecarError, type ErrorCode, type SidecarError } from '../errors.ts'
import { publicMessage } from '../public-error.ts'

/** The trailer carrying the SidecarError code. */
export const ERROR_CODE_TRAILER = 'skr-error-code'

// Codes whose status is not what their HTTP status alone suggests.
const BY_CODE: Readonly<Partial<Record<ErrorCode, status>>> = {
  // 403 in HTTP for reference compatibility; gRPC has a precise status for "no such key".
  ERR_KEY_NOT_FOUND: status.NOT_FOUND,
  // The reference answers FAILED_PRECONDITION when the SEV guest device is missing.
  ERR_SNP_DEVICE_UNAVAILABLE: status.FAILED_PRECONDITION,
  // Server-side key files or the vault key's type: fixing them is the operator's job, retrying is useless.
  ERR_WRAPPING_KEY_INVALID: status.FAILED_PRECONDITION,
  // The platform's TCB and its certificates disagree: a state problem, not a transient one.
  ERR_TCB_MISMATCH: status.FAILED_PRECONDITION,
  // An upstream refused the request as sent (a 4xx other than auth): retrying will not help.
  ERR_UPSTREAM_REJECTED: status.FAILED_PRECONDITION,
  // A host name that does not exist (NXDOMAIN) stays so until someone fixes the name or the DNS
  // zone: FAILED_PRECONDITION ("do not retry until the system state is fixed"), not the retryable
  // UNAVAILABLE, and not NOT_FOUND, which clients read as "no such key" (ERR_KEY_NOT_FOUND).
  ERR_UPSTREAM_NOT_FOUND: status.FAILED_PRECONDITION,
  ERR_OVERLOADED: status.UNAVAILABLE,
  // The client cancelled: grpc-js has already ended the call; the status is for the logs.
  ERR_CLIENT_CLOSED: status.CANCELLED,
  ERR_NOT_FOUND: status.UNIMPLEMENTED
}

/** The gRPC status for a SidecarError: by code, then by its HTTP status. */
export function grpcStatusFor (err: SidecarError): status {
  const byCode = BY_CODE[err.code]
  if (byCode !== undefined) return byCode
  const http = err.statusCode
  if (http === 401) return status.UNAUTHENTICATED
  if (http === 403) return status.PERMISSION_DENIED
  if (http === 404) return status.NOT_FOUND
  if (http === 409) return status.ABORTED
  if (http === 429) return status.RESOURCE_EXHAUSTED
  if (http >= 400 && http < 500) return status.INVALID_ARGUMENT
  if (http === 503) return status.UNAVAILABLE
  if (http === 504) return status.DEADLINE_EXCEEDED
  // 500 and 502 (device faults, verification failures, malformed upstream answers): the
  // request was fine, something on the server side broke.
  return status.INTERNAL
}

/** A failure ready for grpc-js's callback, plus the SidecarError it came from (for logging). */
export interface GrpcFailure {
  readonly status: Partial<StatusObject>
  readonly error: SidecarError
}

/** Normalises anything thrown into a SidecarError (unknown errors become a generic InternalError). */
export function toSidecarError (err: unknown): SidecarError {
  return isSidecarError(err) ? err : new InternalError('internal error', { cause: err })
}

/** Builds the status object grpc-js sends for `err`. */
export function toGrpcFailure (err: unknown): GrpcFailure {
  const error = toSidecarError(err)
  const metadata = new Metadata()
  metadata.set(ERROR_CODE_TRAILER, error.code)
  return {
    error,
    status: { code: grpcStatusFor(error), details: `${error.code}: ${publicMessage(error)}`, metadata }
  }
}
