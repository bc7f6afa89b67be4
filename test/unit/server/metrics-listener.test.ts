// The metrics listener (SKR_METRICS_PORT): GET /metrics, /livez and /readyz and nothing else
// (the key API, the attestation routes, /status and /openapi.json are 404 there), on the
// configured host, with the API's connection hardening, wired into the sidecar and closed with it.
import t from 'tap'
import * as http from 'node:http'
import { connect, type Socket } from 'node:net'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { loadConfig } from '../../../src/config/config.ts'
import { ConfigInvalid } from '../../../src/errors.ts'
import { createMetricsRegistry } from '../../../src/observability/registry.ts'
import { buildMetricsApp, METRICS_MAX_CONNECTIONS, startMetricsListener, type MetricsListenerDeps } from '../../../src/server/metrics-listener.ts'
import { FakeAttestationService } from '../../doubles/fake-services.ts'
import { exchange, open, receive } from '../../helpers/raw-http.ts'
import { startSidecarEnv } from '../../helpers/sidecar-env.ts'

const SECRET_KEY = { maa_endpoint: 'sharedeus.eus.attest.azure.net', akv_endpoint: 'myvault.vault.azure.net', kid: 'mykey' }

function deps (env: Record<string, string> = {}, logs: string[] = []): MetricsListenerDeps & { attestation: FakeAttestationService, draining: { value: boolean } } {
  const attestation = new FakeAttestationService()
  const draining = { value: false }
  const sink = new Writable({ write (chunk: Buffer, _encoding, done) { logs.push(chunk.toString('utf8')); done() } })
  return {
    config: loadConfig([], { SKR_METRICS_PORT: '0', ...env }),
    logger: pino({ level: 'debug' }, sink),
    metrics: createMetricsRegistry({ defaultMetrics: false }),
    health: { attestation, lifecycle: { get draining () { return draining.value } }, eventLoopDelayMs: () => 0, maxEventLoopDelayMs: 1000 },
    attestation,
    draining
  }
}

interface Answer { status: number, headers: http.IncomingHttpHeaders, body: string }

async function get (port: number, path: string, method = 'GET', host = '127.0.0.1'): Promise<Answer> {
  return await new Promise<Answer>((resolve, reject) => {
    const req = http.request({ host, port, path, method, agent: false }, res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }) })
    })
    req.on('error', reject)
    req.end()
  })
}

function configFor (env: Record<string, string>): ReturnType<typeof loadConfig> {
  return loadConfig([], { SKR_METRICS_PORT: '0', ...env })
}

function portOf (address: string): number {
  return Number(address.split(':').pop())
}

t.test('serves GET /metrics, /livez and /readyz', async t => {
  const d = deps()
  const app = buildMetricsApp(d)
  t.teardown(() => app.close())
  d.metrics.releaseResult('released')
  const metrics = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(metrics.statusCode, 200)
  t.equal(metrics.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8')
  t.match(metrics.body, 'skr_key_releases_total{outcome="released"} 1', 'the registry it was given')
  t.same((await app.inject({ method: 'GET', url: '/livez' })).json(), { live: true })
  const ready = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 200)
  t.match(ready.json(), { ready: true, checks: { attestation: true, accepting: true } })

  d.attestation.problems = ['no SEV-SNP device']
  d.draining.value = true
  const notReady = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(notReady.statusCode, 503, 'the same readiness logic as the API\'s /readyz')
  t.match(notReady.json(), { ready: false, checks: { attestation: false, accepting: false }, problems: ['attestation: no SEV-SNP device', 'shutting down'] })
})

t.test('everything else is 404, in skr\'s error shape: never the key API', async t => {
  const d = deps()
  const app = buildMetricsApp(d)
  t.teardown(() => app.close())
  const cases: Array<[string, string]> = [
    ['POST', '/key/release'], ['GET', '/key/release'],
    ['POST', '/attest/raw'], ['POST', '/attest/combined'], ['POST', '/attest/maa'],
    ['GET', '/status'], ['GET', '/openapi.json'], ['GET', '/'],
    ['HEAD', '/metrics'], ['POST', '/metrics'], ['DELETE', '/readyz']
  ]
  for (const [method, url] of cases) {
    const res = await app.inject({ method: method as 'GET', url, ...(method === 'POST' ? { payload: SECRET_KEY } : {}) })
    t.equal(res.statusCode, 404, `${method} ${url}`)
    if (method !== 'HEAD') t.match(res.json(), { code: 'ERR_NOT_FOUND', requestId: /./ }, `${method} ${url}: skr's error body`)
  }
  t.equal(d.attestation.calls.length, 0, 'no attestation call was made')
})

