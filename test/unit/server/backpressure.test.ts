// Load shedding at the edge (the in-flight cap, event-loop and memory pressure) answered in
// skr's error shape, probes that are never shed, and resilience: a throwing hook, serializer or
// logger still ends as a JSON answer, and a storm of failures leaves the next request unharmed.
import t from 'tap'
import * as http from 'node:http'
import { pino } from 'pino'
import { loggerOptions } from '../../../src/log.ts'
import { createMetricsRegistry, type PrometheusMetrics } from '../../../src/observability/registry.ts'
import { buildApp, type AppDeps } from '../../../src/server/app.ts'
import { listen } from '../../../src/server/listen.ts'
import { backpressureOptions, DEFAULT_BACKPRESSURE } from '../../../src/server/plugins/backpressure.ts'
import { FAKE_JWK, FakeAttestationService, FakeKeyReleaseService, GatedKeyRelease, testConfig } from '../../doubles/fake-services.ts'

const KEY_OK = { maa_endpoint: 'sharedeus.eus.attest.azure.net', akv_endpoint: 'myvault.vault.azure.net', kid: 'mykey' }
const MAA_OK = { maa_endpoint: 'sharedeus.eus.attest.azure.net', runtime_data: 'aGVsbG8=' }

function build (overrides: Partial<AppDeps> = {}): { app: ReturnType<typeof buildApp>; metrics: PrometheusMetrics } {
  const metrics = createMetricsRegistry({ defaultMetrics: false })
  const app = buildApp({
    config: testConfig({ SKR_HOST: '127.0.0.1', Port: '0' }),
    attestation: new FakeAttestationService(),
    keyRelease: new FakeKeyReleaseService(),
    metrics,
    ...overrides
  })
  return { app, metrics }
}

async function until (condition: () => boolean | Promise<boolean>): Promise<void> {
  while (!await condition()) await new Promise(resolve => setTimeout(resolve, 5))
}

t.test('options: defaults, overrides, and refusal of nonsense', async t => {
  t.same(backpressureOptions(), DEFAULT_BACKPRESSURE)
  t.same(DEFAULT_BACKPRESSURE, {
    maxInFlightReleases: 64, maxEventLoopDelayMs: 1000, maxHeapUsedBytes: 0, maxRssBytes: 512 * 1024 * 1024, sampleIntervalMs: 1000, retryAfterSeconds: 1
  })
  t.equal(backpressureOptions({ maxInFlightReleases: 8, maxRssBytes: undefined }).maxInFlightReleases, 8)
  t.throws(() => backpressureOptions({ maxInFlightReleases: 0 }), TypeError)
  t.throws(() => backpressureOptions({ maxRssBytes: -1 }), TypeError)
  t.throws(() => backpressureOptions({ maxEventLoopDelayMs: Number.NaN }), TypeError)
})

t.test('past maxInFlightReleases, releases and MAA attestations get 503 ERR_OVERLOADED with Retry-After', async t => {
  const keyRelease = new GatedKeyRelease()
  const { app, metrics } = build({ keyRelease, backpressure: { maxInFlightReleases: 2 } })
  t.teardown(() => app.close())
  const first = app.inject({ method: 'POST', url: '/key/release', payload: KEY_OK })
  const second = app.inject({ method: 'POST', url: '/key/release', payload: KEY_OK })
  await until(() => keyRelease.started.length === 2)
  t.match(await metrics.render(), 'skr_http_in_flight_releases 2')

  const third = await app.inject({ method: 'POST', url: '/key/release', payload: KEY_OK })
  t.equal(third.statusCode, 503)
  t.same(Object.keys(third.json()), ['error', 'code', 'requestId'])
  t.equal(third.json().code, 'ERR_OVERLOADED')
  t.equal(third.json().error, 'too many requests in flight; retry later')
  t.equal(third.headers['retry-after'], '1')
  const maa = await app.inject({ method: 'POST', url: '/attest/maa', payload: MAA_OK })
  t.equal(maa.statusCode, 503, '/attest/maa shares the cap')
  t.equal(keyRelease.started.length, 2, 'the refused request never reached the service')

  const raw = await app.inject({ method: 'POST', url: '/attest/raw', payload: { runtime_data: 'aGVsbG8=' } })
  t.equal(raw.statusCode, 200, 'local-only routes are not capped')
  t.equal((await app.inject({ method: 'GET', url: '/status' })).statusCode, 200)

  keyRelease.open()
  t.equal((await first).statusCode, 200)
  t.equal((await second).statusCode, 200)
  const after = app.inject({ method: 'POST', url: '/key/release', payload: KEY_OK })
  await until(() => keyRelease.started.length === 3)
  keyRelease.open()
  t.equal((await after).statusCode, 200, 'slots are given back')
  const text = await metrics.render()
  t.match(text, 'skr_http_shed_total{reason="in_flight"} 2')
  t.match(text, 'skr_http_in_flight_releases 0')
})

