// The base of skr's errors: the list of every code, the code type, and the abstract SidecarError
// every class in ./client-errors.ts and ./server-errors.ts extends. ../errors.ts is where callers
// import them from, and where the compile-time checks of the classes against the codes live.

export type ErrorDetails = Readonly<Record<string, string | number | boolean | null | undefined>>

/**
 * Every code a SidecarError carries, one per class of ./client-errors.ts and ./server-errors.ts,
 * in their order. A code is never reused once retired. The client package keeps a copy
 * (packages/client/src/codes.ts) that a test keeps equal to this one.
 */
export const ERROR_CODES = Object.freeze([
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

/** The stable machine code of a SidecarError: compare `err.code` against these, and the compiler checks the spelling. */
export type ErrorCode = (typeof ERROR_CODES)[number]

export interface SidecarErrorOptions {
  cause?: unknown
  details?: ErrorDetails
}

// The bundle holds two copies of this module (scripts/bundle.mjs: the CLI's graph and the
// sidecar's), and main.ts, in one, catches what `skr serve`, in the other, throws. A key in the
// global symbol registry is the same in both copies, where the classes are not.
const BRAND: unique symbol = Symbol.for('skr.SidecarError')

export abstract class SidecarError extends Error {
  abstract readonly code: ErrorCode
  abstract readonly statusCode: number
  readonly details: ErrorDetails
  /**
   * The fixed sentence a client sees instead of the message when the status is 5xx (the message
   * may name internal paths or quote an upstream); null for a caller's mistake (4xx), whose own
   * message is shown. Every 5xx class overrides it: a type check at the end of ../errors.ts
   * fails otherwise. A prototype getter, so it is not one more enumerable member in the logs.
   */
  get publicMessage (): string | null { return null }
  /** isSidecarError's mark; on the prototype, like publicMessage. */
  get [BRAND] (): true { return true }
  constructor (message: string, options: SidecarErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.details = Object.freeze({ ...(options.details ?? {}) })
  }
}

/** True for a SidecarError from any copy of this module in the process. */
export function isSidecarError (err: unknown): err is SidecarError {
  return err instanceof SidecarError || (typeof err === 'object' && err !== null && (err as { [BRAND]?: unknown })[BRAND] === true)
}
