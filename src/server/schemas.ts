// Request and response JSON schemas for the reference-compatible API, with the TypeScript
// shapes they guarantee, and the one place ajv's errors become stable sentences.
//
// Request bodies allow additional properties on purpose: the reference decodes with Go's
// json.Unmarshal, which ignores unknown fields, and drop-in clients may send extras. Only
// the known fields are type-checked. Response schemas are the accidental-disclosure guard:
// fastify's serializer emits only the properties declared here.
import * as errors from '../errors.ts'
import { DEFAULT_MAX_BATCH } from '../release/batch.ts'

/** Body of POST /attest/raw and /attest/combined. */
export interface RuntimeDataBody {
  runtime_data: string
}

/** Body of POST /attest/maa. */
export interface MaaAttestBody {
  maa_endpoint: string
  runtime_data: string
}

/** Body of POST /key/release. */
export interface KeyReleaseBody {
  maa_endpoint: string
  akv_endpoint: string
  /** One key (the reference's shape); exactly one of kid and kids is present. */
  kid?: string
  /** skr's batch extension: several keys under one attestation. */
  kids?: string[]
  access_token?: string | null
}

/** The error body every non-2xx answer carries. */
export interface ErrorBody {
  error: string
  code: string
  requestId: string
}

/** Upper bound on a caller-supplied AAD token (real ones are 1-4 KiB). */
export const MAX_ACCESS_TOKEN_LENGTH = 16 * 1024

const KID_PATTERN = '^[0-9A-Za-z-]{1,127}(/[0-9A-Za-z]{1,64})?$'
const ACCESS_TOKEN_PATTERN = '^[\\x21-\\x7E]*$'

/** Most kids one batch release may carry (the schema's bound; the service's maxBatch may only be lower). */
export const MAX_BATCH_KIDS = DEFAULT_MAX_BATCH

const runtimeData = {
  type: 'string',
  minLength: 1,
  description: 'base64 (standard or url-safe alphabet, padded or not) of the caller\'s data; the report binds its SHA-256'
} as const
const endpoint = {
  type: 'string',
  minLength: 1,
  description: 'host[:port]; https:// and a trailing / are accepted'
} as const

/** Schema of RuntimeDataBody. */
export const runtimeDataBodySchema = {
  type: 'object',
  required: ['runtime_data'],
  properties: { runtime_data: runtimeData }
} as const

/** Schema of MaaAttestBody. */
export const maaAttestBodySchema = {
  type: 'object',
  required: ['maa_endpoint', 'runtime_data'],
  properties: { maa_endpoint: endpoint, runtime_data: runtimeData }
} as const

/**
 * Schema of KeyReleaseBody. access_token may be "" or null: the reference (a Go string
 * with no `required`) treats both as "no token, use the sidecar's identity", and templated
 * clients send `"access_token": ""`.
 */
export const keyReleaseBodySchema = {
  type: 'object',
  required: ['maa_endpoint', 'akv_endpoint'],
  // Exactly one of kid (the reference's shape) and kids (the batch). Neither: ajv's first error is
  // "kid is required" (the first branch's); both: describeValidationIssue's oneOf sentence.
  oneOf: [{ required: ['kid'] }, { required: ['kids'] }],
  properties: {
    maa_endpoint: endpoint,
    akv_endpoint: endpoint,
    kid: { type: 'string', minLength: 1, pattern: KID_PATTERN, description: 'key name, optionally followed by /version' },
    kids: {
      type: 'array',
      minItems: 1,
      maxItems: MAX_BATCH_KIDS,
      uniqueItems: true,
      items: { type: 'string', minLength: 1, pattern: KID_PATTERN },
      description: 'skr extension, instead of kid: several key ids of this vault, released under one attestation; answered with {"keys","errors"}'
    },
    access_token: {
      type: ['string', 'null'],
      maxLength: MAX_ACCESS_TOKEN_LENGTH,
      // It becomes an Authorization header value: a CR, LF or NUL there would be refused by the
      // HTTP client only after the attestation was done (or split the header). Bearer tokens
      // (RFC 6750 §2.1 b64token; Entra's are JWTs) are printable ASCII without spaces.
      pattern: ACCESS_TOKEN_PATTERN,
      description: 'an Entra access token for the vault; "" or null (or absent) means the sidecar\'s own identity'
    }
  }
} as const

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

/** 200 body of GET /status: the reference's `message` plus skr's attestation facts. */
export const statusResponseSchema = {
  type: 'object',
  description: 'Serving; the attestation backend in use',
  required: ['message'],
  properties: {
    message: { type: 'string', description: 'always "Status OK" (the reference\'s text)' },
    attestation: {
      type: 'object',
      required: ['backend', 'simulated'],
      properties: {
        backend: { type: ['string', 'null'], description: 'tsm, sev-guest, sev or simulated; null when none is usable' },
        simulated: { type: 'boolean', description: 'true when there is no hardware root of trust' }
      }
    },
    warning: { type: 'string', description: 'present while attestation is simulated' }
  }
} as const

/** 200 body of POST /attest/raw. */
export const rawReportResponseSchema = {
  type: 'object',
  description: 'The report',
  required: ['report'],
  properties: { report: { type: 'string', description: 'the attestation report, lowercase hex' } }
} as const

