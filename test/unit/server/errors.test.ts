// Service failures are rendered with their own status and code; 5xx answers carry a fixed
// sentence plus the safe facts of publicFacts (step, upstream host, status, code) while the
// detail goes to the log; secrets reach neither clients nor logs; the request deadline answers 504.
import t from 'tap'
import * as errors from '../../../src/errors.ts'
import {
  KeyReleaseDenied,
  Overloaded,
  SnpFirmwareError,
  UpstreamNotFound,
  UpstreamTimeout,
  UpstreamUnavailable
} from '../../../src/errors.ts'
import { toGrpcFailure } from '../../../src/grpc/status-map.ts'
import { mapTransportError, statusError } from '../../../src/http/errors-map.ts'
import { publicFacts, publicMessage, publicServerMessage } from '../../../src/public-error.ts'
import { createHarness } from '../../doubles/fake-services.ts'

const SECRET = 'eyJSECRET-TOKEN-DO-NOT-LEAK'
const KEY_OK = { maa_endpoint: 'sharedeus.eus.attest.azure.net', akv_endpoint: 'myvault.vault.azure.net', kid: 'mykey' }
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

t.test('KeyReleaseDenied is 403 with its message and code', async t => {
  const { app, keyRelease } = createHarness()
  t.teardown(() => app.close())
  keyRelease.mode = { kind: 'fail', error: new KeyReleaseDenied('the key release policy of mykey is not met: x-ms-sevsnpvm-hostdata differs') }
  const res = await app.inject({ method: 'POST', url: '/key/release', payload: KEY_OK })
  t.equal(res.statusCode, 403)
  const body = res.json()
  t.same(Object.keys(body), ['error', 'code', 'requestId'])
  t.equal(body.error, 'the key release policy of mykey is not met: x-ms-sevsnpvm-hostdata differs')
  t.equal(body.code, 'ERR_KEY_RELEASE_DENIED')
  t.match(body.requestId, UUID)
})

t.test('UpstreamUnavailable is 503 with a fixed message and its safe facts; the detail goes only to the log', async t => {
  const { app, keyRelease, logs, logText } = createHarness()
  t.teardown(() => app.close())
  keyRelease.mode = {
    kind: 'fail',
    error: new UpstreamUnavailable(`AKV myvault.vault.azure.net answered 503 ${SECRET}`, {
      details: { upstreamStatus: 503, note: SECRET },
      cause: new Error(`socket hang up ${SECRET}`)
    })
  }
  const res = await app.inject({ method: 'POST', url: '/key/release', payload: KEY_OK })
  t.equal(res.statusCode, 503)
  const body = res.json()
  t.same(Object.keys(body), ['error', 'code', 'requestId'])
  t.equal(body.error, 'upstream unavailable (status 503)', 'the status is a fact; the message and the note are not')
  t.equal(body.code, 'ERR_UPSTREAM_UNAVAILABLE')
  t.notMatch(res.body, SECRET)
  t.notMatch(res.body, 'myvault')
  t.notMatch(res.body, 'stack')
  t.equal(res.headers['retry-after'], undefined)

  const logged = logs.find(l => l.code === 'ERR_UPSTREAM_UNAVAILABLE')
  t.ok(logged, 'the failure is logged')
  t.equal(logged?.level, 'error')
  t.equal(logged?.reqId, body.requestId, 'log line carries the request id the client saw')
  t.equal(logged?.component, 'http')
  t.equal(logged?.msg, `AKV myvault.vault.azure.net answered 503 ${SECRET}`)
  t.same(logged?.details, { upstreamStatus: 503, note: SECRET })
  t.match(logText.join(''), 'socket hang up', 'the cause is logged')
})

t.test('UpstreamTimeout is 504', async t => {
  const { app, attestation } = createHarness()
  t.teardown(() => app.close())
  attestation.mode = { kind: 'fail', error: new UpstreamTimeout('MAA did not answer within 10000 ms') }
  const res = await app.inject({ method: 'POST', url: '/attest/maa', payload: { maa_endpoint: 'm.attest.azure.net', runtime_data: 'eyJoZWxsbyI6MX0=' } })
  t.equal(res.statusCode, 504)
  t.equal(res.json().code, 'ERR_UPSTREAM_TIMEOUT')
  t.equal(res.json().error, 'request deadline exceeded')
})

