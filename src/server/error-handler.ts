// Renders every failure as `{ error, code, requestId }` with the error's own status.
// 4xx answers carry the error's message (it describes the caller's mistake); 5xx answers
// carry a fixed sentence per code, because their messages may name internal paths or quote
// upstream answers, followed by the safe facts of publicFacts (which step, which upstream and
// host, its status and error code). The detail goes to the log at error level, keyed by request id.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import {
  InternalError,
  isSidecarError,
  RequestInvalid,
  RequestTooLarge,
  UnsupportedMediaType,
  type SidecarError
} from '../errors.ts'
import { describeValidationIssue, type ErrorBody, type ValidationIssue } from './schemas.ts'

const FIXED_MESSAGES: Readonly<Record<string, string>> = {
  ERR_UPSTREAM_REJECTED: 'upstream rejected the request',
  ERR_UPSTREAM_RESPONSE_INVALID: 'upstream response invalid',
  ERR_MAA_TOKEN_INVALID: 'attestation token failed verification',
  ERR_CERT_CHAIN_INVALID: 'certificate chain invalid',
  ERR_TCB_MISMATCH: 'platform TCB does not match the certificate chain',
  ERR_KEY_UNWRAP_FAILED: 'released key could not be unwrapped',
  ERR_UPSTREAM_NOT_FOUND: 'upstream host not found',
  ERR_UPSTREAM_UNAVAILABLE: 'upstream unavailable',
  ERR_UPSTREAM_TIMEOUT: 'request deadline exceeded',
  ERR_SNP_DEVICE_UNAVAILABLE: 'attestation device unavailable',
  ERR_IDENTITY_UNAVAILABLE: 'identity unavailable',
  ERR_COLLATERAL_UNAVAILABLE: 'attestation collateral unavailable',
  ERR_OVERLOADED: 'too many requests in flight; retry later',
  ERR_SHUTTING_DOWN: 'server is shutting down; retry later',
  ERR_SNP_FIRMWARE: 'attestation device error',
  ERR_SNP_REPORT_INVALID: 'attestation device error',
  ERR_SNP_REPORT_UNVERIFIED: 'attestation device error'
}

/** The message a client sees for a 5xx with this code. */
export function publicServerMessage (code: string): string {
  return FIXED_MESSAGES[code] ??
    (code.startsWith('ERR_SNP_') ? 'attestation device error' : code.startsWith('ERR_UPSTREAM_') ? 'upstream error' : 'internal error')
}

