// Request and response JSON schemas for the reference-compatible API, with the TypeScript
// shapes they guarantee. The error body every route answers with is in ./error-schemas.ts, and
// ajv's errors become stable sentences in ./validation-messages.ts.
//
// Request bodies allow additional properties on purpose: the reference decodes with Go's
// json.Unmarshal, which ignores unknown fields, and drop-in clients may send extras. Only
// the known fields are type-checked. Response schemas are the accidental-disclosure guard:
// fastify's serializer emits only the properties declared here.
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