t.test('a firmware error is 500 with the device family message', async t => {
  const { app, attestation } = createHarness()
  t.teardown(() => app.close())
  attestation.mode = { kind: 'fail', error: new SnpFirmwareError('SNP_GET_REPORT: firmware status 0x16 at /dev/sev-guest') }
  const res = await app.inject({ method: 'POST', url: '/attest/raw', payload: { runtime_data: 'aGVsbG8=' } })
  t.equal(res.statusCode, 500)
  t.equal(res.json().error, 'attestation device error')
  t.equal(res.json().code, 'ERR_SNP_FIRMWARE')
  t.notMatch(res.body, '/dev/sev-guest')
})

t.test('Overloaded is 503 with Retry-After when the service says when', async t => {
  const { app, keyRelease } = createHarness()
  t.teardown(() => app.close())
  keyRelease.mode = { kind: 'fail', error: new Overloaded('32 releases in flight', { details: { retryAfterSeconds: 1.2 } }) }
  const res = await app.inject({ method: 'POST', url: '/key/release', payload: KEY_OK })
  t.equal(res.statusCode, 503)
  t.equal(res.headers['retry-after'], '2')
  t.equal(res.json().code, 'ERR_OVERLOADED')
  t.equal(res.json().error, 'too many requests in flight; retry later')

  keyRelease.mode = { kind: 'fail', error: new Overloaded('busy') }
  const bare = await app.inject({ method: 'POST', url: '/key/release', payload: KEY_OK })
  t.equal(bare.statusCode, 503)
  t.equal(bare.headers['retry-after'], undefined)
})

t.test('a non-SidecarError is 500 ERR_INTERNAL without its message', async t => {
  const { app, attestation, logs } = createHarness()
  t.teardown(() => app.close())
  attestation.mode = { kind: 'fail', error: new Error('boom secret') }
  const res = await app.inject({ method: 'POST', url: '/attest/combined', payload: { runtime_data: 'aGVsbG8=' } })
  t.equal(res.statusCode, 500)
  t.same(Object.keys(res.json()), ['error', 'code', 'requestId'])
  t.equal(res.json().error, 'internal error')
  t.equal(res.json().code, 'ERR_INTERNAL')
  t.notMatch(res.body, 'boom secret')
  t.notMatch(res.body, 'at ')
  const logged = logs.find(l => l.code === 'ERR_INTERNAL')
  t.equal(logged?.level, 'error')
  t.match(JSON.stringify(logged?.err), 'boom secret', 'the original error is logged')
})

t.test('a thrown non-Error is 500 ERR_INTERNAL too', async t => {
  const { app, keyRelease } = createHarness()
  t.teardown(() => app.close())
  keyRelease.mode = { kind: 'fail', error: 'a string' }
  const res = await app.inject({ method: 'POST', url: '/key/release', payload: KEY_OK })
  t.equal(res.statusCode, 500)
  t.equal(res.json().code, 'ERR_INTERNAL')
})

t.test('the access token reaches the service and never the logs; the JWK never the logs', async t => {
  const { app, keyRelease, logText, logs } = createHarness()
  t.teardown(() => app.close())
  const res = await app.inject({ method: 'POST', url: '/key/release', payload: { ...KEY_OK, access_token: SECRET } })
  t.equal(res.statusCode, 200)
  t.equal(keyRelease.calls[0]?.request?.accessToken, SECRET)
  t.ok(logs.some(l => l.msg === 'request completed' && (l.res as { statusCode?: number } | undefined)?.statusCode === 200),
    'the request is logged with its status')
  t.ok(logs.some(l => l.msg === 'key release requested' && l.kid === 'mykey'), 'the kid is logged')
  const all = logText.join('')
  t.notMatch(all, SECRET)
  t.notMatch(all, 'c2VjcmV0LWtleS1tYXRlcmlhbC0zMi1ieXRlcyEhISE')
  t.notMatch(all, 'aGVsbG8')

  keyRelease.mode = { kind: 'fail', error: new KeyReleaseDenied('policy not met') }
  const denied = await app.inject({ method: 'POST', url: '/key/release', payload: { ...KEY_OK, access_token: SECRET } })
  t.equal(denied.statusCode, 403)
  t.notMatch(logText.join(''), SECRET)
})

