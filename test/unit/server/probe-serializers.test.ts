// /status, /livez and /readyz answer without loading the schema compilers (they are what start-up
// probes and `skr healthcheck` wait for), and their plain JSON is the text the response schemas'
// serializers would produce. Its own file: the check reads this process's module cache, which
// any other test that posted a body would already have filled.
import t from 'tap'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { createMetricsRegistry } from '../../../src/observability/registry.ts'
import { buildApp } from '../../../src/server/app.ts'
import { livenessSchema, readinessSchema } from '../../../src/server/plugins/health.ts'
import { statusResponseSchema } from '../../../src/server/schemas.ts'
import { FakeAttestationService, FakeKeyReleaseService, testConfig, NO_SHEDDING } from '../../doubles/fake-services.ts'

const require = createRequire(import.meta.url)
const loaded = (name: string): string[] => Object.keys(require.cache).filter(k => k.includes(`/node_modules/${name}/`))
// fastify itself loads fast-json-stringify's runtime helpers (lib/); the compiler is its index.js.
const compilerLoaded = (): string[] => [...loaded('@fastify/fast-json-stringify-compiler'), ...loaded('fast-json-stringify').filter(k => k.endsWith('/fast-json-stringify/index.js'))]

t.test('probes answer without Ajv or fast-json-stringify, with the schemas\' text', async (t) => {
  const attestation = new FakeAttestationService()
  const app = buildApp({
    backpressure: NO_SHEDDING,
    config: testConfig({ SKR_HOST: '127.0.0.1', Port: '0' }),
    attestation,
    keyRelease: new FakeKeyReleaseService(),
    metrics: createMetricsRegistry({ defaultMetrics: false })
  })
  t.teardown(() => app.close())
  await app.ready()
  const bodies = new Map<string, string>()
  for (const url of ['/status', '/livez', '/readyz']) {
    const res = await app.inject({ method: 'GET', url })
    t.ok([200, 503].includes(res.statusCode), `${url} answers (${res.statusCode})`)
    t.match(res.headers['content-type'], /^application\/json/)
    bodies.set(url, res.body)
  }
  t.same(compilerLoaded(), [], 'fast-json-stringify\'s compiler not loaded')
  t.same(loaded('ajv'), [], 'Ajv not loaded')

  // The same bodies through the compiler the schemas would otherwise get: identical text.
  const fromFastify = createRequire(fileURLToPath(import.meta.resolve('fastify')))
  const build = fromFastify('fast-json-stringify') as (schema: unknown) => (data: unknown) => string
  const schemas: Record<string, unknown> = { '/status': statusResponseSchema, '/livez': livenessSchema, '/readyz': readinessSchema }
  for (const [route, schema] of Object.entries(schemas)) {
    const body = bodies.get(route) as string
    t.equal(build(schema)(JSON.parse(body)), body, `${route}: plain JSON = the schema serializer's text`)
  }
})
