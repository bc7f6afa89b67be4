// Transport failures and unexpected HTTP statuses → skr's typed errors. undici and node:net/tls
// errors are matched by `code`, never by class (their classes differ across undici versions and
// realms). The message names the upstream, host and what happened; the raw error stays in `cause`.
import {
  UpstreamNotFound,
  UpstreamRejected,
  UpstreamResponseInvalid,
  UpstreamTimeout,
  UpstreamUnavailable,
  type SidecarError
} from '../errors.ts'
import { parseAzureError } from './azure-error.ts'
import { isRetryableStatus } from './retry.ts'
import type { UpstreamName } from './upstream-types.ts'

/** Who was being called, for messages and details. */
export interface FailureContext {
  upstream: UpstreamName
  /** The upstream's host[:port] (from the URL): goes into messages and `details.host`. */
  host: string
  attempts: number
  /** The egress proxy's origin when the call went through one (messages only; never credentials). */
  proxy?: string
}

/** `host` or `host via proxy http://p:3128`: where messages say the call went. */
export function whereText (ctx: FailureContext): string {
  return ctx.proxy === undefined ? ctx.host : `${ctx.host} via proxy ${ctx.proxy}`
}

/** The details every upstream failure carries: which upstream, which host, whether through a proxy. */
export function upstreamFacts (ctx: FailureContext): { upstream: UpstreamName, host: string, viaProxy?: true } {
  return { upstream: ctx.upstream, host: ctx.host, ...(ctx.proxy === undefined ? {} : { viaProxy: true as const }) }
}

/** A mapped transport failure and whether another attempt may help. */
export interface TransportFailure {
  error: SidecarError
  retryable: boolean
  errorCode: string
}

type Kind = 'timeout' | 'network' | 'tls' | 'protocol' | 'no-such-host'

const KNOWN: Record<string, { kind: Kind, what: string }> = {
  UND_ERR_CONNECT_TIMEOUT: { kind: 'timeout', what: 'connect timed out' },
  UND_ERR_HEADERS_TIMEOUT: { kind: 'timeout', what: 'no response headers in time' },
  UND_ERR_BODY_TIMEOUT: { kind: 'timeout', what: 'response body stalled' },
  ETIMEDOUT: { kind: 'timeout', what: 'connection timed out' },
  ECONNREFUSED: { kind: 'network', what: 'connection refused' },
  ECONNRESET: { kind: 'network', what: 'connection reset' },
  // NXDOMAIN: the name does not exist (getaddrinfo's EAI_NONAME/EAI_NODATA, as Node reports them).
  // An authoritative answer, not a transient one: retrying (here or by the client) cannot help.
  ENOTFOUND: { kind: 'no-such-host', what: 'host name not found' },
  // The resolver could not answer now (SERVFAIL, timeout): transient, retried.
  EAI_AGAIN: { kind: 'network', what: 'DNS lookup failed temporarily' },
  EHOSTUNREACH: { kind: 'network', what: 'host unreachable' },
  ENETUNREACH: { kind: 'network', what: 'network unreachable' },
  EPIPE: { kind: 'network', what: 'connection closed while sending' },
  UND_ERR_SOCKET: { kind: 'network', what: 'connection closed by the server' },
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: { kind: 'network', what: 'response shorter than its Content-Length' },
  // undici's ProxyAgent wraps an https:// proxy's ERR_TLS_CERT_ALTNAME_INVALID in this code.
  UND_ERR_PRX_TLS: { kind: 'tls', what: 'TLS certificate of the proxy does not match its name' }
}

// A certificate problem will not fix itself on the next attempt, and retrying hides it.
const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH', 'INVALID_CA', 'PATH_LENGTH_EXCEEDED', 'INVALID_PURPOSE'
])

/**
 * True for a code saying the peer's TLS certificate was rejected (expired, untrusted issuer,
 * wrong name …): never retried here, and the one list `skr import-key`/`explain` use to hint at
 * SKR_EXTRA_CA_CERTS, so the two cannot disagree about what a certificate failure is.
 */
export function isTlsCertificateError (code: string): boolean {
  return code.startsWith('CERT_') || TLS_CODES.has(code)
}