t.test('a slow service answers 504 at the request deadline and its signal is aborted', async t => {
  const { app, attestation, keyRelease } = createHarness({ SKR_REQUEST_TIMEOUT_MS: '50' })
  t.teardown(() => app.close())

  attestation.mode = { kind: 'hang', honourSignal: true }
  const honours = await app.inject({ method: 'POST', url: '/attest/raw', payload: { runtime_data: 'aGVsbG8=' } })
  t.equal(honours.statusCode, 504)
  t.equal(honours.json().code, 'ERR_UPSTREAM_TIMEOUT')
  t.equal(honours.json().error, 'request deadline exceeded')
  t.equal(attestation.calls[0]?.signal?.aborted, true)

  keyRelease.mode = { kind: 'hang', honourSignal: false }
  const ignores = await app.inject({ method: 'POST', url: '/key/release', payload: KEY_OK })
  t.equal(ignores.statusCode, 504, 'a service that ignores its signal cannot hold the client')
  t.equal(ignores.json().code, 'ERR_UPSTREAM_TIMEOUT')
  t.equal(keyRelease.calls[0]?.signal?.aborted, true)
})

// Details as the real mappers build them, plus everything that must never reach a client.
const FACTS = {
  step: 'release',
  upstream: 'akv',
  host: 'myvault.vault.azure.net',
  viaProxy: true,
  upstreamStatus: 503,
  upstreamCode: 'ServiceUnavailable',
  upstreamInnerCode: 'Busy',
  errorCode: 'ECONNRESET',
  proxyStatus: 502,
  upstreamMessage: `the vault says ${SECRET}`,
  proxyVariable: 'HTTPS_PROXY',
  path: '/var/lib/skr/key-info.json',
  check: 'signature',
  fwError: 22
}
const FACTS_TEXT = 'step: release, upstream: akv myvault.vault.azure.net via proxy, status 503, code ServiceUnavailable, inner code Busy, error ECONNRESET, proxy status 502'

t.test('every 5xx class: the fixed sentence plus the same facts, HTTP and gRPC alike; no message, body, path or token', async t => {
  type Ctor = new (message: string, options?: errors.SidecarErrorOptions) => errors.SidecarError
  let checked = 0
  for (const value of Object.values(errors)) {
    if (typeof value !== 'function' || !(value.prototype instanceof errors.SidecarError)) continue
    const probe = new (value as Ctor)('x')
    if (probe.statusCode < 500) continue
    checked++
    const err = new (value as Ctor)(`akv myvault.vault.azure.net: ${SECRET} at /srv/app/secret.pem`, { details: FACTS, cause: new Error(SECRET) })
    const text = publicMessage(err)
    t.equal(text, `${publicServerMessage(err.code)} (${FACTS_TEXT})`, err.code)
    t.notMatch(text, SECRET, `${err.code}: no message text`)
    t.notMatch(text, /\/srv|\/var|key-info|HTTPS_PROXY|signature|22/, `${err.code}: no path, proxy variable or other detail`)
    t.equal(toGrpcFailure(err).status.details, `${err.code}: ${text}`, `${err.code}: gRPC details are the same text`)
    t.equal(publicMessage(new (value as Ctor)(`${SECRET}`)), publicServerMessage(err.code), `${err.code}: no details, the fixed sentence alone`)
  }
  t.ok(checked >= 18, `all 5xx classes checked (${checked})`)
  const denied = new KeyReleaseDenied('AKV denied the key release: policy', { details: FACTS })
  t.equal(publicMessage(denied), 'AKV denied the key release: policy', '4xx: the message itself, no facts appended')
})

