// POST /key/release: validate the caller's endpoints and key id, release under the request
// deadline, and answer `{"key": "<JWK as a JSON string>"}`. The doubly-encoded JWK is the
// reference's shape and clients (e.g. its Kafka demo) parse it twice, so it is kept.
import type { FastifyInstance } from 'fastify'
import type { Config } from '../../config.ts'
import { normaliseEndpoint } from '../../http/endpoint.ts'
import type { KeyReleaseRequest, KeyReleaseService } from '../../service/types.ts'
import { withDeadline } from '../deadline.ts'
import { errorResponses, keyReleaseBodySchema, keyReleaseResponseSchema, type KeyReleaseBody } from '../schemas.ts'

/** Builds the service request from a schema-checked body (throws RequestInvalid for bad endpoints). */
export function toKeyReleaseRequest (body: KeyReleaseBody): KeyReleaseRequest {
  const request: KeyReleaseRequest = {
    maaEndpoint: normaliseEndpoint(body.maa_endpoint, 'body.maa_endpoint'),
    akvEndpoint: normaliseEndpoint(body.akv_endpoint, 'body.akv_endpoint'),
    kid: body.kid
  }
  // "" and null mean "no token" in the reference (Go's zero value), so only a real token is passed on.
  const token = body.access_token
  return typeof token === 'string' && token !== '' ? { ...request, accessToken: token } : request
}

/** Registers POST /key/release. */
export function registerKeyReleaseRoute (app: FastifyInstance, config: Config, keyRelease: KeyReleaseService): void {
  app.post<{ Body: KeyReleaseBody }>('/key/release', {
    schema: { body: keyReleaseBodySchema, response: { 200: keyReleaseResponseSchema, ...errorResponses } }
  }, async (request, reply) => {
    const releaseRequest = toKeyReleaseRequest(request.body)
    request.log.info({ kid: releaseRequest.kid, akv: releaseRequest.akvEndpoint, maa: releaseRequest.maaEndpoint }, 'key release requested')
    const jwk = await withDeadline(reply, config.requestTimeoutMs, signal => keyRelease.release(releaseRequest, signal))
    return { key: JSON.stringify(jwk) }
  })
}