/** 200 body of POST /attest/combined (field names fixed by the Privacy Sandbox KMS). */
export const combinedResponseSchema = {
  type: 'object',
  description: 'Report, certificate chain and UVM endorsements',
  required: ['endorsed_tcb', 'endorsements', 'evidence', 'uvm_endorsements'],
  properties: {
    endorsed_tcb: { type: 'string', description: 'TCBM of the certified chain, 16 hex digits' },
    endorsements: { type: 'string', description: 'base64 of the PEM chain VCEK, ASK, ARK' },
    evidence: { type: 'string', description: 'base64 of the attestation report' },
    uvm_endorsements: { type: 'string', description: 'base64 of the UVM reference info (COSE_Sign1); empty when absent' }
  }
} as const

/** 200 body of POST /attest/maa. */
export const maaTokenResponseSchema = {
  type: 'object',
  description: 'The MAA token',
  required: ['token'],
  properties: { token: { type: 'string', description: 'the MAA attestation token (a JWT)' } }
} as const

/** 200 body of POST /key/release: the JWK serialised as a JSON string (reference shape). */
export const keyReleaseResponseSchema = {
  type: 'object',
  description: 'The released key',
  required: ['key'],
  properties: { key: { type: 'string', description: 'the released key as a JWK, serialised to a JSON string' } }
} as const

/** 200 body of a batch POST /key/release (skr extension): per-kid keys (JWK strings) and per-kid errors. */
export const keyReleaseBatchResponseSchema = {
  type: 'object',
  description: 'The released keys and the per-kid failures; every requested kid is in exactly one of the two',
  required: ['keys', 'errors'],
  properties: {
    keys: { type: 'object', additionalProperties: { type: 'string' }, description: 'kid → the released key as a JWK, serialised to a JSON string' },
    errors: {
      type: 'object',
      description: 'kid → why it was not released (a fixed sentence per code for 5xx codes)',
      additionalProperties: {
        type: 'object',
        required: ['error', 'code'],
        properties: { error: { type: 'string' }, code: { type: 'string' } }
      }
    }
  }
} as const

/** 200 body of POST /key/release: the reference's {"key"} for `kid`, {"keys","errors"} for `kids`. */
export const keyReleaseAnyResponseSchema = {
  description: 'The released key ({"key"}) for kid; the released keys and the per-kid errors ({"keys","errors"}) for kids',
  anyOf: [keyReleaseResponseSchema, keyReleaseBatchResponseSchema]
} as const

/** The parts of an ajv error this module reads (fastify's FastifySchemaValidationError). */
export interface ValidationIssue {
  keyword: string
  instancePath: string
  params: Record<string, unknown>
}

// Messages for `oneOf` failures where more than one branch passed (ajv says "must match exactly one schema").
const ONE_OF_RULES: Readonly<Record<string, string>> = {
  body: 'body.kid and body.kids are mutually exclusive'
}

// Messages for `pattern` failures, which ajv can only describe as the regex itself.
const PATTERN_RULES: Readonly<Record<string, string>> = {
  'body.kid': 'body.kid must be a key name (1-127 letters, digits or dashes), optionally followed by /version (1-64 letters or digits)',
  'body.kids.*': 'body.kids entries must be key names (1-127 letters, digits or dashes), optionally followed by /version (1-64 letters or digits)',
  'body.access_token': 'body.access_token must be a bearer token: printable ASCII, without spaces or control characters (CR, LF, NUL)'
}

function fieldPath (context: string, instancePath: string): string {
  const parts = instancePath.split('/').slice(1).map(p => p.replace(/~1/g, '/').replace(/~0/g, '~'))
  return [context, ...parts].join('.')
}

/**
 * Turns ajv's first error into a stable sentence naming the field
 * ("body.runtime_data is required", "body.kid must be a string").
 */
export function describeValidationIssue (issue: ValidationIssue, context: string): string {
  const path = fieldPath(context, issue.instancePath)
  const p = issue.params
  switch (issue.keyword) {
    case 'required':
      return `${path}.${String(p.missingProperty)} is required`
    case 'type': {
      if (issue.instancePath === '') return `${path} must be a JSON object`
      const type = String(p.type).split(',')[0] ?? 'value'
      return `${path} must be a${/^[aeiou]/.test(type) ? 'n' : ''} ${type}`
    }
    case 'minLength':
      return p.limit === 1 ? `${path} must not be empty` : `${path} must be at least ${String(p.limit)} characters`
    case 'maxLength':
      return `${path} must be at most ${String(p.limit)} characters`
    case 'pattern':
      return PATTERN_RULES[path] ?? PATTERN_RULES[path.replace(/\.\d+$/, '.*')] ?? `${path} has an invalid format`
    case 'minItems':
      return `${path} must list at least ${String(p.limit)} item${p.limit === 1 ? '' : 's'}`
    case 'maxItems':
      return `${path} must list at most ${String(p.limit)} items`
    case 'uniqueItems':
      return `${path} must not list the same item twice`
    case 'oneOf':
      return ONE_OF_RULES[path] ?? `${path} is invalid`
    default:
      return `${path} is invalid`
  }
}
