// Load shedding at the edge (the in-flight cap, event-loop and memory pressure) answered in
// skr's error shape, probes that are never shed, and resilience: a throwing hook, serializer or
// logger still ends as a JSON answer, and a storm of failures leaves the next request unharmed.
// That nothing it starts keeps a process alive after close: test/process/server/backpressure.test.ts.
import t from 'tap'
import * as http from 'node:http'
import Fastify, { type FastifyError } from 'fastify'
import { pino } from 'pino'
import { Overloaded } from '../../../src/errors.ts'
import { loggerOptions } from '../../../src/log.ts'
import { createMetricsRegistry, type PrometheusMetrics } from '../../../src/observability/registry.ts'
import { buildApp, type AppDeps } from '../../../src/server/app.ts'
import { listen } from '../../../src/server/listen.ts'
import {
  backpressureOptions, DEFAULT_BACKPRESSURE, eventLoopDelayOf, PRESSURE_EXEMPT_ROUTES, pressureMonitorOf, registerBackpressure,
  type BackpressureOptions, type PressureReaders
} from '../../../src/server/plugins/backpressure.ts'
import { sampleIntervalOf, startPressureMonitor, type DelayHistogram, type PressureReading } from '../../../src/server/plugins/pressure-monitor.ts'
import { FAKE_JWK, FakeAttestationService, FakeKeyReleaseService, GatedKeyRelease, NO_SHEDDING, testConfig } from '../../doubles/fake-services.ts'

const KEY_OK = { maa_endpoint: 'sharedeus.eus.attest.azure.net', akv_endpoint: 'myvault.vault.azure.net', kid: 'mykey' }
const MAA_OK = { maa_endpoint: 'sharedeus.eus.attest.azure.net', runtime_data: 'eyJoZWxsbyI6MX0=' }

// Only the limits a case sets are on: with buildApp's defaults (1 s of event-loop delay, 512 MiB
// RSS) a busy machine, or tap's own memory, sheds the requests of a case about the in-flight cap,
// which then waits forever for a release that never starts.
function build (overrides: Partial<AppDeps> = {}): { app: ReturnType<typeof buildApp>; metrics: PrometheusMetrics } {
  const metrics = createMetricsRegistry({ defaultMetrics: false })
  const app = buildApp({
    config: testConfig({ SKR_HOST: '127.0.0.1', Port: '0' }),
    attestation: new FakeAttestationService(),
    keyRelease: new FakeKeyReleaseService(),
    metrics,
    ...overrides,
    backpressure: { ...NO_SHEDDING, ...overrides.backpressure }
  })
  return { app, metrics }
}

