// GET /openapi.json: an OpenAPI 3 document generated from the route schemas, listing every
// route with its request and response schemas and the shared ErrorBody, with no example
// secrets; and docs/api.md, rendered from it, is up to date (the drift check).
import t from 'tap'
import { readFileSync } from 'node:fs'
import * as errors from '../../../src/errors.ts'
import { buildApiDocument, renderApiMarkdown } from '../../../src/server/api-doc.ts'
import { buildApp } from '../../../src/server/app.ts'
import { packageVersion, type OpenApiDocument } from '../../../src/server/plugins/openapi.ts'
import { FakeAttestationService, FakeBatchKeyReleaseService, FakeKeyReleaseService, testConfig, NO_SHEDDING } from '../../doubles/fake-services.ts'
import { repoRoot } from '../../helpers/vectors.ts'

const ROUTES: ReadonlyArray<[string, string]> = [
  ['get', '/status'],
  ['post', '/attest/raw'],
  ['post', '/attest/combined'],
  ['post', '/attest/maa'],
  ['post', '/key/release'],
  ['get', '/livez'],
  ['get', '/readyz'],
  ['get', '/metrics'],
  ['get', '/openapi.json']
]

type Node = Record<string, unknown>

function at (value: unknown, ...path: string[]): unknown {
  let cur = value
  for (const key of path) cur = (cur as Node | undefined)?.[key]
  return cur
}

function keysDeep (value: unknown, out: Set<string> = new Set()): Set<string> {
  if (Array.isArray(value)) for (const v of value) keysDeep(v, out)
  else if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) { out.add(k); keysDeep(v, out) }
  }
  return out
}

async function fetchDocument (): Promise<{ body: string; doc: OpenApiDocument; contentType: string | undefined }> {
  const app = buildApp({ config: testConfig(), attestation: new FakeAttestationService(), keyRelease: new FakeKeyReleaseService(), backpressure: NO_SHEDDING })
  try {
    const res = await app.inject({ method: 'GET', url: '/openapi.json' })
    t.equal(res.statusCode, 200)
    return { body: res.body, doc: JSON.parse(res.body) as OpenApiDocument, contentType: res.headers['content-type'] }
  } finally {
    await app.close()
  }
}

t.test('the document is OpenAPI 3 JSON describing skr', async t => {
  const { doc, contentType } = await fetchDocument()
  t.match(contentType, /^application\/json/)
  t.match(doc.openapi, /^3\.\d+\.\d+$/)
  t.equal(doc.info.title, 'skr')
  const pkg = JSON.parse(readFileSync(`${repoRoot}/package.json`, 'utf8')) as { version: string }
  t.equal(doc.info.version, pkg.version)
  t.equal(packageVersion(), pkg.version)
})

t.test('every route is listed, with request and response schemas and the shared error schema', async t => {
  const { doc } = await fetchDocument()
  const listed = Object.entries(doc.paths).flatMap(([path, methods]) => Object.keys(methods).map(m => `${m} ${path}`)).sort()
  t.same(listed, ROUTES.map(([m, p]) => `${m} ${p}`).sort(), 'exactly the routes skr serves')
  t.same(at(doc, 'components', 'schemas', 'ErrorBody', 'required'), ['error', 'code', 'requestId'])

  for (const [method, path] of ROUTES) {
    const op = at(doc, 'paths', path, method) as Node
    t.type(op.summary, 'string', `${method} ${path} has a summary`)
    const ok = at(op, 'responses', '200', 'content') as Node | undefined
    t.ok(ok !== undefined && Object.keys(ok).length === 1, `${method} ${path} documents its 200 body`)
    for (const cls of ['4XX', '5XX']) {
      t.equal(at(op, 'responses', cls, 'content', 'application/json', 'schema', '$ref'), '#/components/schemas/ErrorBody', `${method} ${path} ${cls}`)
    }
    if (method === 'post') {
      const body = at(op, 'requestBody', 'content', 'application/json', 'schema') as Node | undefined
      t.equal(body?.type, 'object', `${method} ${path} documents its request body`)
      t.ok(Array.isArray(body?.required) && (body.required as unknown[]).length > 0)
    }
  }
  const release = at(doc, 'paths', '/key/release', 'post', 'requestBody', 'content', 'application/json', 'schema') as Node
  t.match(release.required, ['maa_endpoint', 'akv_endpoint'])
  t.ok(['maa_endpoint', 'akv_endpoint', 'kid', 'access_token'].every(f => f in (release.properties as Node)), 'the reference fields are described')
  t.same(Object.keys(at(doc, 'paths', '/attest/combined', 'post', 'responses', '200', 'content', 'application/json', 'schema', 'properties') as Node),
    ['endorsed_tcb', 'endorsements', 'evidence', 'uvm_endorsements'])
  t.ok(at(doc, 'paths', '/metrics', 'get', 'responses', '200', 'content', 'text/plain'), '/metrics is text/plain')
  t.ok(at(doc, 'paths', '/readyz', 'get', 'responses', '503'), '/readyz documents its 503')
})

