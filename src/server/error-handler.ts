// Renders every failure as `{ error, code, requestId }` with the error's own status.
// 4xx answers carry the error's message (it describes the caller's mistake); 5xx answers
// carry their class's fixed publicMessage, because their messages may name internal paths or quote
// upstream answers, followed by the safe facts of publicFacts (which step, which upstream and
// host, its status and error code): see ../public-error.ts, which the gRPC side shares. The detail
// goes to the log at error level, keyed by request id.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import {
  InternalError,
  isSidecarError,
  RequestInvalid,
  RequestTooLarge,
  UnsupportedMediaType,
  type ErrorCode,
  type SidecarError
} from '../errors.ts'
import { publicMessage } from '../public-error.ts'
import type { ErrorBody } from './error-schemas.ts'
import { describeValidationIssue, type ValidationIssue } from './validation-messages.ts'

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

/** Builds the client-facing body for an error (for 5xx: the fixed text and its safe facts, see publicMessage). */
export function errorBody (err: SidecarError, requestId: string): ErrorBody {
  return { error: publicMessage(err), code: err.code, requestId }
}

// Load shedding is expected under load: one warn line per refusal, not an error-level flood.
const SHED_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['ERR_OVERLOADED', 'ERR_SHUTTING_DOWN'])

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
