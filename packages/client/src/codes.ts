// The sidecar's error codes, as skr sends them in an error body's `code` (and gRPC's
// `skr-error-code` trailer). A copy of ERROR_CODES in skr's src/errors.ts, which this package
// cannot import (it has no dependencies); test/unit/client/codes.test.ts fails when the two differ.
// What each code means, its HTTP status and whether to retry: skr's docs/errors.md.

/** Every code the sidecar (skr) answers with, in src/errors.ts's order. */
export const SIDECAR_ERROR_CODES = Object.freeze([
  'ERR_REQUEST_INVALID', 'ERR_NOT_FOUND', 'ERR_REQUEST_TIMEOUT', 'ERR_HEADERS_TOO_LARGE', 'ERR_CLIENT_CLOSED',
  'ERR_REQUEST_TOO_LARGE', 'ERR_UNSUPPORTED_MEDIA_TYPE', 'ERR_WRAPPING_KEY_INVALID',
  'ERR_KEY_RELEASE_DENIED', 'ERR_ACCESS_DENIED', 'ERR_KEY_NOT_FOUND', 'ERR_HOST_NOT_ALLOWED',
  'ERR_CROSS_ORIGIN_REFUSED', 'ERR_ENDPOINT_NOT_ALLOWED', 'ERR_RELEASE_UNVERIFIED',
  'ERR_UPSTREAM_REJECTED', 'ERR_UPSTREAM_RESPONSE_INVALID', 'ERR_MAA_TOKEN_INVALID', 'ERR_UVM_ENDORSEMENT_INVALID',
  'ERR_CERT_CHAIN_INVALID', 'ERR_TCB_MISMATCH', 'ERR_KEY_UNWRAP_FAILED', 'ERR_UPSTREAM_NOT_FOUND',
  'ERR_UPSTREAM_UNAVAILABLE', 'ERR_UPSTREAM_TIMEOUT', 'ERR_SNP_DEVICE_UNAVAILABLE', 'ERR_IDENTITY_UNAVAILABLE',
  'ERR_COLLATERAL_UNAVAILABLE', 'ERR_OVERLOADED', 'ERR_SHUTTING_DOWN', 'ERR_SNP_FIRMWARE', 'ERR_SNP_REPORT_INVALID',
  'ERR_SNP_REPORT_UNVERIFIED', 'ERR_INTERNAL', 'ERR_CONFIG_INVALID', 'ERR_LISTEN_FAILED'
] as const)

/** A code the sidecar answers with (skr's ErrorCode). */
export type SidecarErrorCode = (typeof SIDECAR_ERROR_CODES)[number]

const KNOWN: ReadonlySet<string> = new Set(SIDECAR_ERROR_CODES)

/**
 * True when `code` (a SkrClientError's, which may also be a client code or `ERR_HTTP_<status>`)
 * is one of the sidecar's: after it, comparisons such as `code === 'ERR_KEY_RELEASE_DENIED'`
 * are checked by the compiler.
 */
export function isSidecarErrorCode (code: string): code is SidecarErrorCode {
  return KNOWN.has(code)
}
