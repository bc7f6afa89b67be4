// Request and response JSON schemas for the reference-compatible API, with the TypeScript
// shapes they guarantee, and the one place ajv's errors become stable sentences.
//
// Request bodies allow additional properties on purpose: the reference decodes with Go's
// json.Unmarshal, which ignores unknown fields, and drop-in clients may send extras. Only
// the known fields are type-checked. Response schemas are the accidental-disclosure guard:
// fastify's serializer emits only the properties declared here.

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
  kid: string
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

const nonEmptyString = { type: 'string', minLength: 1 } as const

const runtimeData = nonEmptyString
const endpoint = nonEmptyString

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
  required: ['maa_endpoint', 'akv_endpoint', 'kid'],
  properties: {
    maa_endpoint: endpoint,
    akv_endpoint: endpoint,
    kid: { type: 'string', minLength: 1, pattern: KID_PATTERN },
    access_token: { type: ['string', 'null'], maxLength: MAX_ACCESS_TOKEN_LENGTH }
  }
} as const

/** Schema of ErrorBody (used for every 4xx and 5xx response). */
export const errorBodySchema = {
  type: 'object',
  required: ['error', 'code', 'requestId'],
  properties: {
    error: { type: 'string' },
    code: { type: 'string' },
    requestId: { type: 'string' }
  }
} as const

/** Response entries every route shares. */
export const errorResponses = { '4xx': errorBodySchema, '5xx': errorBodySchema } as const

/** 200 body of GET /status: the reference's `message` plus skr's attestation facts. */
export const statusResponseSchema = {
  type: 'object',
  required: ['message'],
  properties: {
    message: { type: 'string' },
    attestation: {
      type: 'object',
      required: ['backend', 'simulated'],
      properties: {
        backend: { type: ['string', 'null'] },
        simulated: { type: 'boolean' }
      }
    },
    warning: { type: 'string' }
  }
} as const

/** 200 body of POST /attest/raw. */
export const rawReportResponseSchema = {
  type: 'object',
  required: ['report'],
  properties: { report: { type: 'string' } }
} as const

/** 200 body of POST /attest/combined (field names fixed by the Privacy Sandbox KMS). */
export const combinedResponseSchema = {
  type: 'object',
  required: ['endorsed_tcb', 'endorsements', 'evidence', 'uvm_endorsements'],
  properties: {
    endorsed_tcb: { type: 'string' },
    endorsements: { type: 'string' },
    evidence: { type: 'string' },
    uvm_endorsements: { type: 'string' }
  }
} as const

/** 200 body of POST /attest/maa. */
export const maaTokenResponseSchema = {
  type: 'object',
  required: ['token'],
  properties: { token: { type: 'string' } }
} as const

/** 200 body of POST /key/release: the JWK serialised as a JSON string (reference shape). */
export const keyReleaseResponseSchema = {
  type: 'object',
  required: ['key'],
  properties: { key: { type: 'string' } }
} as const

/** The parts of an ajv error this module reads (fastify's FastifySchemaValidationError). */
export interface ValidationIssue {
  keyword: string
  instancePath: string
  params: Record<string, unknown>
}

// Messages for `pattern` failures, which ajv can only describe as the regex itself.
const PATTERN_RULES: Readonly<Record<string, string>> = {
  'body.kid': 'body.kid must be a key name (1-127 letters, digits or dashes), optionally followed by /version (1-64 letters or digits)'
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
      return PATTERN_RULES[path] ?? `${path} has an invalid format`
    default:
      return `${path} is invalid`
  }
}