t.test('the document carries no examples and nothing secret-shaped', async t => {
  const { body, doc } = await fetchDocument()
  // Server variables must have defaults (OpenAPI 3.0.3 §4.7.6): the schemas are what is checked.
  const keys = keysDeep([doc.paths, doc.components])
  t.notOk(keys.has('example'), 'no example values')
  t.notOk(keys.has('examples'), 'no examples')
  t.notOk(keys.has('default'), 'no default values')
  t.notMatch(body, /eyJ[A-Za-z0-9_-]{4,}/, 'no JWT-shaped strings')
  t.notMatch(body, /-----BEGIN/, 'no PEM')
  t.notMatch(body, /vault\.azure\.net|attest\.azure\.net/, 'no real endpoints')
})

t.test('what redocly\'s recommended ruleset asks for (openapi-lint.test.ts runs the ruleset itself)', async t => {
  const { doc } = await fetchDocument()
  const ids = ROUTES.map(([method, path]) => at(doc, 'paths', path, method, 'operationId'))
  t.ok(ids.every(id => typeof id === 'string' && /^[a-z][A-Za-z]+$/.test(id)), 'every operation has an operationId')
  t.equal(new Set(ids).size, ids.length, 'operationIds are unique')
  t.match(doc.servers, [{ url: 'http://{host}:{port}', variables: { host: { default: 'localhost' }, port: { default: '8080' } } }], 'the loopback server, Port and SKR_HOST as variables')
  const pkg = JSON.parse(readFileSync(`${repoRoot}/package.json`, 'utf8')) as { license: string }
  t.same(doc.info.license, { name: pkg.license, url: `https://spdx.org/licenses/${pkg.license}.html` }, 'the package\'s licence')
  t.same(at(doc, 'security'), [], 'no authentication, said explicitly')

  // Explicit statuses; Retry-After where skr sends it (503 ERR_OVERLOADED / ERR_SHUTTING_DOWN: routes that are shed or drained).
  for (const path of ['/attest/raw', '/attest/combined', '/attest/maa', '/key/release']) {
    const responses = at(doc, 'paths', path, 'post', 'responses') as Node
    t.same(Object.keys(responses), ['200', '400', '403', '413', '415', '500', '502', '503', '504', '4XX', '5XX'], `POST ${path}: explicit statuses`)
    t.same(at(responses, '503', 'headers', 'Retry-After', 'schema'), { type: 'integer', minimum: 1 }, `POST ${path}: 503 documents Retry-After`)
    t.match(at(responses, '503', 'description'), /ERR_OVERLOADED.*ERR_SHUTTING_DOWN/)
  }
  for (const path of ['/status', '/livez', '/readyz', '/metrics', '/openapi.json']) {
    const responses = at(doc, 'paths', path, 'get', 'responses') as Node
    t.ok(['400', '403', '500'].every(s => s in responses), `GET ${path}: explicit error statuses`)
    t.equal(at(responses, '503', 'headers'), undefined, `GET ${path} is never shed: no Retry-After`)
  }

  // The ERR_* codes, from src/errors.ts itself.
  const codes = Object.values(errors as Record<string, unknown>)
    .filter((v): v is new (m: string) => errors.SidecarError => typeof v === 'function' && v.prototype instanceof errors.SidecarError)
    .map(Cls => new Cls('').code).sort()
  t.same(at(doc, 'components', 'schemas', 'ErrorBody', 'properties', 'code', 'enum'), codes, 'ErrorBody.code is an enum of every code in src/errors.ts')

  // kid xor kids, as the validator enforces it.
  t.same(at(doc, 'paths', '/key/release', 'post', 'requestBody', 'content', 'application/json', 'schema', 'oneOf'), [{ required: ['kid'] }, { required: ['kids'] }])
})

t.test('the kid xor kids schema accepts and refuses exactly what the route did', async t => {
  const app = buildApp({ config: testConfig(), attestation: new FakeAttestationService(), keyRelease: new FakeBatchKeyReleaseService(), backpressure: NO_SHEDDING })
  t.teardown(() => app.close())
  const base = { maa_endpoint: 'sharedeus.eus.attest.azure.net', akv_endpoint: 'myvault.vault.azure.net' }
  const cases: Array<[string, Record<string, unknown>, number, string?]> = [
    ['kid', { ...base, kid: 'a' }, 200],
    ['kids', { ...base, kids: ['a', 'b'] }, 200],
    ['neither', { ...base }, 400, 'body.kid is required'],
    ['both', { ...base, kid: 'a', kids: ['b'] }, 400, 'body.kid and body.kids are mutually exclusive'],
    ['kid null', { ...base, kid: null }, 400, 'body.kid must be a string'],
    ['kids empty', { ...base, kids: [] }, 400, 'body.kids must list at least 1 item']
  ]
  for (const [name, payload, status, error] of cases) {
    const res = await app.inject({ method: 'POST', url: '/key/release', payload })
    t.equal(res.statusCode, status, name)
    if (error !== undefined) t.equal(res.json<{ error: string }>().error, error, name)
  }
})

t.test('docs/api.md is generated from the current document (run scripts/gen-api-doc.mjs)', async t => {
  const expected = renderApiMarkdown(await buildApiDocument())
  const actual = readFileSync(`${repoRoot}/docs/api.md`, 'utf8')
  t.equal(actual, expected, 'docs/api.md is stale: node scripts/node24.mjs scripts/gen-api-doc.mjs')
  for (const [method, path] of ROUTES) t.match(actual, `### ${method.toUpperCase()} ${path}\n`)
})