/** Polls until `condition` holds; throws after a minute (a bound for a busy machine, not a timing check). */
async function until (condition: () => boolean | Promise<boolean>): Promise<void> {
  const bound = Date.now() + 60_000
  while (!await condition()) {
    if (Date.now() > bound) throw new Error(`still not the case after 60 s: ${condition.toString()}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

t.test('options: defaults, overrides, and refusal of nonsense', async t => {
  t.same(backpressureOptions(), DEFAULT_BACKPRESSURE)
  t.same(DEFAULT_BACKPRESSURE, {
    maxInFlightReleases: 256, maxEventLoopDelayMs: 1000, maxHeapUsedBytes: 0, maxRssBytes: 512 * 1024 * 1024, sampleIntervalMs: 1000, retryAfterSeconds: 1
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
  // Waves of 32, under the default in-flight cap of 256, so every request reaches the failing service.
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

// --- the sampler (src/server/plugins/pressure-monitor.ts) and the pressure check, driven by injected readers ---

/** A stand-in for perf_hooks' event-loop delay histogram: set `mean` (ns) before a sample. */
class FakeHistogram implements DelayHistogram {
  mean = 0
  enabled = true
  resets = 0
  enable (): boolean { const was = this.enabled; this.enabled = true; return !was }
  disable (): boolean { const was = this.enabled; this.enabled = false; return was }
  reset (): void { this.resets++ }
}

/** What process.memoryUsage.rss() throws once the file limit is exhausted (it reads /proc). */
function emfile (): NodeJS.ErrnoException {
  return Object.assign(new Error('EMFILE: too many open files, uv_resident_set_memory'), { code: 'EMFILE', errno: -24, syscall: 'uv_resident_set_memory' })
}

t.test('sampler: an RSS reader that throws EMFILE keeps the last good value and the timer keeps sampling', async t => {
  // good, good, EMFILE x3, then good again (the file limit freed up)
  const script: Array<number | Error> = [100, 100, emfile(), emfile(), emfile()]
  let calls = 0
  const readRss = (): number => {
    const next = script[calls++] ?? 200
    if (next instanceof Error) throw next
    return next
  }
  const errors: Array<{ reading: PressureReading; code: unknown; consecutive: number }> = []
  const recovered: Array<[PressureReading, number]> = []
  const monitor = startPressureMonitor({
    sampleIntervalMs: 10,
    readRss,
    readHeapUsed: () => 7,
    histogram: new FakeHistogram(),
    onReadError: (reading, err, consecutive) => {
      errors.push({ reading, code: (err as NodeJS.ErrnoException).code, consecutive })
      throw new Error('a throwing observer must not stop the sampler either')
    },
    onReadRecovered: (reading, failed) => { recovered.push([reading, failed]) }
  })
  t.teardown(() => { monitor.stop() })

  await until(() => calls >= 4)
  t.equal(monitor.current.rssBytes, 100, 'the last good value is kept while reading fails')
  t.equal(monitor.current.heapUsedBytes, 7, 'the other readings are unaffected')
  await until(() => calls >= 7)
  t.ok(monitor.running)
  t.equal(monitor.current.rssBytes, 200, 'sampling went on and picked up the next good value')
  t.equal(monitor.failures.rssBytes, 3)
  t.equal(monitor.failures.heapUsedBytes, 0)
  t.same(errors, [1, 2, 3].map(consecutive => ({ reading: 'rssBytes', code: 'EMFILE', consecutive })))
  t.same(recovered, [['rssBytes', 3]])
})

t.test('sampler: every reader failing, or answering nonsense, is counted and never throws', async t => {
  const histogram = new FakeHistogram()
  Object.defineProperty(histogram, 'mean', { get () { throw emfile() } })
  histogram.reset = () => { throw new Error('reset failed') }
  const monitor = startPressureMonitor({
    sampleIntervalMs: 60_000,
    readRss: () => Number.NaN,
    readHeapUsed: () => { throw emfile() },
    histogram
  })
  t.teardown(() => { monitor.stop() })
  t.doesNotThrow(() => { monitor.sample(); monitor.sample() })
  t.same(monitor.current, { eventLoopDelay: 0, heapUsedBytes: 0, rssBytes: 0 })
  t.same(monitor.failures, { eventLoopDelay: 2, heapUsedBytes: 2, rssBytes: 2 })
})

t.test('sampler: event-loop delay is the mean minus the resolution, floored at 0, reset after each sample', async t => {
  const histogram = new FakeHistogram()
  const monitor = startPressureMonitor({ sampleIntervalMs: 60_000, readRss: () => 1, readHeapUsed: () => 1, histogram })
  t.teardown(() => { monitor.stop() })
  const cases: Array<[meanNs: number, delayMs: number]> = [[25e6, 15], [5e6, 0], [10e6, 0], [1010.5e6, 1000.5], [Number.NaN, Infinity]]
  for (const [mean, delay] of cases) {
    histogram.mean = mean
    monitor.sample()
    t.equal(monitor.current.eventLoopDelay, delay, `mean ${mean} ns`)
  }
  t.equal(histogram.resets, cases.length)
  t.equal(sampleIntervalOf(0), 1000, '0 means the default interval')
  t.equal(sampleIntervalOf(3), 10, 'never below the histogram resolution')
  t.equal(sampleIntervalOf(250), 250)
})

interface PressureRig {
  app: ReturnType<typeof Fastify>
  metrics: PrometheusMetrics
  histogram: FakeHistogram
  memory: { rss: number; heap: number; rssError?: Error }
  errors: FastifyError[]
  rssCalls: () => number
}

// A bare fastify app with the backpressure plugin, an error handler that keeps the error for
// inspection, the exempt routes and one ordinary route.
async function pressureRig (options: Partial<BackpressureOptions>): Promise<PressureRig> {
  const metrics = createMetricsRegistry({ defaultMetrics: false })
  const histogram = new FakeHistogram()
  const memory: PressureRig['memory'] = { rss: 1, heap: 1 }
  let rssCalls = 0
  const readers: PressureReaders = {
    histogram,
    readHeapUsed: () => memory.heap,
    readRss: () => {
      rssCalls++
      if (memory.rssError !== undefined) throw memory.rssError
      return memory.rss
    }
  }
  const app = Fastify()
  const errors: FastifyError[] = []
  app.setErrorHandler((err: FastifyError, _request, reply) => {
    errors.push(err)
    void reply.code(err.statusCode ?? 500).send({ code: err.code })
  })
  registerBackpressure(app, options, metrics, readers)
  for (const url of PRESSURE_EXEMPT_ROUTES) app.get(url, async () => ({ ok: true }))
  app.get('/work', async () => ({ ok: true }))
  await app.ready()
  return { app, metrics, histogram, memory, errors, rssCalls: () => rssCalls }
}

t.test('each pressure type sheds ordinary routes with its reason and value, and never the exempt ones', async t => {
  const limits = { maxEventLoopDelayMs: 100, maxHeapUsedBytes: 1000, maxRssBytes: 2000, sampleIntervalMs: 60_000, retryAfterSeconds: 3 }
  const cases: Array<{ reason: PressureReading; label: string; value: number; press: (rig: PressureRig) => void }> = [
    { reason: 'eventLoopDelay', label: 'event_loop_delay', value: 240, press: rig => { rig.histogram.mean = 250.4e6 } },
    { reason: 'heapUsedBytes', label: 'heap_used_bytes', value: 1501, press: rig => { rig.memory.heap = 1500.6 } },
    { reason: 'rssBytes', label: 'rss_bytes', value: 4096, press: rig => { rig.memory.rss = 4096 } }
  ]
  for (const c of cases) {
    const rig = await pressureRig(limits)
    t.teardown(() => rig.app.close())
    const monitor = pressureMonitorOf(rig.app)
    if (monitor === undefined) throw new Error('no sampler after ready')
    t.equal((await rig.app.inject({ method: 'GET', url: '/work' })).statusCode, 200, `${c.reason}: not shed before pressure`)

    c.press(rig)
    monitor.sample()
    const shed = await rig.app.inject({ method: 'GET', url: '/work' })
    t.equal(shed.statusCode, 503, `${c.reason}: shed`)
    const err = rig.errors.at(-1)
    t.ok(err instanceof Overloaded, `${c.reason}: an Overloaded error`)
    t.same(err instanceof Overloaded ? err.details : undefined, { reason: c.reason, retryAfterSeconds: 3, value: c.value })
    for (const url of PRESSURE_EXEMPT_ROUTES) {
      t.equal((await rig.app.inject({ method: 'GET', url })).statusCode, 200, `${c.reason}: ${url} is never shed`)
    }
    t.match(await rig.metrics.render(), `skr_http_shed_total{reason="${c.label}"} 1`)

    rig.histogram.mean = 0
    rig.memory.heap = 1
    rig.memory.rss = 1
    monitor.sample()
    t.equal((await rig.app.inject({ method: 'GET', url: '/work' })).statusCode, 200, `${c.reason}: served again once the pressure is gone`)
  }
})

t.test('a ceiling of 0 is off, and /livez reads the sampled delay through eventLoopDelayOf', async t => {
  const rig = await pressureRig({ maxEventLoopDelayMs: 0, maxHeapUsedBytes: 0, maxRssBytes: 0, sampleIntervalMs: 60_000 })
  t.teardown(() => rig.app.close())
  rig.histogram.mean = 5000e6
  rig.memory.heap = 2 ** 40
  rig.memory.rss = 2 ** 40
  pressureMonitorOf(rig.app)?.sample()
  t.equal((await rig.app.inject({ method: 'GET', url: '/work' })).statusCode, 200)
  t.equal(eventLoopDelayOf(rig.app), 4990)
})

t.test('while RSS cannot be read (EMFILE) the app keeps serving on the last good sample', async t => {
  const rig = await pressureRig({ maxRssBytes: 2000, maxEventLoopDelayMs: 0, sampleIntervalMs: 10 })
  t.teardown(() => rig.app.close())
  rig.memory.rss = 4096
  await until(async () => (await rig.app.inject({ method: 'GET', url: '/work' })).statusCode === 503)
  rig.memory.rssError = emfile()
  const failedAt = rig.rssCalls()
  await until(() => rig.rssCalls() >= failedAt + 3)
  t.equal((await rig.app.inject({ method: 'GET', url: '/work' })).statusCode, 503, 'still shedding on the last good RSS')
  t.equal((await rig.app.inject({ method: 'GET', url: '/livez' })).statusCode, 200)
  t.ok((pressureMonitorOf(rig.app)?.failures.rssBytes ?? 0) >= 3)
  delete rig.memory.rssError
  rig.memory.rss = 1
  await until(async () => (await rig.app.inject({ method: 'GET', url: '/work' })).statusCode === 200)
})

t.test('app.close() stops the sampling timer and the histogram', async t => {
  const rig = await pressureRig({ sampleIntervalMs: 10 })
  const monitor = pressureMonitorOf(rig.app)
  await until(() => rig.rssCalls() >= 2)
  await rig.app.close()
  t.equal(monitor?.running, false)
  t.equal(pressureMonitorOf(rig.app), undefined)
  t.equal(eventLoopDelayOf(rig.app), 0)
  t.equal(rig.histogram.enabled, false, 'the histogram is disabled')
  const calls = rig.rssCalls()
  await new Promise(resolve => setTimeout(resolve, 100))
  t.equal(rig.rssCalls(), calls, 'no sample after close')
})
