// The Prometheus registry: skr_ names, the text format 0.0.4, default process metrics, and
// label values that can never carry a key name, URL or endpoint.
import t from 'tap'
import { createTokenSource } from '../../../src/identity/token-source.ts'
import { createMetricsRegistry, OTHER_LABEL, sanitiseLabel } from '../../../src/observability/registry.ts'

// Series that counted something (counters with known label sets start at 0: exposition.test.ts checks those).
function series (text: string, name: string): string[] {
  return text.split('\n').filter(line => line.startsWith(name) && !line.endsWith(' 0'))
}

t.test('renders every skr series in the 0.0.4 text format, with default process metrics', async t => {
  const m = createMetricsRegistry()
  t.equal(m.contentType, 'text/plain; version=0.0.4; charset=utf-8')
  m.observeUpstream('maa', '200', 0.2)
  m.observeUpstream('akv', 'timeout', 30)
  m.cacheResult('aad_token', true)
  m.cacheResult('aad_token', false)
  m.cacheResult('aad_token', true)
  m.setPoolDepth('wrapping_keys', 4)
  m.setAttestationBackend('tsm', false)
  m.releaseResult('released')
  m.releaseResult('denied')
  m.observeRequest('POST', '/key/release', 200, 0.05)
  m.shed('in_flight')
  m.shed('eventLoopDelay')
  m.setInFlight(3)
  const text = await m.render()
  t.same(series(text, 'skr_upstream_request_duration_seconds_count'), [
    'skr_upstream_request_duration_seconds_count{service="maa",status="200"} 1',
    'skr_upstream_request_duration_seconds_count{service="akv",status="timeout"} 1'
  ])
  t.same(series(text, 'skr_cache_lookups_total'), [
    'skr_cache_lookups_total{cache="aad_token",result="hit"} 2',
    'skr_cache_lookups_total{cache="aad_token",result="miss"} 1'
  ])
  t.same(series(text, 'skr_pool_depth'), ['skr_pool_depth{pool="wrapping_keys"} 4'])
  t.same(series(text, 'skr_attestation_backend_info'), ['skr_attestation_backend_info{backend="tsm",simulated="false"} 1'])
  t.same(series(text, 'skr_key_releases_total'), ['skr_key_releases_total{outcome="released"} 1', 'skr_key_releases_total{outcome="denied"} 1'])
  t.same(series(text, 'skr_http_request_duration_seconds_count'), ['skr_http_request_duration_seconds_count{method="POST",route="/key/release",status="200"} 1'])
  t.same(series(text, 'skr_http_shed_total'), ['skr_http_shed_total{reason="in_flight"} 1', 'skr_http_shed_total{reason="event_loop_delay"} 1'])
  t.same(series(text, 'skr_http_in_flight_releases'), ['skr_http_in_flight_releases 3'])
  t.ok(series(text, 'skr_process_cpu_seconds_total').length > 0, 'default process metrics, prefixed')
  t.ok(series(text, 'skr_nodejs_heap_size_used_bytes').length > 0, 'default Node.js metrics, prefixed')
  for (const line of text.split('\n')) {
    if (line !== '' && !line.startsWith('#')) t.match(line, /^skr_/, 'every series is prefixed')
  }
})

t.test('a second backend replaces the first', async t => {
  const m = createMetricsRegistry({ defaultMetrics: false })
  m.setAttestationBackend('tsm', false)
  m.setAttestationBackend('simulated', true)
  t.same(series(await m.render(), 'skr_attestation_backend_info'), ['skr_attestation_backend_info{backend="simulated",simulated="true"} 1'])
})

