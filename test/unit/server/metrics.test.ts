// GET /metrics: the Prometheus text format, requests labelled by route pattern (never the URL),
// domain metrics recorded into the same registry, and no key names or endpoints anywhere.
import t from 'tap'
import { KeyNotFound, KeyReleaseDenied, UpstreamUnavailable } from '../../../src/errors.ts'
import { instrumentKeyRelease } from '../../../src/service/instrumented-release.ts'
import { createMetricsRegistry } from '../../../src/observability/registry.ts'
import { buildApp } from '../../../src/server/app.ts'
import { FakeAttestationService, FakeBatchKeyReleaseService, FakeKeyReleaseService, testConfig, NO_SHEDDING } from '../../doubles/fake-services.ts'

const KEY = { maa_endpoint: 'sharedeus.eus.attest.azure.net', akv_endpoint: 'secretvault.vault.azure.net', kid: 'top-secret-key-name' }

// Series that counted something (counters with known label sets start at 0: test/unit/observability/exposition.test.ts).
function lines (text: string, prefix: string): string[] {
  return text.split('\n').filter(l => l.startsWith(prefix) && !l.endsWith(' 0'))
}

t.test('/metrics is Prometheus text 0.0.4 with default process metrics', async t => {
  const app = buildApp({ config: testConfig(), attestation: new FakeAttestationService(), keyRelease: new FakeKeyReleaseService(), backpressure: NO_SHEDDING })
  t.teardown(() => app.close())
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8')
  t.match(res.body, /^# HELP skr_/m)
  t.match(res.body, /^skr_process_resident_memory_bytes \d+/m)
})

t.test('requests are counted by method, route pattern and status; URLs never become labels', async t => {
  const metrics = createMetricsRegistry({ defaultMetrics: false })
  const keyRelease = new FakeKeyReleaseService()
  const app = buildApp({ config: testConfig(), attestation: new FakeAttestationService(), keyRelease, metrics, backpressure: NO_SHEDDING })
  t.teardown(() => app.close())
  await app.inject({ method: 'GET', url: '/status' })
  await app.inject({ method: 'GET', url: '/status?kid=top-secret-key-name' })
  await app.inject({ method: 'POST', url: '/key/release', payload: KEY })
  await app.inject({ method: 'POST', url: '/key/release', payload: { ...KEY, kid: '' } })
  keyRelease.mode = { kind: 'fail', error: new KeyReleaseDenied('policy of top-secret-key-name not met') }
  await app.inject({ method: 'POST', url: '/key/release', payload: KEY })
  await app.inject({ method: 'GET', url: '/keys/top-secret-key-name' })
  await app.inject({ method: 'POST', url: '/attest/raw', headers: { 'content-type': 'text/plain' }, payload: 'x' })

  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.same(lines(text, 'skr_http_request_duration_seconds_count'), [
    'skr_http_request_duration_seconds_count{method="GET",route="/status",status="200"} 2',
    'skr_http_request_duration_seconds_count{method="POST",route="/key/release",status="200"} 1',
    'skr_http_request_duration_seconds_count{method="POST",route="/key/release",status="400"} 1',
    'skr_http_request_duration_seconds_count{method="POST",route="/key/release",status="403"} 1',
    'skr_http_request_duration_seconds_count{method="GET",route="unmatched",status="404"} 1',
    'skr_http_request_duration_seconds_count{method="POST",route="/attest/raw",status="415"} 1'
  ])
  for (const secret of ['top-secret-key-name', 'secretvault', 'sharedeus']) t.notMatch(text, secret)
})

t.test('domain modules record into the registry the app serves', async t => {
  const metrics = createMetricsRegistry({ defaultMetrics: false })
  const fake = new FakeKeyReleaseService()
  const app = buildApp({ config: testConfig(), attestation: new FakeAttestationService(), keyRelease: instrumentKeyRelease(fake, metrics), metrics, backpressure: NO_SHEDDING })
  t.teardown(() => app.close())
  metrics.setAttestationBackend('sev-guest', false)
  metrics.observeUpstream('akv', '200', 0.3)
  metrics.cacheResult('maa_keys', true)
  metrics.setPoolDepth('wrapping_keys', 2)
  await app.inject({ method: 'POST', url: '/key/release', payload: KEY })
  fake.mode = { kind: 'fail', error: new KeyReleaseDenied('no') }
  await app.inject({ method: 'POST', url: '/key/release', payload: KEY })
  fake.mode = { kind: 'fail', error: new Error('bug') }
  await app.inject({ method: 'POST', url: '/key/release', payload: KEY })

  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.same(lines(text, 'skr_key_releases_total'), [
    'skr_key_releases_total{outcome="released"} 1',
    'skr_key_releases_total{outcome="denied"} 1',
    'skr_key_releases_total{outcome="error"} 1'
  ])
  t.same(lines(text, 'skr_attestation_backend_info'), ['skr_attestation_backend_info{backend="sev-guest",simulated="false"} 1'])
  t.same(lines(text, 'skr_upstream_request_duration_seconds_count'), ['skr_upstream_request_duration_seconds_count{service="akv",status="200"} 1'])
  t.same(lines(text, 'skr_cache_lookups_total'), ['skr_cache_lookups_total{cache="maa_keys",result="hit"} 1'])
  t.same(lines(text, 'skr_pool_depth'), ['skr_pool_depth{pool="wrapping_keys"} 2'])
})

t.test('a batch release through the app counts each key by its outcome; key names never become labels', async t => {
  const metrics = createMetricsRegistry({ defaultMetrics: false })
  const fake = new FakeBatchKeyReleaseService()
  const app = buildApp({ config: testConfig(), attestation: new FakeAttestationService(), keyRelease: instrumentKeyRelease(fake, metrics), metrics, backpressure: NO_SHEDDING })
  t.teardown(() => app.close())
  const endpoints = { maa_endpoint: KEY.maa_endpoint, akv_endpoint: KEY.akv_endpoint }
  fake.errors.set('top-secret-denied', new KeyReleaseDenied('policy of top-secret-denied not met'))
  fake.errors.set('top-secret-missing', new KeyNotFound('no key top-secret-missing'))
  fake.errors.set('top-secret-broken', new UpstreamUnavailable('akv down'))
  const mixed = await app.inject({ method: 'POST', url: '/key/release', payload: { ...endpoints, kids: ['top-secret-a', 'top-secret-b', 'top-secret-denied', 'top-secret-missing', 'top-secret-broken'] } })
  t.equal(mixed.statusCode, 200)
  fake.batchFailure = new UpstreamUnavailable('attestation: maa down')
  const failed = await app.inject({ method: 'POST', url: '/key/release', payload: { ...endpoints, kids: ['top-secret-c', 'top-secret-d'] } })
  t.equal(failed.statusCode, 503)
  fake.batchFailure = null
  await app.inject({ method: 'POST', url: '/key/release', payload: KEY })

  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.same(lines(text, 'skr_key_releases_total'), [
    'skr_key_releases_total{outcome="released"} 3',
    'skr_key_releases_total{outcome="denied"} 2',
    'skr_key_releases_total{outcome="error"} 3'
  ], 'two released, two refused and one failed in the batch; two failed with the whole batch; one single release')
  t.notMatch(text, 'top-secret')
})
