// /livez and /readyz next to the reference's /status, the drain state, and graceful shutdown on
// a real listener: in-flight work finishes, new connections are refused, a grace period bounds it.
import t from 'tap'
import * as http from 'node:http'
import { connect } from 'node:net'
import Fastify from 'fastify'
import { pino } from 'pino'
import { SnpDeviceUnavailable } from '../../../src/errors.ts'
import { createMetricsRegistry } from '../../../src/observability/registry.ts'
import { buildApp, type AppDeps } from '../../../src/server/app.ts'
import { lifecycleOf } from '../../../src/server/lifecycle.ts'
import { closeGracefully, listen } from '../../../src/server/listen.ts'
import { readiness, registerHealthRoutes, type IdentityStatus } from '../../../src/server/plugins/health.ts'
import { errorBodySchema } from '../../../src/server/error-schemas.ts'
import { FAKE_JWK, FakeAttestationService, FakeKeyReleaseService, GatedKeyRelease, testConfig, NO_SHEDDING } from '../../doubles/fake-services.ts'

const KEY_OK = { maa_endpoint: 'sharedeus.eus.attest.azure.net', akv_endpoint: 'myvault.vault.azure.net', kid: 'mykey' }

function build (overrides: Partial<AppDeps> = {}): { app: ReturnType<typeof buildApp>; attestation: FakeAttestationService } {
  const attestation = new FakeAttestationService()
  const app = buildApp({
    backpressure: NO_SHEDDING,
    config: testConfig({ SKR_HOST: '127.0.0.1', Port: '0' }),
    attestation,
    keyRelease: new FakeKeyReleaseService(),
    metrics: createMetricsRegistry({ defaultMetrics: false }),
    ...overrides
  })
  return { app, attestation }
}