t.test('label values that are not short identifiers become "other"', async t => {
  const m = createMetricsRegistry({ defaultMetrics: false })
  m.cacheResult('myvault.vault.azure.net/keys/secret-key-name', true)
  m.setPoolDepth('Key With Spaces', 1)
  m.observeUpstream('maa', 'https://sharedeus.eus.attest.azure.net/attest', 0.1)
  m.observeUpstream('maa', '503', -1)
  m.observeRequest('POST', '/key/release?kid=secret-key-name', 200, 0.01)
  m.observeRequest('BREW', '/status', 999, 0.01)
  const text = await m.render()
  t.notMatch(text, 'secret-key-name')
  t.notMatch(text, 'vault.azure.net')
  t.notMatch(text, 'attest.azure.net')
  t.same(series(text, 'skr_cache_lookups_total'), ['skr_cache_lookups_total{cache="other",result="hit"} 1'])
  t.same(series(text, 'skr_pool_depth'), ['skr_pool_depth{pool="other"} 1'])
  t.same(series(text, 'skr_upstream_request_duration_seconds_count'), ['skr_upstream_request_duration_seconds_count{service="maa",status="other"} 1'],
    'a negative duration is dropped, a URL status is "other"')
  t.same(series(text, 'skr_http_request_duration_seconds_count'), [
    'skr_http_request_duration_seconds_count{method="POST",route="other",status="200"} 1',
    'skr_http_request_duration_seconds_count{method="other",route="/status",status="other"} 1'
  ])
  t.equal(sanitiseLabel('vcek_chain'), 'vcek_chain')
  t.equal(sanitiseLabel(''), OTHER_LABEL)
  t.equal(sanitiseLabel('a'.repeat(33)), OTHER_LABEL)
})

t.test('registries are independent (two sidecars in one process)', async t => {
  const a = createMetricsRegistry()
  const b = createMetricsRegistry()
  a.releaseResult('error')
  t.match(await a.render(), 'skr_key_releases_total{outcome="error"} 1')
  t.match(await b.render(), 'skr_key_releases_total{outcome="error"} 0')
})

t.test('default metrics are registered on the first render (or collectDefaultMetrics()), once', async t => {
  const m = createMetricsRegistry()
  t.equal(m.registry.getSingleMetric('skr_process_cpu_seconds_total'), undefined, 'not loaded at construction')
  const first = await m.render()
  t.ok(series(first, 'skr_process_cpu_seconds_total').length > 0)
  t.doesNotThrow(() => { m.collectDefaultMetrics() }, 'a second registration is a no-op')
  t.ok(series(await m.render(), 'skr_process_cpu_seconds_total').length > 0)
  const off = createMetricsRegistry({ defaultMetrics: false })
  off.collectDefaultMetrics()
  t.same(series(await off.render(), 'skr_process_cpu_seconds_total'), [], 'stays off when turned off')
})

t.test('the identity token cache records into skr_cache_lookups_total as cache="aad_token", nothing else', async t => {
  const m = createMetricsRegistry({ defaultMetrics: false })
  let now = Date.UTC(2025, 0, 1)
  const token = 'eyJhbGciOiJub25lIn0.opaque-token-value.'
  const credential = { getToken: async () => ({ token, expiresOnTimestamp: now + 60 * 60_000 }) }
  const source = createTokenSource({ credential, kind: 'managed identity', now: () => new Date(now), metrics: m })
  const resource = 'https://secret-vault-name.vault.azure.net'
  await source.getToken(resource)
  await source.getToken(resource)
  t.same(series(await m.render(), 'skr_cache_lookups_total'), [
    'skr_cache_lookups_total{cache="aad_token",result="hit"} 1',
    'skr_cache_lookups_total{cache="aad_token",result="miss"} 1'
  ], 'two token requests: one miss, then one hit')
  now += 2 * 60 * 60_000
  await source.getToken(resource)
  const text = await m.render()
  t.same(series(text, 'skr_cache_lookups_total'), [
    'skr_cache_lookups_total{cache="aad_token",result="hit"} 1',
    'skr_cache_lookups_total{cache="aad_token",result="miss"} 2'
  ], 'an expired token is a miss')
  t.notMatch(text, 'secret-vault-name', 'the resource is no label')
  t.notMatch(text, 'opaque-token-value')
})
