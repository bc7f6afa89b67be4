// Success shapes of the reference-compatible API, and the transport-level answers
// (content type, size limit, unknown routes, malformed JSON).
import t from 'tap'
import { BODY_LIMIT } from '../../../src/server/app.ts'
import { SIMULATED_WARNING } from '../../../src/server/routes/status.ts'
import { createHarness, FAKE_COMBINED, FAKE_JWK, FAKE_REPORT, FAKE_TOKEN } from '../../doubles/fake-services.ts'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

t.test('GET /status answers the reference message plus attestation facts', async t => {
  const { app, attestation } = createHarness()
  t.teardown(() => app.close())
  const res = await app.inject({ method: 'GET', url: '/status' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  t.equal(res.body, '{"message":"Status OK","attestation":{"backend":"tsm","simulated":false}}')

  attestation.backend = null
  const none = await app.inject({ method: 'GET', url: '/status' })
  t.same(none.json(), { message: 'Status OK', attestation: { backend: null, simulated: false } })
})

t.test('GET /status warns when attestation is simulated', async t => {
  const { app, attestation } = createHarness()
  t.teardown(() => app.close())
  attestation.backend = 'simulated'
  attestation.simulated = true
  const res = await app.inject({ method: 'GET', url: '/status' })
  t.equal(res.statusCode, 200)
  t.same(res.json(), {
    message: 'Status OK',
    attestation: { backend: 'simulated', simulated: true },
    warning: 'attestation is SIMULATED: no hardware root of trust; keys released this way are not protected'
  })
  t.equal(SIMULATED_WARNING, res.json().warning)
})

t.test('POST /attest/raw returns lowercase hex of the report and hashes nothing itself', async t => {
  const { app, attestation } = createHarness()
  t.teardown(() => app.close())
  const res = await app.inject({ method: 'POST', url: '/attest/raw', payload: { runtime_data: 'aGVsbG8=' } })
  t.equal(res.statusCode, 200)
  t.equal(res.body, '{"report":"02000000abcdef0123456789feedface"}')
  t.equal(res.json().report, FAKE_REPORT.toString('hex'))
  t.equal(attestation.calls.length, 1)
  t.same(attestation.calls[0]?.runtimeData, Buffer.from('hello'))
  t.ok(attestation.calls[0]?.signal instanceof AbortSignal, 'service gets an AbortSignal')
})

t.test('runtime_data in the url-safe alphabet (what the reference tests send) decodes the same', async t => {
  const { app, attestation } = createHarness()
  t.teardown(() => app.close())
  const data = Buffer.from([0xfb, 0xff, 0xbf, 0x00])
  for (const runtime_data of [data.toString('base64'), data.toString('base64url')]) {
    const res = await app.inject({ method: 'POST', url: '/attest/raw', payload: { runtime_data } })
    t.equal(res.statusCode, 200, runtime_data)
  }
  t.same(attestation.calls.map(c => c.runtimeData), [data, data])
})

t.test('POST /attest/combined returns the reference field names', async t => {
  const { app } = createHarness()
  t.teardown(() => app.close())
  const res = await app.inject({ method: 'POST', url: '/attest/combined', payload: { runtime_data: 'aGVsbG8' } })
  t.equal(res.statusCode, 200)
  t.equal(res.body, JSON.stringify({
    endorsed_tcb: FAKE_COMBINED.endorsedTcb,
    endorsements: FAKE_COMBINED.endorsements,
    evidence: FAKE_COMBINED.evidence,
    uvm_endorsements: FAKE_COMBINED.uvmEndorsements
  }))
})

t.test('POST /attest/maa returns the token and passes the normalised endpoint', async t => {
  const { app, attestation } = createHarness()
  t.teardown(() => app.close())
  const res = await app.inject({
    method: 'POST',
    url: '/attest/maa',
    payload: { maa_endpoint: 'https://SharedEUS.eus.attest.azure.net/', runtime_data: Buffer.from('{"a":1}').toString('base64') }
  })
  t.equal(res.statusCode, 200)
  t.equal(res.body, JSON.stringify({ token: FAKE_TOKEN }))
  t.equal(attestation.calls[0]?.maaEndpoint, 'sharedeus.eus.attest.azure.net')
  t.same(attestation.calls[0]?.runtimeData, Buffer.from('{"a":1}'))
})

t.test('POST /key/release returns the JWK as a JSON string', async t => {
  const { app, keyRelease } = createHarness()
  t.teardown(() => app.close())
  const res = await app.inject({
    method: 'POST',
    url: '/key/release',
    payload: { maa_endpoint: 'sharedeus.eus.attest.azure.net', akv_endpoint: 'https://myvault.vault.azure.net/', kid: 'mykey', unknown_field: 1 }
  })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.same(Object.keys(body), ['key'])
  t.equal(typeof body.key, 'string')
  t.same(JSON.parse(body.key), FAKE_JWK)
  t.equal(body.key, JSON.stringify(FAKE_JWK))
  t.same(keyRelease.calls[0]?.request, {
    maaEndpoint: 'sharedeus.eus.attest.azure.net',
    akvEndpoint: 'myvault.vault.azure.net',
    kid: 'mykey'
  })
})

t.test('kid may carry a version; access_token is passed through, "" and null mean none', async t => {
  const { app, keyRelease } = createHarness()
  t.teardown(() => app.close())
  const base = { maa_endpoint: 'm.attest.azure.net', akv_endpoint: 'v.vault.azure.net', kid: 'my-key/0123456789abcdef0123456789abcdef' }
  for (const access_token of ['eyJ.pass.through', '', null]) {
    const res = await app.inject({ method: 'POST', url: '/key/release', payload: { ...base, access_token } })
    t.equal(res.statusCode, 200, String(access_token))
  }
  t.same(keyRelease.calls.map(c => c.request), [
    { maaEndpoint: 'm.attest.azure.net', akvEndpoint: 'v.vault.azure.net', kid: base.kid, accessToken: 'eyJ.pass.through' },
    { maaEndpoint: 'm.attest.azure.net', akvEndpoint: 'v.vault.azure.net', kid: base.kid },
    { maaEndpoint: 'm.attest.azure.net', akvEndpoint: 'v.vault.azure.net', kid: base.kid }
  ])
})

t.test('the response schema drops fields a service should not have returned', async t => {
  const { app, attestation } = createHarness()
  t.teardown(() => app.close())
  attestation.evidence = { ...FAKE_COMBINED, secretExtra: 'do-not-send' } as typeof FAKE_COMBINED
  const res = await app.inject({ method: 'POST', url: '/attest/combined', payload: { runtime_data: 'aGVsbG8=' } })
  t.equal(res.statusCode, 200)
  t.notMatch(res.body, 'do-not-send')
})

t.test('POST with a declared non-JSON content type is 415 before any route runs', async t => {
  const { app, attestation } = createHarness()
  t.teardown(() => app.close())
  const cases: Array<Record<string, string>> = [
    { 'content-type': 'text/plain' },
    { 'content-type': 'application/jsonx' },
    { 'content-type': 'multipart/form-data; boundary=x' },
    { 'content-type': 'application/xml' }
  ]
  for (const headers of cases) {
    const res = await app.inject({ method: 'POST', url: '/attest/raw', headers, payload: '{"runtime_data":"aGVsbG8="}' })
    t.equal(res.statusCode, 415, JSON.stringify(headers))
    t.equal(res.json().error, 'content-type must be application/json')
    t.equal(res.json().code, 'ERR_UNSUPPORTED_MEDIA_TYPE')
  }
  t.equal(attestation.calls.length, 0)

  const charset = await app.inject({
    method: 'POST', url: '/attest/raw', headers: { 'content-type': 'Application/JSON; charset=utf-8' }, payload: '{"runtime_data":"aGVsbG8="}'
  })
  t.equal(charset.statusCode, 200, 'charset parameter and case are accepted')
})

t.test('JSON sent the way the reference\'s examples send it (curl -d, or no content type) is accepted', async t => {
  // The reference reads the body as JSON whatever the Content-Type; its examples use `curl -d`,
  // which labels the body application/x-www-form-urlencoded.
  const { app, attestation } = createHarness()
  t.teardown(() => app.close())
  for (const headers of [{ 'content-type': 'application/x-www-form-urlencoded' }, {}] as Array<Record<string, string>>) {
    const ok = await app.inject({ method: 'POST', url: '/attest/raw', headers, payload: '{"runtime_data":"aGVsbG8="}' })
    t.equal(ok.statusCode, 200, JSON.stringify(headers))
    const form = await app.inject({ method: 'POST', url: '/attest/raw', headers, payload: 'runtime_data=aGVsbG8%3D' })
    t.equal(form.statusCode, 400, 'a real form body is not JSON')
    t.equal(form.json().code, 'ERR_REQUEST_INVALID')
    const poisoned = await app.inject({ method: 'POST', url: '/attest/raw', headers, payload: '{"runtime_data":"aGVsbG8=","__proto__":{"x":1}}' })
    t.equal(poisoned.statusCode, 400, 'prototype poisoning refused on this path too')
  }
  t.equal(attestation.calls.length, 2)
  const empty = await app.inject({ method: 'POST', url: '/attest/raw' })
  t.equal(empty.statusCode, 400, 'no content type and no body: the body is missing')
  t.equal(empty.json().code, 'ERR_REQUEST_INVALID')
})

t.test('a body over 1 MiB is 413', async t => {
  const { app, attestation } = createHarness()
  t.teardown(() => app.close())
  const exact = '{"runtime_data":"' + 'A'.repeat(BODY_LIMIT - 20) + '"}'
  t.equal(exact.length, BODY_LIMIT - 1)
  const over = exact.slice(0, -2) + 'AA"}'
  t.equal(over.length, BODY_LIMIT + 1)
  const res = await app.inject({ method: 'POST', url: '/attest/raw', headers: { 'content-type': 'application/json' }, payload: over })
  t.equal(res.statusCode, 413)
  t.same({ ...res.json(), requestId: 'x' }, { error: 'body is larger than 1 MiB', code: 'ERR_REQUEST_TOO_LARGE', requestId: 'x' })
  t.equal(attestation.calls.length, 0)
})

t.test('unknown routes and methods are 404 JSON', async t => {
  const { app } = createHarness()
  t.teardown(() => app.close())
  const cases: Array<['GET' | 'POST' | 'DELETE', string, string]> = [
    ['GET', '/nope', 'no route GET /nope'],
    ['POST', '/status', 'no route POST /status'],
    ['GET', '/attest/raw', 'no route GET /attest/raw'],
    ['DELETE', '/key/release', 'no route DELETE /key/release'],
    ['GET', '/nope?token=abc', 'no route GET /nope']
  ]
  for (const [method, url, error] of cases) {
    const res = await app.inject({ method, url, headers: { 'content-type': 'text/plain' }, payload: method === 'GET' ? undefined : 'x' })
    t.equal(res.statusCode, 404, `${method} ${url}`)
    t.match(res.headers['content-type'], /^application\/json/)
    const body = res.json()
    t.same(Object.keys(body), ['error', 'code', 'requestId'])
    t.equal(body.error, error)
    t.equal(body.code, 'ERR_NOT_FOUND')
    t.match(body.requestId, UUID)
  }
})

t.test('malformed or empty JSON is 400', async t => {
  const { app } = createHarness()
  t.teardown(() => app.close())
  const cases: Array<[string, string]> = [
    ['{"runtime_data":', 'body is not valid JSON'],
    ["{'runtime_data':'x'}", 'body is not valid JSON'],
    ['{"__proto__":{"polluted":true},"runtime_data":"aGVsbG8="}', 'body is not valid JSON'],
    ['', 'body is empty; expected a JSON object'],
    ['null', 'body must be a JSON object'],
    ['[]', 'body must be a JSON object'],
    ['"aGVsbG8="', 'body must be a JSON object']
  ]
  for (const [payload, error] of cases) {
    const res = await app.inject({ method: 'POST', url: '/attest/raw', headers: { 'content-type': 'application/json' }, payload })
    t.equal(res.statusCode, 400, payload)
    t.equal(res.json().error, error, payload)
    t.equal(res.json().code, 'ERR_REQUEST_INVALID')
  }
})

t.test('request ids are random and never taken from the caller', async t => {
  const { app } = createHarness()
  t.teardown(() => app.close())
  const a = await app.inject({ method: 'GET', url: '/nope', headers: { 'request-id': 'caller-chosen' } })
  const b = await app.inject({ method: 'GET', url: '/nope' })
  t.match(a.json().requestId, UUID)
  t.match(b.json().requestId, UUID)
  t.not(a.json().requestId, b.json().requestId)
})