/** The errno-style code of a transport failure: its own, an AggregateError part's, or its cause's. */
export function transportErrorCode (err: unknown): string | undefined {
  return codeOf(err)
}

function codeOf (err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string' && code !== '') return code
  // Happy-eyeballs connects fail with an AggregateError; its parts carry the errno.
  if (err instanceof AggregateError) {
    for (const inner of err.errors) {
      const c = codeOf(inner)
      if (c !== undefined) return c
    }
  }
  const cause = (err as { cause?: unknown }).cause
  return cause === err ? undefined : codeOf(cause)
}

function classify (code: string): { kind: Kind, what: string } | null {
  const known = KNOWN[code]
  if (known !== undefined) return known
  if (isTlsCertificateError(code)) return { kind: 'tls', what: 'TLS certificate rejected' }
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) return { kind: 'tls', what: 'TLS handshake failed' }
  if (code.startsWith('HPE_')) return { kind: 'protocol', what: 'malformed HTTP response' }
  return null
}

/** "after N attempt(s)": how upstream failure messages end. */
export function attemptsText (n: number): string {
  return `after ${n} attempt${n === 1 ? '' : 's'}`
}

/** Maps a failed attempt (a network, TLS, timeout or parser error) to a SidecarError and its retryability. */
export function mapTransportError (err: unknown, ctx: FailureContext): TransportFailure {
  const errorCode = codeOf(err) ?? 'UNKNOWN'
  const kind = classify(errorCode) ?? { kind: 'network', what: 'request failed' }
  const message = `${ctx.upstream} ${whereText(ctx)}: ${kind.what} (${errorCode}) ${attemptsText(ctx.attempts)}`
  const options = { cause: err, details: { ...upstreamFacts(ctx), errorCode, attempts: ctx.attempts } }
  switch (kind.kind) {
    case 'no-such-host':
      return { error: new UpstreamNotFound(message, options), retryable: false, errorCode }
    case 'timeout':
      return { error: new UpstreamTimeout(message, options), retryable: true, errorCode }
    case 'tls':
      return { error: new UpstreamUnavailable(message, options), retryable: false, errorCode }
    case 'protocol':
      return { error: new UpstreamResponseInvalid(message, options), retryable: false, errorCode }
    default:
      // Unrecognised codes are not retried: they are more often our bug than a flaky network.
      return { error: new UpstreamUnavailable(message, options), retryable: classify(errorCode) !== null, errorCode }
  }
}

/** The error for the whole-call deadline expiring (possibly mid-retry). */
export function deadlineError (ctx: FailureContext, totalTimeoutMs: number, cause?: unknown): UpstreamTimeout {
  return new UpstreamTimeout(
    `${ctx.upstream} ${whereText(ctx)}: no answer within the ${totalTimeoutMs} ms deadline ${attemptsText(ctx.attempts)}`,
    { cause, details: { ...upstreamFacts(ctx), errorCode: 'TOTAL_DEADLINE', attempts: ctx.attempts } }
  )
}

/**
 * The error for an HTTP status the caller did not expect: 408/429/500/502/503/504 →
 * UpstreamUnavailable, anything else → UpstreamRejected. Details carry the status and the
 * upstream's parsed (truncated) error code and message, never the raw body.
 */
export function statusError (ctx: FailureContext, status: number, body: Buffer, what?: string): SidecarError {
  const info = parseAzureError(body)
  const code = info.code === undefined ? '' : ` (${info.code})`
  const target = what === undefined ? '' : ` for ${what}`
  const options = {
    details: {
      ...upstreamFacts(ctx),
      upstreamStatus: status,
      attempts: ctx.attempts,
      upstreamCode: info.code,
      upstreamMessage: info.message,
      upstreamInnerCode: info.innerCode
    }
  }
  if (isRetryableStatus(status)) {
    return new UpstreamUnavailable(`${ctx.upstream} ${whereText(ctx)}: HTTP ${status}${code}${target} ${attemptsText(ctx.attempts)}`, options)
  }
  return new UpstreamRejected(`${ctx.upstream} ${whereText(ctx)}: unexpected HTTP ${status}${code}${target}`, options)
}
