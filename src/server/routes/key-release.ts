// POST /key/release: validate the caller's endpoints and key id, release under the request
// deadline, and answer `{"key": "<JWK as a JSON string>"}`. The doubly-encoded JWK is the
// reference's shape and clients (e.g. its Kafka demo) parse it twice, so it is kept.
// skr's batch extension: `kids` instead of `kid` releases several keys under one attestation and
// answers {"keys": {kid: JWK string}, "errors": {kid: {error, code}}} (200 when at least one key
// was released; otherwise the first kid's error, in the usual error shape and status).
import type { FastifyInstance } from 'fastify'
import type { Config } from '../../config/config.ts'
import { normaliseEndpoint } from '../../http/endpoint.ts'
import { RequestInvalid } from '../../errors.ts'
import type { KeyReleaseBatchRequest, KeyReleaseBatchResult, KeyReleaseRequest, KeyReleaseService } from '../../service/types.ts'
import { withDeadline } from '../deadline.ts'
import { errorBody } from '../error-handler.ts'
import { postErrorResponses } from '../error-schemas.ts'
import { keyReleaseAnyResponseSchema, keyReleaseBodySchema, type KeyReleaseBody } from '../schemas.ts'

// What a release can fail with, besides what every POST route can (error-schemas.ts postErrorResponses).
const RELEASE_ERRORS = {
  403: 'The key\'s release policy is not met (ERR_KEY_RELEASE_DENIED), the vault refused skr\'s identity or has no such key (ERR_ACCESS_DENIED, ERR_KEY_NOT_FOUND), a host is not in SKR_ALLOWED_HOSTS (ERR_ENDPOINT_NOT_ALLOWED), or the release answer did not verify (ERR_RELEASE_UNVERIFIED)',
  502: 'MAA or the vault answered badly (ERR_UPSTREAM_REJECTED, ERR_UPSTREAM_RESPONSE_INVALID) or its host name does not exist (ERR_UPSTREAM_NOT_FOUND), a token or chain did not verify (ERR_MAA_TOKEN_INVALID, ERR_CERT_CHAIN_INVALID, ERR_TCB_MISMATCH), or the key could not be unwrapped (ERR_KEY_UNWRAP_FAILED)',
  503: 'MAA, the vault, the identity, the attestation device or its collateral is unavailable (ERR_UPSTREAM_UNAVAILABLE, ERR_IDENTITY_UNAVAILABLE, ERR_SNP_DEVICE_UNAVAILABLE, ERR_COLLATERAL_UNAVAILABLE)'
} as const

/** Builds the service request from a schema-checked body (throws RequestInvalid for bad endpoints or a missing kid). */
export function toKeyReleaseRequest (body: KeyReleaseBody): KeyReleaseRequest {
  if (body.kid === undefined) throw new RequestInvalid('body.kid is required')
  const { maaEndpoint, akvEndpoint, accessToken } = toKeyReleaseBatchRequest({ ...body, kids: [] })
  return accessToken === undefined ? { maaEndpoint, akvEndpoint, kid: body.kid } : { maaEndpoint, akvEndpoint, kid: body.kid, accessToken }
}

/** Builds the batch request from a schema-checked body with `kids` (throws RequestInvalid for bad endpoints). */
export function toKeyReleaseBatchRequest (body: KeyReleaseBody & { kids: string[] }): KeyReleaseBatchRequest {
  const request: KeyReleaseBatchRequest = {
    maaEndpoint: normaliseEndpoint(body.maa_endpoint, 'body.maa_endpoint'),
    akvEndpoint: normaliseEndpoint(body.akv_endpoint, 'body.akv_endpoint'),
    kids: body.kids
  }
  // "" and null mean "no token" in the reference (Go's zero value), so only a real token is passed on.
  const token = body.access_token
  return typeof token === 'string' && token !== '' ? { ...request, accessToken: token } : request
}

/** The 200 body of a batch: JWK strings and {error, code} per kid (5xx errors get their fixed sentence). */
export function toBatchResponse (result: KeyReleaseBatchResult, requestId: string): { keys: Record<string, string>, errors: Record<string, { error: string, code: string }> } {
  return {
    keys: Object.fromEntries(Object.entries(result.keys).map(([kid, jwk]) => [kid, JSON.stringify(jwk)])),
    errors: Object.fromEntries(Object.entries(result.errors).map(([kid, err]) => {
      const { error, code } = errorBody(err, requestId)
      return [kid, { error, code }]
    }))
  }
}

/** Registers POST /key/release. */
export function registerKeyReleaseRoute (app: FastifyInstance, config: Config, keyRelease: KeyReleaseService): void {
  app.post<{ Body: KeyReleaseBody }>('/key/release', {
    schema: {
      summary: 'Secure key release',
      operationId: 'releaseKey',
      description: 'Attests to MAA, presents the token to Azure Key Vault or Managed HSM at akv_endpoint, and returns the released key kid as a JWK serialised into the string `key` (the reference\'s shape). access_token (optional) replaces the sidecar\'s own identity. Counted against the in-flight limit (503 ERR_OVERLOADED past it). skr extension: `kids` (1-16 distinct ids) instead of `kid` releases them all under one attestation and answers {"keys","errors"} per kid (200 when at least one was released, else the first kid\'s error).',
      tags: ['reference'],
      body: keyReleaseBodySchema,
      response: { 200: keyReleaseAnyResponseSchema, ...postErrorResponses(RELEASE_ERRORS) }
    }
  }, async (request, reply) => {
    if (request.body.kids !== undefined) {
      if (request.body.kid !== undefined) throw new RequestInvalid('body.kid and body.kids are mutually exclusive')
      const releaseMany = keyRelease.releaseMany
      if (releaseMany === undefined) throw new RequestInvalid('body.kids (batch release) is not supported by this server')
      const batch = toKeyReleaseBatchRequest({ ...request.body, kids: request.body.kids })
      request.log.info({ kids: batch.kids, akv: batch.akvEndpoint, maa: batch.maaEndpoint }, 'key batch release requested')
      const result = await withDeadline(reply, config.requestTimeoutMs, signal => releaseMany.call(keyRelease, batch, signal))
      for (const [kid, err] of Object.entries(result.errors)) {
        request.log[err.statusCode >= 500 ? 'error' : 'info']({ kid, code: err.code, details: err.details }, err.message)
      }
      const first = batch.kids.map(kid => result.errors[kid]).find(err => err !== undefined)
      if (Object.keys(result.keys).length === 0 && first !== undefined) throw first
      return toBatchResponse(result, String(request.id))
    }
    const releaseRequest = toKeyReleaseRequest(request.body)
    request.log.info({ kid: releaseRequest.kid, akv: releaseRequest.akvEndpoint, maa: releaseRequest.maaEndpoint }, 'key release requested')
    const jwk = await withDeadline(reply, config.requestTimeoutMs, signal => keyRelease.release(releaseRequest, signal))
    return { key: JSON.stringify(jwk) }
  })
}
