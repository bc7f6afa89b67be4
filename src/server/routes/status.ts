// GET /status: the reference's liveness probe, byte-compatible in `message`, plus what skr
// knows about its attestation backend so a simulated deployment cannot pass unnoticed.
import type { FastifyInstance } from 'fastify'
import type { AttestationService } from '../../service/types.ts'
import { plainJsonSerializer } from '../plugins/lazy-schemas.ts'
import { errorResponses } from '../error-schemas.ts'
import { statusResponseSchema } from '../schemas.ts'

/** The sentence /status adds while attestation is simulated. */
export const SIMULATED_WARNING = 'attestation is SIMULATED: no hardware root of trust; keys released this way are not protected'

/** The 200 body of GET /status. */
export interface StatusBody {
  message: string
  attestation: { backend: string | null; simulated: boolean }
  warning?: string
}

/** Registers GET /status. */
export function registerStatusRoute (app: FastifyInstance, attestation: AttestationService): void {
  app.get('/status', {
    schema: {
      summary: 'Reference liveness check',
      operationId: 'getStatus',
      description: 'The reference sidecar\'s status route: `message` is always "Status OK"; skr adds the attestation backend and warns when attestation is simulated.',
      tags: ['reference'],
      response: { 200: statusResponseSchema, ...errorResponses }
    },
    serializerCompiler: plainJsonSerializer
  }, async (): Promise<StatusBody> => {
    const status = await attestation.status()
    // The reference's code sends "Status OK" (its README says "STATUS OK"); clients compare the code's text.
    const body: StatusBody = {
      message: 'Status OK',
      attestation: { backend: status.backend, simulated: status.simulated }
    }
    if (status.simulated) body.warning = SIMULATED_WARNING
    return body
  })
}