async function until (condition: () => boolean | Promise<boolean>): Promise<void> {
  // Bounded (a minute, for a busy machine) so that a case that cannot finish fails with its name.
  const bound = Date.now() + 60_000
  while (!await condition()) {
    if (Date.now() > bound) throw new Error(`still not the case after 60 s: ${condition.toString()}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

interface Answer { status: number; headers: http.IncomingHttpHeaders; body: string }

async function request (options: http.RequestOptions, body?: string): Promise<Answer> {
  return await new Promise<Answer>((resolve, reject) => {
    const req = http.request(options, res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }) })
    })
    req.on('error', reject)
    req.end(body)
  })
}

t.test('/livez is 200 {"live":true}', async t => {
  const { app } = build()
  t.teardown(() => app.close())
  const res = await app.inject({ method: 'GET', url: '/livez' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  t.same(res.json(), { live: true })
})

t.test('/livez is 503 when the sampled event-loop delay is over the ceiling', async t => {
  let delay = 0
  const app = Fastify()
  app.addSchema(errorBodySchema)
  registerHealthRoutes(app, {
    attestation: new FakeAttestationService(),
    lifecycle: { draining: false },
    eventLoopDelayMs: () => delay,
    maxEventLoopDelayMs: 1000
  })
  t.teardown(() => app.close())
  t.equal((await app.inject({ method: 'GET', url: '/livez' })).statusCode, 200)
  delay = 2500.4
  const res = await app.inject({ method: 'GET', url: '/livez' })
  t.equal(res.statusCode, 503)
  t.same(res.json(), { live: false, problems: ['event loop delay 2500 ms is over 1000 ms'] })
})

t.test('/readyz is 200 with every check when attestation and identity are fine', async t => {
  const identity: IdentityStatus = { configured: true, kind: 'managed identity' }
  const { app } = build({ identityStatus: () => identity })
  t.teardown(() => app.close())
  const res = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { ready: true, checks: { config: true, attestation: true, identity: true, accepting: true } })
})

t.test('/readyz is 503 and says what is missing', async t => {
  let identity: IdentityStatus = { configured: false, kind: 'workload identity', problem: 'AZURE_FEDERATED_TOKEN_FILE cannot be read' }
  const { app, attestation } = build({ identityStatus: () => identity })
  t.teardown(() => app.close())
  attestation.backend = null
  attestation.problems = ['no SEV-SNP attestation interface: /dev/sev-guest is missing', 'no VCEK certificate chain yet: THIM answered 404']
  const res = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(res.statusCode, 503)
  t.same(res.json(), {
    ready: false,
    checks: { config: true, attestation: false, identity: false, accepting: true },
    problems: [
      'attestation: no SEV-SNP attestation interface: /dev/sev-guest is missing',
      'attestation: no VCEK certificate chain yet: THIM answered 404',
      'identity (workload identity): AZURE_FEDERATED_TOKEN_FILE cannot be read'
    ]
  })

  attestation.problems = []
  identity = { configured: false, kind: 'managed identity' }
  const noIdentity = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(noIdentity.statusCode, 503)
  t.same(noIdentity.json().problems, ['identity (managed identity): not configured'])

  identity = { configured: true, kind: 'managed identity' }
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200, 'ready again once fixed')
})

t.test('/readyz leaves identity out when nobody reports it, and survives failing status sources', async t => {
  const attestation = new FakeAttestationService()
  const deps = { attestation, lifecycle: { draining: false, beginDrain () {} }, eventLoopDelayMs: () => 0, maxEventLoopDelayMs: 0 }
  t.same(await readiness(deps), { ready: true, checks: { config: true, attestation: true, accepting: true } })

  attestation.status = async () => { throw new SnpDeviceUnavailable('device gone') }
  const failing = await readiness({ ...deps, identityStatus: () => { throw new Error('boom') } })
  t.same(failing, {
    ready: false,
    checks: { config: true, attestation: false, identity: false, accepting: true },
    problems: ['attestation: device gone', 'identity: status unavailable']
  })

  attestation.status = async () => await new Promise(() => {})
  const hung = await readiness({ ...deps, checkTimeoutMs: 20 })
  t.same(hung.problems, ['attestation: the attestation status did not answer within 20 ms'])

  attestation.status = async () => ({ backend: null, simulated: false, problems: ['x'.repeat(1000)] })
  const long = await readiness(deps)
  t.equal(long.problems?.[0]?.length, 300, 'long problems are clipped')
})

t.test('while draining: /readyz is 503 "shutting down", API requests 503 ERR_SHUTTING_DOWN, probes still answer', async t => {
  const { app, attestation } = build()
  t.teardown(() => app.close())
  await app.ready()
  lifecycleOf(app).beginDrain()

  const ready = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 503)
  t.same(ready.json(), { ready: false, checks: { config: true, attestation: true, accepting: false }, problems: ['shutting down'] })
  t.equal(ready.headers.connection, 'close')

  const refused = await app.inject({ method: 'POST', url: '/key/release', payload: KEY_OK })
  t.equal(refused.statusCode, 503)
  t.same({ ...refused.json(), requestId: 'x' }, { error: 'server is shutting down; retry later', code: 'ERR_SHUTTING_DOWN', requestId: 'x' })
  t.equal(refused.headers['retry-after'], '1')
  t.equal(refused.headers.connection, 'close')
  const raw = await app.inject({ method: 'POST', url: '/attest/raw', payload: { runtime_data: 'aGVsbG8=' } })
  t.equal(raw.json().code, 'ERR_SHUTTING_DOWN')
  t.equal(attestation.calls.length, 0, 'no service was called')

  t.equal((await app.inject({ method: 'GET', url: '/status' })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/livez' })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 200)
  t.match((await app.inject({ method: 'GET', url: '/metrics' })).body, 'skr_http_shed_total{reason="draining"} 2')
})

t.test('lifecycleOf refuses an app not built by buildApp', async t => {
  t.throws(() => lifecycleOf(Fastify()), TypeError)
})

t.test('graceful close: the slow request finishes with 200, new connections are refused', async t => {
  const keyRelease = new GatedKeyRelease()
  const { app } = build({ keyRelease })
  const config = testConfig({ SKR_HOST: '127.0.0.1', Port: '0' })
  const listening = await listen(app, config, pino({ level: 'silent' }))
  const port = Number((listening.addresses[0] ?? '').split(':').pop())
  const agent = new http.Agent({ keepAlive: true })
  t.teardown(() => { agent.destroy() })

  const slow = request({ host: '127.0.0.1', port, agent, method: 'POST', path: '/key/release', headers: { 'content-type': 'application/json' } }, JSON.stringify(KEY_OK))
  await until(() => keyRelease.started.length === 1)

  const closed = closeGracefully(listening, { graceMs: 60_000 })
  await until(() => !app.server.listening)
  await t.rejects(request({ host: '127.0.0.1', port, agent: false, path: '/status' }), { code: 'ECONNREFUSED' }, 'a new connection is refused')

  keyRelease.open()
  const answer = await slow
  t.equal(answer.status, 200)
  t.same(JSON.parse(JSON.parse(answer.body).key as string), FAKE_JWK)
  t.equal(answer.headers.connection, 'close', 'the keep-alive connection ends with its last answer')
  t.same(await closed, { forced: false })
})

t.test('graceful close: a request still waiting after the grace period is answered 503 ERR_SHUTTING_DOWN, not cut off', async t => {
  const keyRelease = new GatedKeyRelease()
  const { app } = build({ keyRelease })
  const listening = await listen(app, testConfig({ SKR_HOST: '127.0.0.1', Port: '0' }), pino({ level: 'silent' }))
  const port = Number((listening.addresses[0] ?? '').split(':').pop())
  const stuck = request({ host: '127.0.0.1', port, method: 'POST', path: '/key/release', headers: { 'content-type': 'application/json' } }, JSON.stringify(KEY_OK))
  await until(() => keyRelease.started.length === 1)
  t.same(await closeGracefully(listening, { graceMs: 20 }), { forced: false, stopped: true })
  const answer = await stuck
  t.equal(answer.status, 503, 'the client gets an answer')
  t.equal(JSON.parse(answer.body).code, 'ERR_SHUTTING_DOWN')
  t.equal(JSON.parse(answer.body).error, 'server is shutting down; retry later')
  t.equal(answer.headers['retry-after'], '1')
  t.equal(answer.headers.connection, 'close')
  keyRelease.open()
})

t.test('graceful close: a connection still open after the stopped answers are flushed is cut', async t => {
  const { app } = build()
  const listening = await listen(app, testConfig({ SKR_HOST: '127.0.0.1', Port: '0' }), pino({ level: 'silent' }))
  const port = Number((listening.addresses[0] ?? '').split(':').pop())
  // A client that sent half a body and stalls: its route waits for the body, so nothing answers it.
  const dispatched = new Promise(resolve => app.server.once('request', resolve))
  const socket = connect({ host: '127.0.0.1', port })
  socket.on('error', () => {})
  const received: Buffer[] = []
  socket.on('data', (chunk: Buffer) => { received.push(chunk) })
  const ended = new Promise(resolve => socket.once('close', resolve))
  socket.write('POST /key/release HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"maa')
  await dispatched
  t.same(await closeGracefully(listening, { graceMs: 20, flushMs: 20 }), { forced: true, stopped: true })
  await ended
  t.equal(Buffer.concat(received).length, 0, 'the stalled request got no answer: its connection was closed')
})
