// The key-release service as every transport sees it in the sidecar: each release (and each key of a
// batch) counted once in the release metrics. It wraps the service rather than living in
// observability/, so the metrics seam stays below the services it measures.
import { releaseOutcomeOf, type Metrics } from '../observability/metrics.ts'
import type { KeyReleaseBatchResult, KeyReleaseService } from './types.ts'

/**
 * Wraps a KeyReleaseService so every release (HTTP or gRPC, whoever holds the wrapper) counts
 * once in `releaseResult`, and so does every key of a batch (releaseMany): each released key as
 * 'released', each per-key failure by its own error; a batch that fails as a whole (its
 * attestation failed, the caller went away) counts each distinct kid it asked for with that
 * failure's outcome, as that many single releases failing the same way would. The result and the
 * error pass through unchanged.
 */
export function instrumentKeyRelease<S extends KeyReleaseService> (service: S, metrics: Metrics): S {
  const release: KeyReleaseService['release'] = async (request, signal) => {
    try {
      const jwk = await service.release(request, signal)
      metrics.releaseResult('released')
      return jwk
    } catch (err) {
      metrics.releaseResult(releaseOutcomeOf(err))
      throw err
    }
  }
  const members: Pick<KeyReleaseService, 'release' | 'releaseMany'> = { release }
  const releaseMany = service.releaseMany
  if (typeof releaseMany === 'function') {
    members.releaseMany = async (request, signal) => {
      let result: KeyReleaseBatchResult
      try {
        result = await releaseMany.call(service, request, signal)
      } catch (err) {
        // Each distinct kid counts once (the route's schema already bounds them: 1 to 16, distinct).
        const kids = Array.isArray(request.kids) ? new Set(request.kids).size : 0
        const outcome = releaseOutcomeOf(err)
        for (let i = 0; i < kids; i++) metrics.releaseResult(outcome)
        throw err
      }
      for (let i = Object.keys(result.keys).length; i > 0; i--) metrics.releaseResult('released')
      for (const err of Object.values(result.errors)) metrics.releaseResult(releaseOutcomeOf(err))
      return result
    }
  }
  // Keep the service's other members (close(), ...) by delegating through the prototype chain.
  return Object.assign(Object.create(service) as S, members)
}