t.test('failures and rejected bodies give their slot back', async t => {
  const keyRelease = new FakeKeyReleaseService()
  const { app } = build({ keyRelease, backpressure: { maxInFlightReleases: 1 } })
  t.teardown(() => app.close())
  keyRelease.mode = { kind: 'fail', error: new Error('upstream exploded') }
  for (let i = 0; i < 5; i++) t.equal((await app.inject({ method: 'POST', url: '/key/release', payload: KEY_OK })).statusCode, 500)
  for (let i = 0; i < 3; i++) t.equal((await app.inject({ method: 'POST', url: '/key/release', payload: { kid: '' } })).statusCode, 400)
  keyRelease.mode = { kind: 'ok' }
  t.equal((await app.inject({ method: 'POST', url: '/key/release', payload: KEY_OK })).statusCode, 200)
})

t.test('a client that disconnects gives its slot back', async t => {
  const keyRelease = new GatedKeyRelease()
  const { app, metrics } = build({ keyRelease, backpressure: { maxInFlightReleases: 1 } })
  const listening = await listen(app, testConfig({ SKR_HOST: '127.0.0.1', Port: '0' }), pino({ level: 'silent' }))
  t.teardown(async () => { keyRelease.open(); await listening.close() })
  const port = Number((listening.addresses[0] ?? '').split(':').pop())
  const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/key/release', headers: { 'content-type': 'application/json' } })
  req.on('error', () => {})
  req.end(JSON.stringify(KEY_OK))
  await until(() => keyRelease.started.length === 1)
  req.destroy()
  await until(async () => (await metrics.render()).includes('skr_http_in_flight_releases 0'))
  const next = app.inject({ method: 'POST', url: '/key/release', payload: KEY_OK })
  await until(() => keyRelease.started.length === 2)
  keyRelease.open()
  t.equal((await next).statusCode, 200)
})

t.test('under memory pressure requests are shed in skr\'s shape; probes and scrapes are not', async t => {
  // Event-loop delay is off here: sampled every 10 ms it can read as Infinity (no sample in the window).
  const { app, metrics } = build({ backpressure: { maxHeapUsedBytes: 1, maxEventLoopDelayMs: 0, sampleIntervalMs: 10 } })
  t.teardown(() => app.close())
  let shed = await app.inject({ method: 'POST', url: '/attest/raw', payload: { runtime_data: 'aGVsbG8=' } })
  await until(async () => {
    shed = await app.inject({ method: 'POST', url: '/attest/raw', payload: { runtime_data: 'aGVsbG8=' } })
    return shed.statusCode === 503
  })
  t.match(shed.headers['content-type'], /^application\/json/)
  t.same(Object.keys(shed.json()), ['error', 'code', 'requestId'])
  t.equal(shed.json().code, 'ERR_OVERLOADED')
  t.equal(shed.headers['retry-after'], '1')
  t.equal((await app.inject({ method: 'POST', url: '/key/release', payload: KEY_OK })).statusCode, 503)

  for (const url of ['/status', '/livez', '/readyz', '/metrics', '/openapi.json']) {
    t.equal((await app.inject({ method: 'GET', url })).statusCode, 200, `${url} is never shed`)
  }
  t.match(await metrics.render(), /skr_http_shed_total\{reason="heap_used_bytes"\} \d+/)
})

