// The domain-facing Metrics seam: the no-op default, outcome classification, and the release
// wrapper that counts every release (and every key of a batch) once without changing its result.
import t from 'tap'
import { AccessDenied, KeyNotFound, KeyReleaseDenied, UpstreamTimeout, UpstreamUnavailable } from '../../../src/errors.ts'
import { instrumentKeyRelease } from '../../../src/service/instrumented-release.ts'
import {
  noopMetrics,
  releaseOutcomeOf,
  upstreamFailureStatus,
  type Metrics,
  type ReleaseOutcome
} from '../../../src/observability/metrics.ts'
import type { KeyReleaseBatchRequest, KeyReleaseBatchResult, KeyReleaseRequest, KeyReleaseService } from '../../../src/service/types.ts'

function recorder (): { metrics: Metrics; outcomes: ReleaseOutcome[] } {
  const outcomes: ReleaseOutcome[] = []
  return { metrics: { ...noopMetrics, releaseResult (o) { outcomes.push(o) } }, outcomes }
}

const REQUEST: KeyReleaseRequest = { maaEndpoint: 'm.attest.azure.net', akvEndpoint: 'v.vault.azure.net', kid: 'k' }

t.test('noopMetrics accepts every call and records nothing', async t => {
  t.doesNotThrow(() => {
    noopMetrics.observeUpstream('maa', '200', 0.1)
    noopMetrics.cacheResult('aad_token', true)
    noopMetrics.setPoolDepth('wrapping_keys', 3)
    noopMetrics.setAttestationBackend('tsm', false)
    noopMetrics.releaseResult('released')
  })
  t.ok(Object.isFrozen(noopMetrics))
})

t.test('a vault refusal is denied; anything else is error', async t => {
  t.equal(releaseOutcomeOf(new KeyReleaseDenied('policy')), 'denied')
  t.equal(releaseOutcomeOf(new AccessDenied('role')), 'denied')
  t.equal(releaseOutcomeOf(new KeyNotFound('no key')), 'denied')
  t.equal(releaseOutcomeOf(new UpstreamUnavailable('down')), 'error')
  t.equal(releaseOutcomeOf(new Error('bug')), 'error')
  t.equal(releaseOutcomeOf('thrown string'), 'error')
})

t.test('upstream failures are timeout or error', async t => {
  t.equal(upstreamFailureStatus(new UpstreamTimeout('slow')), 'timeout')
  t.equal(upstreamFailureStatus(new UpstreamUnavailable('down')), 'error')
  t.equal(upstreamFailureStatus(new TypeError('x')), 'error')
})

t.test('instrumentKeyRelease counts each release once and passes results and errors through', async t => {
  const { metrics, outcomes } = recorder()
  let next: unknown = null
  let closed = 0
  const seen: Array<AbortSignal | undefined> = []
  const service: KeyReleaseService & { close (): Promise<void> } = {
    async release (_request, signal) {
      seen.push(signal)
      if (next !== null) throw next
      return { kty: 'oct', k: 'AAAA' }
    },
    async close () { closed++ }
  }
  const wrapped = instrumentKeyRelease(service, metrics)
  const signal = new AbortController().signal
  t.same(await wrapped.release(REQUEST, signal), { kty: 'oct', k: 'AAAA' })
  t.equal(seen[0], signal, 'the signal reaches the service')
  const denied = new KeyReleaseDenied('policy not met')
  next = denied
  await t.rejects(wrapped.release(REQUEST), denied)
  next = new UpstreamUnavailable('akv down')
  await t.rejects(wrapped.release(REQUEST), { code: 'ERR_UPSTREAM_UNAVAILABLE' })
  t.same(outcomes, ['released', 'denied', 'error'])
  await wrapped.close()
  t.equal(closed, 1, 'other members still work')
})

t.test('instrumentKeyRelease counts each key of a batch with its own outcome, and passes the result through', async t => {
  const { metrics, outcomes } = recorder()
  const BATCH: KeyReleaseBatchRequest = { maaEndpoint: 'm.attest.azure.net', akvEndpoint: 'v.vault.azure.net', kids: ['a', 'b', 'c', 'd', 'e'] }
  let answer: KeyReleaseBatchResult | Error = {
    keys: { a: { kty: 'oct', k: 'AAAA' }, d: { kty: 'oct', k: 'BBBB' } },
    errors: { b: new KeyReleaseDenied('policy not met'), c: new UpstreamUnavailable('akv down'), e: new KeyNotFound('no key') }
  }
  const seen: Array<{ self: unknown, signal: AbortSignal | undefined }> = []
  const service: KeyReleaseService = {
    async release () { return { kty: 'oct', k: 'AAAA' } },
    async releaseMany (_request, signal) {
      seen.push({ self: this, signal })
      if (answer instanceof Error) throw answer
      return answer
    }
  }
  const releaseMany = instrumentKeyRelease(service, metrics).releaseMany
  if (releaseMany === undefined) throw new Error('the wrapper lost releaseMany')
  const signal = new AbortController().signal
  const result = await releaseMany(BATCH, signal)
  t.equal(result, answer, 'the result passes through untouched')
  t.equal(seen[0]?.self, service, 'called on the service')
  t.equal(seen[0]?.signal, signal, 'the signal reaches the service')
  t.same(outcomes.sort(), ['denied', 'denied', 'error', 'released', 'released'], 'one count per key, by its own outcome')

  outcomes.length = 0
  answer = new UpstreamUnavailable('attestation: maa down')
  await t.rejects(async () => { await releaseMany(BATCH) }, answer)
  t.same(outcomes, ['error', 'error', 'error', 'error', 'error'], 'a batch failing as a whole counts each of its keys')
  outcomes.length = 0
  answer = new AccessDenied('attestation: MAA refused our credentials')
  await t.rejects(async () => { await releaseMany({ ...BATCH, kids: ['a', 'a'] }) }, answer)
  t.same(outcomes, ['denied'], 'each distinct kid once')

  t.equal(instrumentKeyRelease<KeyReleaseService>({ release: service.release }, metrics).releaseMany, undefined, 'no batch support is kept as none (the route answers 400)')
})
