// skr's /metrics passes `promtool check metrics` (Prometheus's linter): checked by the same rules
// in TypeScript (test/helpers/promlint.ts) everywhere, and by the real promtool where it is
// installed (test/process/observability/exposition.test.ts). Also: one label name for a status,
// and counters with known label sets exported at 0 from the start.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { createMetricsRegistry, DROPPED_DEFAULT_METRICS, KNOWN_CACHES, SHED_REASONS, CLIENT_ERROR_CODES } from '../../../src/observability/registry.ts'
import { BAD, busyExposition, servedExposition } from '../../helpers/expositions.ts'
import { lintExposition, parseExposition } from '../../helpers/promlint.ts'
import { repoRoot } from '../../helpers/vectors.ts'

function lines (text: string, prefix: string): string[] {
  return text.split('\n').filter(l => l.startsWith(prefix))
}


t.test('the checker finds what promtool finds (and skr\'s status rule)', async t => {
  t.same(lintExposition(BAD), [
    { metric: 'app_open_total', text: 'non-counter metrics should not have "_total" suffix' },
    { metric: 'app_requests', text: 'no help text' },
    { metric: 'app_requests', text: 'counter metrics should have "_total" suffix' },
    { metric: 'app_requests', text: 'label names should be written in \'snake_case\' not \'camelCase\'' },
    { metric: 'app_latency_ms', text: 'metric names should not contain abbreviated units' },
    { metric: 'app_latency_ms', text: 'a status is labelled "status" on every skr series, not "status_code"' }
  ])
  t.same(lintExposition('# HELP x_duration_milliseconds d\n# TYPE x_duration_milliseconds gauge\nx_duration_milliseconds 1\n'),
    [{ metric: 'x_duration_milliseconds', text: 'use base unit "seconds" instead of "milliseconds"' }])
})

t.test('skr\'s exposition has none of those problems', async t => {
  const busy = await busyExposition()
  t.same(lintExposition(busy), [], 'a registry with every series observed')
  t.same(lintExposition(await servedExposition()), [], 'GET /metrics of an app')
  const names = parseExposition(busy).map(f => f.name)
  for (const dropped of DROPPED_DEFAULT_METRICS) t.notOk(names.includes(`skr_${dropped}`), `skr_${dropped} is not exported`)
  t.ok(names.includes('skr_nodejs_active_handles'), 'the per-type twin is: its sum is the same number')
  t.ok(names.includes('skr_process_cpu_seconds_total'), 'the other default metrics stay')
})

t.test('one label name for a status: `status`, on both request histograms', async t => {
  const families = parseExposition(await busyExposition())
  const withStatus = families.filter(f => [...f.labelNames].some(l => /status/.test(l)))
  t.same(withStatus.map(f => [f.name, [...f.labelNames].filter(l => /status/.test(l))]), [
    ['skr_http_request_duration_seconds', ['status']],
    ['skr_upstream_request_duration_seconds', ['status']]
  ])
})

t.test('counters of known label sets are exported at 0 before anything happened', async t => {
  const text = await createMetricsRegistry({ defaultMetrics: false }).render()
  t.same(lines(text, 'skr_key_releases_total'), [
    'skr_key_releases_total{outcome="released"} 0',
    'skr_key_releases_total{outcome="denied"} 0',
    'skr_key_releases_total{outcome="error"} 0'
  ])
  t.same(lines(text, 'skr_cache_lookups_total'), KNOWN_CACHES.flatMap(cache => ['hit', 'miss'].map(result => `skr_cache_lookups_total{cache="${cache}",result="${result}"} 0`)))
  t.same(lines(text, 'skr_http_shed_total'), SHED_REASONS.map(reason => `skr_http_shed_total{reason="${reason}"} 0`))
  t.same(lines(text, 'skr_http_client_errors_total'), CLIENT_ERROR_CODES.map(code => `skr_http_client_errors_total{code="${code}"} 0`))
  t.same(lines(text, 'skr_http_connections_dropped_total'), ['skr_http_connections_dropped_total 0'])
})

t.test('docs/troubleshooting.md lists every series with its labels, and no series that does not exist', async t => {
  const doc = readFileSync(`${repoRoot}/docs/troubleshooting.md`, 'utf8')
  const rows = new Map<string, string>()
  for (const m of doc.matchAll(/^\s*\| `(skr_[a-z_*]+)`[^|]*\| ([^|]*) \|/gm)) rows.set(m[1] as string, m[2] as string)
  const families = parseExposition(await busyExposition())
  t.ok(rows.has('skr_process_*') && doc.includes('`skr_process_*`, `skr_nodejs_*`'), 'prom-client\'s defaults have their wildcard row')
  for (const f of families) {
    if (/^skr_(process|nodejs)_/.test(f.name)) continue
    const labels = rows.get(f.name)
    t.ok(labels !== undefined, `${f.name} has a row`)
    for (const label of [...f.labelNames].filter(l => l !== 'le')) t.match(labels ?? '', `\`${label}\``, `${f.name}: label ${label} is documented`)
  }
  const exported = new Set(families.map(f => f.name))
  for (const name of rows.keys()) if (!name.endsWith('*')) t.ok(exported.has(name), `${name} (documented) is exported`)
})
