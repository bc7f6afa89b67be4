// The 4xx classes of skr's errors: the caller's request is wrong (400 family), or the caller is not
// allowed what it asked (403 family). A 4xx shows its own message to the client (no publicMessage).
import { SidecarError } from './sidecar-error.ts'

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
