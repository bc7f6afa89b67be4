// Expositions for the /metrics tests: a registry with every skr series observed, what an app's
// GET /metrics serves, and one that breaks promtool's rules (test/unit/observability/ and
// test/process/observability/exposition.test.ts, which runs the real promtool over them).
import { createMetricsRegistry } from '../../src/observability/registry.ts'
import { buildApp } from '../../src/server/app.ts'
import { FakeAttestationService, FakeKeyReleaseService, NO_SHEDDING, testConfig } from '../doubles/fake-services.ts'

/** A registry with default metrics and every skr series observed at least once. */
export async function busyExposition (): Promise<string> {
  const m = createMetricsRegistry()
  m.observeUpstream('maa', '200', 0.2)
  m.observeUpstream('akv', 'timeout', 30)
  m.cacheResult('aad_token', true)
  m.setPoolDepth('wrapping_key', 4)
  m.setAttestationBackend('sev-guest', false)
  m.releaseResult('released')
  m.observeRequest('POST', '/key/release', 200, 0.05)
  m.shed('eventLoopDelay')
  m.setInFlight(1)
  m.setOpenConnections(2)
  m.connectionDropped()
  m.clientError('ERR_REQUEST_TIMEOUT')
  return await m.render()
}

/** What GET /metrics of a real app serves after a few requests. */
export async function servedExposition (): Promise<string> {
  const app = buildApp({ config: testConfig(), attestation: new FakeAttestationService(), keyRelease: new FakeKeyReleaseService(), backpressure: NO_SHEDDING })
  try {
    await app.inject({ method: 'GET', url: '/status' })
    await app.inject({ method: 'GET', url: '/nowhere' })
    return (await app.inject({ method: 'GET', url: '/metrics' })).body
  } finally {
    await app.close()
  }
}

/** An exposition promtool refuses: a gauge named _total, camelCase labels, a histogram in ms. */
export const BAD = [
  '# HELP app_open_total Open things',
  '# TYPE app_open_total gauge',
  'app_open_total 1',
  '# TYPE app_requests counter',
  'app_requests{statusCode="200"} 1',
  '# HELP app_latency_ms Latency',
  '# TYPE app_latency_ms histogram',
  'app_latency_ms_bucket{le="+Inf",status_code="200"} 1',
  'app_latency_ms_sum{status_code="200"} 1',
  'app_latency_ms_count{status_code="200"} 1',
  ''
].join('\n')
