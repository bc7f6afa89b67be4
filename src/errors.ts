// The one home of skr's errors. Every class has a fixed machine code (never reused once
// retired, listed in ERROR_CODES), the HTTP status it maps to and, for a 5xx, the fixed
// publicMessage clients see instead of its message (./public-error.ts renders it). Messages say
// what was found and what was expected; they never carry tokens, key bytes or raw upstream
// bodies. Safe, structured facts (errno, firmware status, upstream status) go in `details`;
// anything else in `cause`. Import them from here: the base and the codes are in
// errors/sidecar-error.ts, the 4xx classes in errors/client-errors.ts, the 5xx ones in
// errors/server-errors.ts.
//
// Add a class there (never elsewhere), its code to ERROR_CODES and AnySidecarError (the compiler
// insists), the code to packages/client/src/codes.ts, and document it in docs/errors.md: tests
// keep the three in step.
import type { ErrorCode, SidecarError } from './errors/sidecar-error.ts'
import type {
  AccessDenied, ClientClosed, CrossOriginRefused, EndpointNotAllowed, HeadersTooLarge, HostNotAllowed, KeyNotFound,
  KeyReleaseDenied, NotFound, ReleaseUnverified, RequestInvalid, RequestTimeout, RequestTooLarge, UnsupportedMediaType,
  WrappingKeyInvalid
} from './errors/client-errors.ts'
import type {
  CertChainInvalid, CollateralUnavailable, ConfigInvalid, IdentityUnavailable, InternalError, KeyUnwrapFailed, ListenFailed,
  MaaTokenInvalid, Overloaded, ReportInvalid, ReportUnverified, ShuttingDown, SnpDeviceUnavailable, SnpFirmwareError,
  TcbMismatch, UpstreamNotFound, UpstreamRejected, UpstreamResponseInvalid, UpstreamTimeout, UpstreamUnavailable,
  UvmEndorsementInvalid
} from './errors/server-errors.ts'

export * from './errors/sidecar-error.ts'
export * from './errors/client-errors.ts'
export * from './errors/server-errors.ts'

// ---- the classes as one type ---------------------------------------------------------------

/**
 * Every concrete error class, discriminated by `code`: `switch (err.code)` on an AnySidecarError
 * narrows to the class (and its statusCode and publicMessage).
 */
export type AnySidecarError =
  | RequestInvalid | NotFound | RequestTimeout | HeadersTooLarge | ClientClosed | RequestTooLarge
  | UnsupportedMediaType | WrappingKeyInvalid | KeyReleaseDenied | AccessDenied | KeyNotFound | HostNotAllowed
  | CrossOriginRefused | EndpointNotAllowed | ReleaseUnverified | UpstreamRejected | UpstreamResponseInvalid
  | MaaTokenInvalid | UvmEndorsementInvalid | CertChainInvalid | TcbMismatch | KeyUnwrapFailed | UpstreamNotFound
  | UpstreamUnavailable | UpstreamTimeout | SnpDeviceUnavailable | IdentityUnavailable | CollateralUnavailable
  | Overloaded | ShuttingDown | SnpFirmwareError | ReportInvalid | ReportUnverified | InternalError | ConfigInvalid
  | ListenFailed

// Compile-time checks (a failure names the offending codes). A class's code must be an ErrorCode
// (SidecarError's `code`); here, every ErrorCode must have a class in AnySidecarError, and every
// 5xx class must override publicMessage with its own sentence. test/unit/error-codes.test.ts checks
// the rest at run time (every exported class is in the union, each code used once).
type NothingLeft<T extends never> = T
type WithoutItsText<E extends SidecarError> = E extends SidecarError
  ? (`${E['statusCode']}` extends `5${string}` ? (null extends E['publicMessage'] ? E['code'] : never) : never)
  : never
type _EveryCodeHasAClass = NothingLeft<Exclude<ErrorCode, AnySidecarError['code']>>
type _Every5xxHasItsText = NothingLeft<WithoutItsText<AnySidecarError>>