t.test('a throwing hook, serializer or handler ends as a JSON 500, never a crash', async t => {
  const { app } = build()
  t.teardown(() => app.close())
  app.addHook('onRequest', async (request) => { if (request.headers['x-boom'] === 'onRequest') throw new Error('hook exploded') })
  app.addHook('preSerialization', async (request) => { if (request.headers['x-boom'] === 'preSerialization') throw new Error('preSerialization exploded') })
  // onSend runs for the error answer too; a hook that failed every time would reach fastify's own fallback.
  const sent = new WeakSet<object>()
  app.addHook('onSend', async (request) => {
    if (request.headers['x-boom'] === 'onSend' && !sent.has(request)) {
      sent.add(request)
      throw new Error('onSend exploded')
    }
  })
  app.get('/test/bigint', async () => ({ n: 1n }))
  app.get('/test/schema', { schema: { response: { 200: { type: 'object', required: ['must'], properties: { must: { type: 'string' } } } } } }, async () => ({}))
  app.get('/test/throw-null', async () => { throw null })

  const cases: Array<{ url: string; headers?: Record<string, string> }> = [
    { url: '/status', headers: { 'x-boom': 'onRequest' } },
    { url: '/status', headers: { 'x-boom': 'preSerialization' } },
    { url: '/status', headers: { 'x-boom': 'onSend' } },
    { url: '/test/bigint' },
    { url: '/test/schema' },
    { url: '/test/throw-null' }
  ]
  for (const c of cases) {
    const res = await app.inject({ method: 'GET', url: c.url, headers: c.headers })
    const label = `${c.url} ${JSON.stringify(c.headers ?? {})}`
    t.equal(res.statusCode, 500, label)
    t.match(res.headers['content-type'], /^application\/json/, label)
    t.same({ ...res.json(), requestId: 'x' }, { error: 'internal error', code: 'ERR_INTERNAL', requestId: 'x' }, label)
    t.notMatch(res.body, 'exploded')
  }
  t.equal((await app.inject({ method: 'GET', url: '/status' })).statusCode, 200, 'the app still answers')
})

t.test('if rendering the error itself fails, a fixed JSON 500 is sent', async t => {
  const lines: string[] = []
  const logger = pino(loggerOptions('info'), {
    write (line: string) {
      if (line.includes('"level":"error"')) throw new Error('log destination failed')
      lines.push(line)
    }
  })
  const { app } = build({ logger })
  t.teardown(() => app.close())
  app.get('/test/fail', async () => { throw new Error('x') })
  const res = await app.inject({ method: 'GET', url: '/test/fail' })
  t.equal(res.statusCode, 500)
  t.equal(res.body, '{"error":"internal error","code":"ERR_INTERNAL","requestId":"unknown"}')
  t.ok(lines.some(l => l.includes('request completed')), 'the server kept going')
})

t.test('after a storm of failures the next good request succeeds', async t => {
  const keyRelease = new FakeKeyReleaseService()
  const { app } = build({ keyRelease })
  t.teardown(() => app.close())
  keyRelease.mode = { kind: 'fail', error: new TypeError('Cannot read properties of undefined') }
  // Waves of 32, under the default in-flight cap of 64, so every request reaches the failing service.
  for (let wave = 0; wave < 4; wave++) {
    const storm = await Promise.all(Array.from({ length: 32 }, async () => await app.inject({ method: 'POST', url: '/key/release', payload: KEY_OK })))
    t.ok(storm.every(r => r.statusCode === 500 && r.json().code === 'ERR_INTERNAL'), `wave ${wave}`)
  }
  t.equal(keyRelease.calls.length, 128)
  keyRelease.mode = { kind: 'ok' }
  const good = await app.inject({ method: 'POST', url: '/key/release', payload: KEY_OK })
  t.equal(good.statusCode, 200)
  t.same(JSON.parse(good.json().key as string), FAKE_JWK)
})