t.test('listens on the configured host', async t => {
  const loopback = await startMetricsListener(deps({ SKR_METRICS_HOST: '127.0.0.1' }))
  t.teardown(() => loopback.close())
  t.match(loopback.address, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.equal((await get(portOf(loopback.address), '/livez')).status, 200)

  // The default host is every IPv4 address (the pod IP): checked on the settings, so the test
  // binds loopback only.
  t.equal(configFor({}).metricsListener?.host, '0.0.0.0', 'by default every IPv4 address (the pod IP)')

  const named = await startMetricsListener(deps({ SKR_METRICS_HOST: 'localhost' }))
  t.teardown(() => named.close())
  t.match(named.address, /^http:\/\/127\.0\.0\.1:\d+$/, 'localhost is bound by address, never resolved')
})

t.test('the API\'s connection hardening: a silent connection is closed, and its own cap', async t => {
  const listening = await startMetricsListener(deps({ SKR_METRICS_HOST: '127.0.0.1', SKR_IDLE_CONNECTION_TIMEOUT_MS: '100' }))
  t.teardown(() => listening.close())
  const socket = connect({ host: '127.0.0.1', port: portOf(listening.address) })
  socket.on('error', () => {})
  await new Promise<void>(resolve => { socket.once('close', () => { resolve() }) })
  t.pass('a connection that sends nothing is closed (SKR_IDLE_CONNECTION_TIMEOUT_MS)')
  t.ok(METRICS_MAX_CONNECTIONS > 0 && METRICS_MAX_CONNECTIONS <= 64, 'a cap of its own, within the descriptors the API\'s cap leaves in reserve')
})

t.test('past its own cap, new connections are closed at once and the open ones keep being served', async t => {
  const listening = await startMetricsListener(deps({ SKR_METRICS_HOST: '127.0.0.1', SKR_IDLE_CONNECTION_TIMEOUT_MS: '60000', SKR_HEADERS_TIMEOUT_MS: '60000', SKR_RECEIVE_TIMEOUT_MS: '60000' }))
  t.teardown(() => listening.close())
  const port = portOf(listening.address)
  const sockets = await Promise.all(Array.from({ length: METRICS_MAX_CONNECTIONS + 3 }, async () => await open({ port })))
  t.teardown(() => { for (const s of sockets) s.destroy() })
  // Waits for the three closes (bounded only so a broken gate fails instead of hanging), then
  // asks every other connection for an answer: no timing is assumed either way.
  const closed = new Set<Socket>()
  await new Promise<void>((resolve) => {
    const bound = setTimeout(resolve, 10_000)
    for (const s of sockets) {
      s.once('close', () => {
        closed.add(s)
        if (closed.size === 3) { clearTimeout(bound); resolve() }
      })
    }
  })
  t.equal(closed.size, 3, 'the three past the cap were closed')
  const kept = sockets.filter(s => !closed.has(s))
  const answers = await Promise.all(kept.map(async s => {
    const answer = receive(s)
    s.write('GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
    return await answer
  }))
  t.same(answers.map(a => a.answer?.status), kept.map(() => 200), `the ${METRICS_MAX_CONNECTIONS} within the cap are all served`)
  t.equal(closed.size, 3, 'and no other was closed')
})

t.test('anything but GET is 404 before a body is read, and scrapes within a second share one rendering', async t => {
  const d = deps({ SKR_METRICS_HOST: '127.0.0.1' })
  let renders = 0
  const render = d.metrics.render.bind(d.metrics)
  d.metrics.render = async () => { renders++; return await render() }
  const listening = await startMetricsListener(d)
  t.teardown(() => listening.close())
  const port = portOf(listening.address)
  const post = await exchange({ port }, 'POST /wp-login.php HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{"junk":1')
  t.equal(post.answer?.status, 404, 'a junk POST is 404, not a body parse error')
  t.equal((await exchange({ port }, 'POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n{')).answer?.status, 404, 'and no 413: the body is never read')
  for (let i = 0; i < 5; i++) t.equal((await get(port, '/metrics')).status, 200)
  t.ok(renders <= 2, `five scrapes, ${renders} rendering(s)`)
})

t.test('malformed HTTP is answered in skr\'s shape, and the request bytes are not logged', async t => {
  const logs: string[] = []
  const listening = await startMetricsListener(deps({ SKR_METRICS_HOST: '127.0.0.1' }, logs))
  t.teardown(() => listening.close())
  const answer = await new Promise<string>((resolve) => {
    const socket = connect({ host: '127.0.0.1', port: portOf(listening.address) })
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', () => {})
    socket.on('close', () => { resolve(Buffer.concat(chunks).toString()) })
    socket.end('GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret-token-value\r\nContent-Length: nope\r\n\r\n')
  })
  t.match(answer, /^HTTP\/1\.1 400 /)
  t.match(answer, '"code":"ERR_REQUEST_INVALID"')
  t.notMatch(logs.join(''), 'secret-token-value')
})

t.test('probes and scrapes write no info-level lines', async t => {
  const logs: string[] = []
  const listening = await startMetricsListener(deps({ SKR_METRICS_HOST: '127.0.0.1' }, logs))
  t.teardown(() => listening.close())
  const port = portOf(listening.address)
  const before = logs.length
  for (const path of ['/metrics', '/livez', '/readyz', '/nowhere']) await get(port, path)
  const lines = logs.slice(before).map(line => JSON.parse(line) as { level: number, msg: string })
  t.ok(lines.length > 0, 'the requests were logged (at debug)')
  t.same(lines.filter(line => line.level >= 30), [], 'nothing at info or above')
})

t.test('config: SKR_METRICS_PORT and SKR_METRICS_HOST', async t => {
  t.equal(loadConfig([], {}).metricsListener, null, 'off by default')
  t.same(loadConfig([], { SKR_METRICS_PORT: '9464' }).metricsListener, { port: 9464, host: '0.0.0.0' })
  t.same(loadConfig(['--metrics-port', '9464', '--metrics-host', '::'], {}).metricsListener, { port: 9464, host: '::' })
  t.same(loadConfig([], { SKR_METRICS_PORT: '9464', SKR_METRICS_HOST: '10.1.2.3' }).metricsListener, { port: 9464, host: '10.1.2.3' })
  const refused: Array<[Record<string, string>, RegExp]> = [
    [{ SKR_METRICS_PORT: '8080' }, /SKR_METRICS_PORT must differ from the API's port/],
    [{ SKR_METRICS_PORT: '50000', ServerType: 'both' }, /SKR_METRICS_PORT must differ/],
    [{ SKR_METRICS_PORT: 'x' }, /SKR_METRICS_PORT must be a TCP port/],
    [{ SKR_METRICS_PORT: '9464', SKR_METRICS_HOST: 'metrics.example' }, /SKR_METRICS_HOST must be an IP address/],
    [{ SKR_METRICS_HOST: '0.0.0.0' }, /SKR_METRICS_HOST is set but SKR_METRICS_PORT is not/]
  ]
  for (const [env, message] of refused) {
    t.throws(() => loadConfig([], env), ConfigInvalid)
    t.throws(() => loadConfig([], env), { message }, JSON.stringify(env))
  }
  t.same(loadConfig([], { SKR_METRICS_PORT: '50000', ServerType: 'http' }).metricsListener?.port, 50000, 'the gRPC port is free when gRPC is not served beside HTTP')
})

t.test('the sidecar serves it beside the loopback API, from the same registry, and closes it on shutdown', async t => {
  const s = await startSidecarEnv({ overrides: { SKR_METRICS_PORT: '0', SKR_METRICS_HOST: '127.0.0.1' } })
  let closed = false
  t.teardown(async () => { if (!closed) await s.close() })
  const address = s.sidecar?.metricsAddress ?? ''
  t.match(address, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.notOk(s.sidecar?.addresses.includes(address), 'not one of the API addresses')
  const port = portOf(address)
  t.not(port, portOf(s.base), 'a port of its own')

  await s.call('/status')
  const metrics = await get(port, '/metrics')
  t.equal(metrics.status, 200)
  t.match(metrics.body, /skr_http_request_duration_seconds_count\{method="GET",route="\/status",status="200"\} \d+/, 'the API\'s series, from the shared registry')
  t.match(metrics.body, /^skr_process_resident_memory_bytes \d+/m)
  t.equal((await get(port, '/livez')).status, 200)
  const ready = await get(port, '/readyz')
  t.ok(ready.status === 200 || ready.status === 503, `readyz answers (${ready.status})`)
  t.type(JSON.parse(ready.body).checks, 'object')
  for (const path of ['/key/release', '/attest/raw', '/attest/maa', '/attest/combined']) t.equal((await get(port, path, 'POST')).status, 404, `POST ${path} is 404`)
  t.equal((await get(port, '/status')).status, 404, 'GET /status is 404')
  t.equal((await s.call('/status')).status, 200, 'while the API on loopback serves it')

  await s.close()
  closed = true
  await t.rejects(get(port, '/livez'), { code: 'ECONNREFUSED' }, 'closed with the sidecar')
})

t.test('a port in use is a typed error naming the setting, and nothing is left open', async t => {
  const first = await startMetricsListener(deps({ SKR_METRICS_HOST: '127.0.0.1' }))
  t.teardown(() => first.close())
  const port = String(portOf(first.address))
  await t.rejects(startMetricsListener(deps({ SKR_METRICS_HOST: '127.0.0.1', SKR_METRICS_PORT: port })), { code: 'ERR_LISTEN_FAILED', message: /SKR_METRICS_PORT/ })
})

t.test('without the API app (ServerType=grpc) it samples the event loop itself, until closed', async t => {
  const d = deps()
  const app = buildMetricsApp({ ...d, health: { attestation: d.attestation, lifecycle: { draining: false }, maxEventLoopDelayMs: 1000 } })
  t.same((await app.inject({ method: 'GET', url: '/livez' })).json(), { live: true })
  await app.close()
  t.pass('closed: its sampler is stopped with it (an onClose hook)')
})
