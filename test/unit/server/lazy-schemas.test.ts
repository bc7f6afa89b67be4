// Route schemas compile on a route's first request, with fastify's own compilers and options.
import t from 'tap'
import Fastify from 'fastify'
import { lazySchemaController } from '../../../src/server/plugins/lazy-schemas.ts'

function app (): ReturnType<typeof Fastify> {
  const a = Fastify({ logger: false, schemaController: lazySchemaController(), ajv: { customOptions: { allErrors: false } } })
  a.addSchema({ $id: 'Shared', type: 'object', required: ['n'], properties: { n: { type: 'integer' } } })
  a.post('/echo', {
    schema: {
      body: { $ref: 'Shared#' },
      response: { 200: { type: 'object', properties: { n: { type: 'integer' } } } }
    }
  }, async (request) => ({ ...(request.body as object), extra: 'dropped by the response schema' }))
  // Never compiled as long as nobody calls it: start-up does not see the broken schema.
  a.post('/broken', { schema: { body: { type: 'no-such-type' } } }, async () => ({}))
  return a
}

t.test('validation and serialisation behave as with fastify\'s default compilers', async (t) => {
  const a = app()
  t.teardown(() => a.close())
  await a.ready()
  const ok = await a.inject({ method: 'POST', url: '/echo', payload: { n: 3 } })
  t.equal(ok.statusCode, 200)
  t.same(ok.json(), { n: 3 }, 'the response schema drops unknown members')
  const bad = await a.inject({ method: 'POST', url: '/echo', payload: { n: 'x' } })
  t.equal(bad.statusCode, 400)
  t.match(bad.json().message, /body\/n must be integer/, 'Ajv\'s errors reach fastify')
  const missing = await a.inject({ method: 'POST', url: '/echo', payload: {} })
  t.match(missing.json().message, /must have required property 'n'/, 'errors are those of the latest call')
  t.equal((await a.inject({ method: 'POST', url: '/echo', payload: { n: 4 } })).statusCode, 200, 'and cleared after a valid one')
})

t.test('a schema is compiled on its route\'s first request, not at ready()', async (t) => {
  const a = app()
  t.teardown(() => a.close())
  await t.resolves(a.ready(), 'the broken schema does not stop start-up')
  t.equal((await a.inject({ method: 'POST', url: '/broken', payload: {} })).statusCode, 500, 'it fails its own first request')
  t.equal((await a.inject({ method: 'POST', url: '/echo', payload: { n: 1 } })).statusCode, 200, 'other routes are unaffected')
})
