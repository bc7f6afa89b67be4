// GET /livez and GET /readyz, next to the reference's /status (which keeps its exact shape).
// - /livez: the process is serving; 503 only when the load-shedding sampler measured an event-loop delay
//   over its ceiling (a wedged loop is the one state a restart fixes).
// - /readyz: skr can do its job: the config was valid (it started), the attestation backend is
//   usable and its collateral present (AttestationService.status().problems), an identity is
//   configured, and it is not shutting down. The body says what is missing.
// Both are cheap, carry no secrets, and are never shed (see ./backpressure.ts).
import type { FastifyInstance } from 'fastify'
import type { AttestationService } from '../../service/types.ts'
import type { Lifecycle } from '../lifecycle.ts'
import { errorResponses } from '../error-schemas.ts'
import { plainJsonSerializer } from './lazy-schemas.ts'

/** What the identity module reports for /readyz. */
export interface IdentityStatus {
  /** True when a credential (managed or workload identity) is set up. */
  configured: boolean
  /** 'managed identity', 'workload identity', ... */
  kind: string
  /** Why it is not usable, when it is not (no secrets: names of settings, not values). */
  problem?: string
}

/** What the probes read. */
export interface HealthDeps {
  attestation: AttestationService
  identityStatus?: () => IdentityStatus
  lifecycle: Pick<Lifecycle, 'draining'>
  /** Event-loop delay (ms) as last sampled. */
  eventLoopDelayMs: () => number
  /** The ceiling above which the process is not live (0: never). */
  maxEventLoopDelayMs: number
  /** How long /readyz waits for a dependency's status (ms). */
  checkTimeoutMs?: number
}

/** The body of GET /readyz. */
export interface ReadinessBody {
  ready: boolean
  checks: Record<string, boolean>
  problems?: string[]
}

/** The body of GET /livez. */
export interface LivenessBody {
  live: boolean
  problems?: string[]
}

const MAX_PROBLEM_LENGTH = 300
const DEFAULT_CHECK_TIMEOUT_MS = 2000

export const readinessSchema = {
  type: 'object',
  required: ['ready', 'checks'],
  properties: {
    ready: { type: 'boolean' },
    checks: {
      type: 'object',
      description: 'Each check and whether it passed: config, attestation (backend and collateral), identity (when known), accepting (not shutting down)',
      additionalProperties: { type: 'boolean' }
    },
    problems: { type: 'array', items: { type: 'string' }, description: 'What is missing, one sentence each (only when not ready)' }
  }
} as const

export const livenessSchema = {
  type: 'object',
  required: ['live'],
  properties: {
    live: { type: 'boolean' },
    problems: { type: 'array', items: { type: 'string' } }
  }
} as const

function clip (text: string): string {
  return text.length > MAX_PROBLEM_LENGTH ? `${text.slice(0, MAX_PROBLEM_LENGTH - 3)}...` : text
}

async function withTimeout<T> (work: () => Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(`${what} did not answer within ${ms} ms`)) }, ms)
  })
  try {
    return await Promise.race([work(), expired])
  } finally {
    clearTimeout(timer)
  }
}

/** Evaluates readiness (exported for the gRPC health service and tests). */
export async function readiness (deps: HealthDeps): Promise<ReadinessBody> {
  const checks: Record<string, boolean> = { config: true }
  const problems: string[] = []
  const timeoutMs = deps.checkTimeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS

  try {
    const status = await withTimeout(async () => await deps.attestation.status(), timeoutMs, 'the attestation status')
    checks.attestation = status.problems.length === 0
    problems.push(...status.problems.map(p => `attestation: ${p}`))
  } catch (err) {
    checks.attestation = false
    problems.push(`attestation: ${err instanceof Error ? err.message : 'status unavailable'}`)
  }

  if (deps.identityStatus !== undefined) {
    try {
      const identity = deps.identityStatus()
      checks.identity = identity.configured && identity.problem === undefined
      if (!checks.identity) problems.push(`identity (${identity.kind}): ${identity.problem ?? 'not configured'}`)
    } catch {
      checks.identity = false
      problems.push('identity: status unavailable')
    }
  }

  checks.accepting = !deps.lifecycle.draining
  if (!checks.accepting) problems.push('shutting down')

  const ready = Object.values(checks).every(Boolean)
  return ready ? { ready, checks } : { ready, checks, problems: problems.map(clip) }
}

/** Registers GET /livez and GET /readyz. */
export function registerHealthRoutes (app: FastifyInstance, deps: HealthDeps): void {
  app.get('/livez', {
    schema: {
      summary: 'Liveness probe',
      operationId: 'getLiveness',
      description: '200 while the process serves requests; 503 when the event loop is wedged (sampled delay above its ceiling). Never shed.',
      tags: ['probes'],
      response: {
        200: { ...livenessSchema, description: 'Live' },
        503: { ...livenessSchema, description: 'Not live: the event loop is wedged' },
        ...errorResponses
      }
    },
    serializerCompiler: plainJsonSerializer
  }, async (_request, reply): Promise<LivenessBody> => {
    const delay = deps.eventLoopDelayMs()
    if (deps.maxEventLoopDelayMs > 0 && delay > deps.maxEventLoopDelayMs) {
      reply.code(503)
      return { live: false, problems: [`event loop delay ${Math.round(delay)} ms is over ${deps.maxEventLoopDelayMs} ms`] }
    }
    return { live: true }
  })

  app.get('/readyz', {
    schema: {
      summary: 'Readiness probe',
      operationId: 'getReadiness',
      description: '200 when skr can attest and release keys: valid config, a usable attestation backend with its collateral, a configured identity, not shutting down. 503 lists what is missing. Never shed.',
      tags: ['probes'],
      response: {
        200: { ...readinessSchema, description: 'Ready' },
        503: { ...readinessSchema, description: 'Not ready (or shutting down); problems says why' },
        ...errorResponses
      }
    },
    serializerCompiler: plainJsonSerializer
  }, async (_request, reply): Promise<ReadinessBody> => {
    const body = await readiness(deps)
    if (!body.ready) reply.code(503)
    return body
  })
}
