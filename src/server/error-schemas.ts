// The error body every non-2xx answer carries (ErrorBody, a shared schema whose code enum is
// read from src/errors.ts), and the error answers each route documents in the OpenAPI document.
import * as errors from '../errors.ts'

/** The error body every non-2xx answer carries. */
export interface ErrorBody {
  error: string
  code: string
  requestId: string
}

/** The shared-schema id of ErrorBody (buildApp adds it with app.addSchema; OpenAPI names the component after it). */
export const ERROR_BODY_ID = 'ErrorBody'

type ErrorClass = new (message: string) => errors.SidecarError

/**
 * Every code src/errors.ts defines, sorted: read from the classes themselves, so the ErrorBody
 * enum of the OpenAPI document cannot drift from the code (docs/errors.md is kept in step by
 * test/unit/errors.test.ts the same way).
 */
export const ERROR_CODES: readonly string[] = Object.freeze((Object.values(errors) as unknown[])
  .filter((value): value is ErrorClass => typeof value === 'function' && value.prototype instanceof errors.SidecarError)
  .map(Cls => new Cls('').code)
  .sort())

/** Schema of ErrorBody (used for every 4xx and 5xx response). */
export const errorBodySchema = {
  $id: ERROR_BODY_ID,
  type: 'object',
  description: 'Every non-2xx answer: a sentence (fixed per code for 5xx), the stable code (docs/errors.md), and the request id to find in the log',
  required: ['error', 'code', 'requestId'],
  properties: {
    error: { type: 'string', description: 'What went wrong; for 5xx a fixed sentence per code, followed in parentheses by safe facts (step, upstream and host, status, upstream error code)' },
    code: { type: 'string', enum: ERROR_CODES, description: 'Stable machine code, one of the codes in docs/errors.md' },
    requestId: { type: 'string', description: 'The id of this request in skr\'s log' }
  }
} as const

/** A reference to ErrorBody, for response entries. */
export const errorRef = { $ref: `${ERROR_BODY_ID}#` } as const

/**
 * The `Retry-After` header of a 503 that is worth retrying soon: skr sends it (whole seconds) with
 * ERR_OVERLOADED and ERR_SHUTTING_DOWN only (./error-handler.ts), as RFC 9110 §10.2.3 allows.
 */
export const retryAfterHeader = {
  'Retry-After': { type: 'integer', minimum: 1, description: 'Seconds to wait before retrying; sent with ERR_OVERLOADED and ERR_SHUTTING_DOWN, not with the other 503 codes' }
} as const

/** An ErrorBody answer with what its status means on one route (an OpenAPI response; fastify serialises errors itself). */
export function errorAnswer (description: string, options: { retryAfter?: boolean } = {}): Record<string, unknown> {
  return {
    description,
    ...(options.retryAfter === true ? { headers: retryAfterHeader } : {}),
    content: { 'application/json': { schema: errorRef } }
  }
}

const BAD_REQUEST = 'The request is malformed: a body field, the JSON, the URL, or a missing Host header (ERR_REQUEST_INVALID)'
const BROWSER_403 = 'Refused: sent by a web page (ERR_CROSS_ORIGIN_REFUSED), or a Host that is neither loopback nor in SKR_SERVER_NAMES (ERR_HOST_NOT_ALLOWED)'
const INTERNAL_500 = 'A bug (ERR_INTERNAL); the log has the detail under the request id'
const SHED_503 = 'Overloaded (ERR_OVERLOADED: too many in flight, or event-loop or memory pressure) or shutting down (ERR_SHUTTING_DOWN), both with Retry-After'

/** Error answers of the probes and observability routes (never shed, never drained). */
export const errorResponses = {
  400: errorAnswer(BAD_REQUEST),
  403: errorAnswer(BROWSER_403),
  500: errorAnswer(INTERNAL_500),
  '4xx': errorAnswer('Any other client error (docs/errors.md)'),
  '5xx': errorAnswer('Any other server error (docs/errors.md)')
} as const

/** Error answers of the POST routes: bodies, shedding and draining, the request deadline, and each route's own failures. */
export function postErrorResponses (own: { 403?: string, 500?: string, 502: string, 503: string }): Record<string, unknown> {
  return {
    400: errorAnswer(BAD_REQUEST),
    403: errorAnswer(own[403] === undefined ? BROWSER_403 : `${own[403]}; or ${BROWSER_403.charAt(0).toLowerCase()}${BROWSER_403.slice(1)}`),
    413: errorAnswer('The body is larger than 1 MiB (ERR_REQUEST_TOO_LARGE)'),
    415: errorAnswer('The body is declared as a type other than JSON (ERR_UNSUPPORTED_MEDIA_TYPE)'),
    500: errorAnswer(own[500] ?? INTERNAL_500),
    502: errorAnswer(own[502]),
    503: errorAnswer(`${own[503]}; or ${SHED_503.charAt(0).toLowerCase()}${SHED_503.slice(1)}`, { retryAfter: true }),
    504: errorAnswer('The request deadline (SKR_REQUEST_TIMEOUT_MS) passed, an upstream did not answer in time (ERR_UPSTREAM_TIMEOUT)'),
    '4xx': errorAnswer('Any other client error (docs/errors.md)'),
    '5xx': errorAnswer('Any other server error (docs/errors.md)')
  }
}