t.test('publicFacts leaves out every value that does not fit its shape', async t => {
  const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln'
  const rejected: Array<[string, errors.ErrorDetails]> = [
    ['unknown step', { step: 'decrypt the secret' }],
    ['sub-step of a key error', { step: 'pkcs8' }],
    ['unknown upstream', { upstream: 'evil' }],
    ['status as text', { upstreamStatus: '503' }],
    ['status out of range', { upstreamStatus: 600 }],
    ['fractional status', { upstreamStatus: 503.5 }],
    ['code with spaces', { upstreamCode: 'Service Unavailable' }],
    ['code with punctuation', { upstreamCode: 'a:b' }],
    ['code too long', { upstreamCode: 'A'.repeat(65) }],
    ['JWT-shaped code', { upstreamCode: 'eyJhbGciOiJSUzI1NiJ9' }],
    ['a whole JWT as code', { upstreamCode: JWT }],
    ['JWT as inner code', { upstreamInnerCode: JWT }],
    ['JWT as errorCode', { errorCode: JWT }],
    ['viaProxy without an upstream', { viaProxy: true }],
    ['proxyStatus as text', { proxyStatus: '407' }]
  ]
  for (const [name, details] of rejected) t.same(publicFacts(details), [], name)
  const badHosts = ['myvault.vault.azure.net/keys/k', 'user@myvault.vault.azure.net', 'host name', '/run/skr.sock', `${JWT}`, 'a'.repeat(300), 'http://x', '[fe80::1%eth0]']
  for (const host of badHosts) t.same(publicFacts({ upstream: 'akv', host }), ['upstream: akv'], `host ${host.slice(0, 40)} dropped, the upstream kept`)
  for (const host of ['169.254.169.254', '127.0.0.1:8443', '[::1]:443', 'MyVault.Vault.Azure.Net']) {
    t.same(publicFacts({ upstream: 'thim', host }), [`upstream: thim ${host.toLowerCase()}`], host)
  }
  t.same(publicFacts({ upstreamCode: 'Forbidden', upstreamInnerCode: 'Forbidden' }), ['code Forbidden'], 'an inner code equal to the code is not repeated')
  t.same(publicFacts({ upstreamCode: 'invalid_resource', upstreamStatus: 400 }), ['status 400', 'code invalid_resource'])
})

t.test('the real mappers\' errors render as documented', async t => {
  const ctx = { upstream: 'akv' as const, host: 'myvault.vault.azure.net', attempts: 4 }
  const body = Buffer.from(JSON.stringify({ error: { code: 'ServiceUnavailable', message: `busy ${SECRET}` } }))
  const unavailable = statusError(ctx, 503, body)
  t.equal(publicMessage(unavailable), 'upstream unavailable (upstream: akv myvault.vault.azure.net, status 503, code ServiceUnavailable)')
  const inRelease = new UpstreamUnavailable('release: x', { details: { ...unavailable.details, step: 'release' } })
  t.equal(publicMessage(inRelease), 'upstream unavailable (step: release, upstream: akv myvault.vault.azure.net, status 503, code ServiceUnavailable)')
  const nx = mapTransportError(Object.assign(new Error('getaddrinfo'), { code: 'ENOTFOUND' }), { upstream: 'maa', host: 'sharedeus.eus.attest.azure.nett', attempts: 1 }).error
  t.equal(publicMessage(nx), 'upstream host not found (upstream: maa sharedeus.eus.attest.azure.nett, error ENOTFOUND)')
})

t.test('ERR_UPSTREAM_NOT_FOUND is 502 with the host named, so the caller can fix it', async t => {
  const { app, keyRelease } = createHarness()
  t.teardown(() => app.close())
  keyRelease.mode = {
    kind: 'fail',
    error: new UpstreamNotFound('release: akv myvaultt.vault.azure.net: host name not found (ENOTFOUND) after 1 attempt', {
      details: { upstream: 'akv', host: 'myvaultt.vault.azure.net', errorCode: 'ENOTFOUND', attempts: 1, step: 'release' }
    })
  }
  const res = await app.inject({ method: 'POST', url: '/key/release', payload: { ...KEY_OK, akv_endpoint: 'myvaultt.vault.azure.net' } })
  t.equal(res.statusCode, 502)
  t.same(res.json(), {
    error: 'upstream host not found (step: release, upstream: akv myvaultt.vault.azure.net, error ENOTFOUND)',
    code: 'ERR_UPSTREAM_NOT_FOUND',
    requestId: res.json().requestId
  })
  t.equal(res.headers['retry-after'], undefined, 'no Retry-After: retrying will not help')
})
