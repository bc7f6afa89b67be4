// The one error class of the client library. It is not a SidecarError: those are the
// server's answers (each with an HTTP status it sends); this one is what an app container
// sees, whether the sidecar answered with an error or could not be reached at all.

/** Codes the client itself assigns (the sidecar's own codes, `ERR_KEY_RELEASE_DENIED` etc., pass through). */
export const CLIENT_ERROR_CODES = Object.freeze({
  /** No answer within timeoutMs (not retried: the sidecar is still working on it). */
  timeout: 'ERR_CLIENT_TIMEOUT',
  /** The sidecar could not be reached (connection refused, reset, DNS), after the retries. */
  network: 'ERR_CLIENT_NETWORK',
  /** The caller's AbortSignal fired. */
  aborted: 'ERR_CLIENT_ABORTED',
  /** A 2xx answer whose body is not the shape the API promises. */
  responseInvalid: 'ERR_CLIENT_RESPONSE_INVALID',
  /** The released JWK could not be turned into a KeyObject. */
  keyInvalid: 'ERR_CLIENT_KEY_INVALID'
} as const)

/** Construction facts of a SkrClientError. */
export interface SkrClientErrorOptions {
  /** The sidecar's `code`, a CLIENT_ERROR_CODES value, or `ERR_HTTP_<status>` when the body had none (the reference sidecar sends only `error`). */
  code: string
  /** The HTTP status, or null when there was no answer. */
  status: number | null
  /** The sidecar's `requestId` (find it in the sidecar's log), or null. */
  requestId: string | null
  cause?: unknown
}

/** A failed sidecar call. Match on `code`; `status` and `requestId` help find the sidecar's log line. */
export class SkrClientError extends Error {
  readonly code: string
  readonly status: number | null
  readonly requestId: string | null
  constructor (message: string, options: SkrClientErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'SkrClientError'
    this.code = options.code
    this.status = options.status
    this.requestId = options.requestId
  }
}

/** True for a SkrClientError (also across duplicated copies of the library, by name and code). */
export function isSkrClientError (err: unknown): err is SkrClientError {
  return err instanceof SkrClientError ||
    (err instanceof Error && err.name === 'SkrClientError' && typeof (err as { code?: unknown }).code === 'string')
}
