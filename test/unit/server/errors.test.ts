// Service failures are rendered with their own status and code; 5xx answers carry a fixed
// sentence while the detail goes to the log; secrets reach neither clients nor logs; the
// request deadline answers 504.
import t from 'tap'
import {
  KeyReleaseDenied,
  Overloaded,
  SnpFirmwareError,
  UpstreamTimeout,
  UpstreamUnavailable
} from '../../../src/errors.ts'
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

t.test('UpstreamUnavailable is 503 with a fixed message; the detail goes only to the log', async t => {
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
  t.equal(body.error, 'upstream unavailable')
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