// What publicFacts lets through, each checked against its expected shape: a value that does not
// fit is left out rather than cleaned up, so nothing an upstream chose (beyond a short code) and
// nothing secret-shaped can reach a client.
const STEPS = new Set(['wrapping key', 'attestation', 'identity', 'release', 'verification', 'unwrap'])
const UPSTREAMS = new Set(['maa', 'akv', 'imds', 'thim', 'kds', 'azcache', 'entra'])
// host[:port] as the HTTP client connects to it: a DNS name or IPv4 address, or a bracketed IPv6 one.
const HOST = /^(?:\[[0-9a-f:.]{2,45}\]|[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?)(?::\d{1,5})?$/i
// Upstream error codes (ServiceUnavailable, KeyNotFound, invalid_resource, AKV10000) and our own
// transport codes (ENOTFOUND, UND_ERR_CONNECT_TIMEOUT, PROXY_REFUSED): one short identifier.
const CODE = /^[A-Za-z][A-Za-z0-9_]{0,63}$/

function detailString (details: SidecarError['details'], name: string, shape: RegExp | Set<string>): string | null {
  const value = details[name]
  if (typeof value !== 'string') return null
  const ok = shape instanceof Set ? shape.has(value) : shape.test(value) && !value.startsWith('eyJ')
  return ok ? value : null
}

function detailStatus (details: SidecarError['details'], name: string): number | null {
  const value = details[name]
  return typeof value === 'number' && Number.isInteger(value) && value >= 100 && value <= 599 ? value : null
}

/**
 * The facts of a server-side failure a client may see, from its details: the release step, the
 * upstream and its host (and whether a proxy was in between), the upstream's HTTP status and
 * error code (and inner code), the transport error code, and a refusing proxy's status. Each is
 * checked against a fixed list or a strict shape and left out when it does not fit. Never a
 * message, a body, a token, a URL path, a file path or a proxy's address.
 */
export function publicFacts (details: SidecarError['details']): string[] {
  const facts: string[] = []
  const step = detailString(details, 'step', STEPS)
  if (step !== null) facts.push(`step: ${step}`)
  const upstream = detailString(details, 'upstream', UPSTREAMS)
  if (upstream !== null) {
    const host = detailString(details, 'host', HOST)
    facts.push(`upstream: ${upstream}${host === null ? '' : ` ${host.toLowerCase()}`}${details['viaProxy'] === true ? ' via proxy' : ''}`)
  }
  const status = detailStatus(details, 'upstreamStatus')
  if (status !== null) facts.push(`status ${status}`)
  const code = detailString(details, 'upstreamCode', CODE)
  const inner = detailString(details, 'upstreamInnerCode', CODE)
  if (code !== null) facts.push(`code ${code}${inner === null || inner === code ? '' : `, inner code ${inner}`}`)
  const errorCode = detailString(details, 'errorCode', CODE)
  if (errorCode !== null) facts.push(`error ${errorCode}`)
  const proxyStatus = detailStatus(details, 'proxyStatus')
  if (proxyStatus !== null) facts.push(`proxy status ${proxyStatus}`)
  return facts
}

function isFastifyError (err: unknown): err is FastifyError {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'string'
}

/** Maps fastify's own failures (parser, limits, schema) and anything unknown to a SidecarError. */
export function toSidecarError (err: unknown): SidecarError {
  if (isSidecarError(err)) return err
  if (isFastifyError(err)) {
    const validation = err.validation as readonly ValidationIssue[] | undefined
    const first = validation?.[0]
    if (first !== undefined) return new RequestInvalid(describeValidationIssue(first, err.validationContext ?? 'body'))
    switch (err.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return new RequestTooLarge('body is larger than 1 MiB')
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return new UnsupportedMediaType('content-type must be application/json')
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
        return new RequestInvalid('body is not valid JSON')
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return new RequestInvalid('body is empty; expected a JSON object')
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
        return new RequestInvalid('body size does not match Content-Length')
      case 'FST_ERR_BAD_URL':
        return new RequestInvalid('the URL is malformed')
    }
  }
  return new InternalError('internal error', { cause: err })
}

/**
 * The client-facing text for an error, HTTP and gRPC alike: its message for caller mistakes (4xx);
 * for 5xx the fixed sentence of its code and its publicFacts, e.g.
 * `upstream unavailable (step: release, upstream: akv myvault.vault.azure.net, status 503, code ServiceUnavailable)`.
 */
export function publicMessage (err: SidecarError): string {
  if (err.statusCode < 500) return err.message
  const facts = publicFacts(err.details)
  const sentence = publicServerMessage(err.code)
  return facts.length === 0 ? sentence : `${sentence} (${facts.join(', ')})`
}

/** Builds the client-facing body for an error (for 5xx: the fixed text and its safe facts, see publicMessage). */
export function errorBody (err: SidecarError, requestId: string): ErrorBody {
  return { error: publicMessage(err), code: err.code, requestId }
}

// Load shedding is expected under load: one warn line per refusal, not an error-level flood.
const SHED_CODES = new Set(['ERR_OVERLOADED', 'ERR_SHUTTING_DOWN'])

// The last resort when rendering an error itself fails: fixed bytes, no serializer involved.
const FALLBACK_BODY = '{"error":"internal error","code":"ERR_INTERNAL","requestId":"unknown"}'

/** fastify error handler: logs, sets Retry-After for overload and shutdown, sends the error body. */
export function handleError (raw: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  try {
    const err = toSidecarError(raw)
    if (SHED_CODES.has(err.code)) {
      request.log.warn({ code: err.code, details: err.details }, err.message)
    } else if (err.statusCode >= 500) {
      request.log.error({ code: err.code, details: err.details, err: raw }, err.message)
    } else {
      request.log.info({ code: err.code, details: err.details }, err.message)
    }
    const retryAfter = err.details.retryAfterSeconds
    if (SHED_CODES.has(err.code) && typeof retryAfter === 'number' && retryAfter > 0) {
      reply.header('retry-after', String(Math.ceil(retryAfter)))
    }
    // Sent pre-serialised: a string skips preSerialization hooks and the response serializer,
    // so a hook or schema that failed the first answer cannot fail the error answer too.
    return reply.code(err.statusCode).type('application/json; charset=utf-8').send(JSON.stringify(errorBody(err, String(request.id))))
  } catch {
    // Reached only through a bug (a logger or header that throws): still answer JSON, never crash.
    return reply.code(500).type('application/json; charset=utf-8').send(FALLBACK_BODY)
  }
}
