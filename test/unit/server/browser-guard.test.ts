// Issue 11 §2: no browser can drive skr. The measured hole: a form-typed POST with
// `Host: attacker.example:8080`, a foreign Origin and `Sec-Fetch-Site: cross-site` got 200 and the
// key. Legitimate clients (curl, the reference's shell clients, Go, Python, Node) send neither
// Origin nor Sec-Fetch-* and a loopback Host, and must keep working byte for byte.
import t, { type Test } from 'tap'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { buildApp } from '../../../src/server/app.ts'
import { listen, type Listening } from '../../../src/server/listen.ts'
import { refuseBrowserRequest, type BrowserHeaders } from '../../../src/server/plugins/browser-guard.ts'
import { FakeAttestationService, FakeKeyReleaseService, testConfig, NO_SHEDDING } from '../../doubles/fake-services.ts'
import { curlPost, exchange, goPost } from '../../helpers/raw-http.ts'

const RELEASE = JSON.stringify({ maa_endpoint: 'sharedeus.eus.attest.azure.net', akv_endpoint: 'myvault.vault.azure.net', kid: 'mykey' })

async function serve (t: Test, env: Record<string, string> = {}): Promise<{ port: number, listening: Listening, keyRelease: FakeKeyReleaseService }> {
  const config = testConfig({ SKR_HOST: '127.0.0.1', Port: '0', ...env })
  const keyRelease = new FakeKeyReleaseService()
  const app = buildApp({ config, attestation: new FakeAttestationService(), keyRelease, backpressure: NO_SHEDDING })
  const listening = await listen(app, config, pino({ level: 'silent' }))
  t.teardown(() => listening.close())
  const port = Number((listening.addresses[0] ?? '').split(':').pop())
  return { port, listening, keyRelease }
}

const LOOPBACK = { serverNames: [], nonLoopbackListener: false }
const headers = (h: Partial<BrowserHeaders>): BrowserHeaders => ({ httpVersion: '1.1', host: 'localhost:8080', origin: undefined, secFetchSite: undefined, ...h })

t.test('the decision, as a table', async t => {
  const allowed: Array<Partial<BrowserHeaders>> = [
    {},
    { host: 'localhost' }, { host: 'LOCALHOST:8080' }, { host: 'localhost.:8080' }, { host: '127.0.0.1:8080' }, { host: '127.3.4.5' },
    { host: '[::1]:8080' }, { host: '[::ffff:127.0.0.1]:8080' }, { host: '2130706433:8080' },
    { secFetchSite: 'none' }, { secFetchSite: 'same-origin' }, { secFetchSite: 'Same-Origin' },
    { httpVersion: '1.0', host: undefined }
  ]
  for (const h of allowed) t.equal(refuseBrowserRequest(headers(h), LOOPBACK), null, JSON.stringify(h))
  const refused: Array<[Partial<BrowserHeaders>, string]> = [
    [{ origin: 'https://attacker.example' }, 'ERR_CROSS_ORIGIN_REFUSED'],
    [{ origin: 'null' }, 'ERR_CROSS_ORIGIN_REFUSED'],
    [{ origin: 'http://localhost:8080' }, 'ERR_CROSS_ORIGIN_REFUSED'],
    [{ secFetchSite: 'cross-site' }, 'ERR_CROSS_ORIGIN_REFUSED'],
    [{ secFetchSite: 'same-site' }, 'ERR_CROSS_ORIGIN_REFUSED'],
    [{ host: 'attacker.example:8080' }, 'ERR_HOST_NOT_ALLOWED'],
    [{ host: 'localhost.attacker.example' }, 'ERR_HOST_NOT_ALLOWED'],
    [{ host: '10.0.0.1:8080' }, 'ERR_HOST_NOT_ALLOWED'],
    [{ host: 'a b' }, 'ERR_HOST_NOT_ALLOWED'],
    [{ host: '[fe80::1%eth0]' }, 'ERR_HOST_NOT_ALLOWED'],
    [{ host: undefined }, 'ERR_REQUEST_INVALID'],
    [{ host: '' }, 'ERR_REQUEST_INVALID']
  ]
  for (const [h, code] of refused) t.equal(refuseBrowserRequest(headers(h), LOOPBACK)?.code, code, JSON.stringify(h))
  t.equal(refuseBrowserRequest(headers({ host: 'attacker.example' }), LOOPBACK)?.statusCode, 403)

  const exposed = { serverNames: ['skr.pod.example'], nonLoopbackListener: true }
  t.equal(refuseBrowserRequest(headers({ host: '10.0.0.1:8080' }), exposed), null, 'an IP literal on a non-loopback listener (no rebinding sends one)')
  t.equal(refuseBrowserRequest(headers({ host: 'SKR.pod.example.:8080' }), exposed), null, 'a configured name')
  t.equal(refuseBrowserRequest(headers({ host: 'attacker.example' }), exposed)?.code, 'ERR_HOST_NOT_ALLOWED')
  t.equal(refuseBrowserRequest(headers({ host: 'attacker.example', origin: undefined }), LOOPBACK, true), null, 'the Unix socket skips the Host check')
  t.equal(refuseBrowserRequest(headers({ origin: 'https://a.example' }), LOOPBACK, true)?.code, 'ERR_CROSS_ORIGIN_REFUSED', 'but not the Origin check')
})

t.test('the measured attack is refused before the service is called, on every route', async t => {
  const { port, keyRelease } = await serve(t)
  const attack = `POST /key/release HTTP/1.1\r\nHost: attacker.example:8080\r\nOrigin: http://attacker.example:8080\r\n` +
    `Sec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: no-cors\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${RELEASE.length}\r\n\r\n${RELEASE}`
  const refused = await exchange({ port }, attack)
  t.equal(refused.answer?.status, 403)
  t.same(Object.keys(refused.answer?.json ?? {}), ['error', 'code', 'requestId'])
  t.equal(refused.answer?.json?.code, 'ERR_CROSS_ORIGIN_REFUSED')
  t.equal(keyRelease.calls.length, 0, 'the key release service was never called')

  const rebound = await exchange({ port }, curlPost('attacker.example:8080', '/key/release', RELEASE))
  t.equal(rebound.answer?.status, 403, 'DNS rebinding: the page\'s own name in Host')
  t.equal(rebound.answer?.json?.code, 'ERR_HOST_NOT_ALLOWED')
  t.match(rebound.answer?.json?.error, /"attacker\.example" is not a loopback name or address, nor listed in SKR_SERVER_NAMES/)

  for (const path of ['/status', '/livez', '/readyz', '/metrics', '/openapi.json', '/no/such/route']) {
    const get = await exchange({ port }, `GET ${path} HTTP/1.1\r\nHost: attacker.example:8080\r\n\r\n`)
    t.equal(get.answer?.status, 403, `GET ${path} with a foreign Host`)
    const cross = await exchange({ port }, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nSec-Fetch-Site: cross-site\r\n\r\n`)
    t.equal(cross.answer?.status, 403, `GET ${path} cross-site`)
  }
  const preflight = await exchange({ port }, `OPTIONS /key/release HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nOrigin: https://a.example\r\nAccess-Control-Request-Method: POST\r\n\r\n`)
  t.equal(preflight.answer?.status, 403, 'a CORS preflight')
  t.notOk(preflight.answer?.headers['access-control-allow-origin'], 'no CORS header is ever sent')
  t.equal(keyRelease.calls.length, 0)
})

t.test('curl-, Go-, Python- and Node-shaped requests are unaffected', async t => {
  const { port, keyRelease } = await serve(t)
  for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `localhost:${port}`.toUpperCase()]) {
    const curl = await exchange({ port }, curlPost(host, '/key/release', RELEASE))
    t.equal(curl.answer?.status, 200, `curl -d, Host ${host}`)
    t.type(curl.answer?.json?.key, 'string')
  }
  const go = await exchange({ port }, goPost(`localhost:${port}`, '/key/release', RELEASE))
  t.equal(go.answer?.status, 200, 'Go net/http')
  const python = await exchange({ port }, `POST /key/release HTTP/1.1\r\nHost: localhost:${port}\r\nUser-Agent: python-requests/2.32.3\r\n` +
    `Accept-Encoding: gzip, deflate\r\nAccept: */*\r\nConnection: keep-alive\r\nContent-Length: ${RELEASE.length}\r\nContent-Type: application/json\r\n\r\n${RELEASE}`)
  t.equal(python.answer?.status, 200, 'Python requests')
  const node = await fetch(`http://127.0.0.1:${port}/key/release`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: RELEASE })
  t.equal(node.status, 200, 'Node fetch (undici sends Sec-Fetch-Mode: cors, but no Origin nor Sec-Fetch-Site)')
  const status = await exchange({ port }, `GET /status HTTP/1.1\r\nHost: localhost:${port}\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n`)
  t.equal(status.answer?.status, 200, 'curl GET /status')
  const http10 = await exchange({ port }, 'GET /status HTTP/1.0\r\n\r\n')
  t.equal(http10.answer?.status, 200, 'HTTP/1.0 without Host')
  t.equal(keyRelease.calls.length, 6)
})

t.test('HTTP/1.1 without Host is a 400 in skr\'s shape (Node would answer it bare)', async t => {
  const { port } = await serve(t)
  const answer = await exchange({ port }, 'GET /status HTTP/1.1\r\n\r\n')
  t.equal(answer.answer?.status, 400)
  t.same(answer.answer?.json?.code, 'ERR_REQUEST_INVALID')
  t.equal(answer.answer?.json?.error, 'the Host header is required (HTTP/1.1)')
})

t.test('SKR_SERVER_NAMES adds names for a non-loopback listener', async t => {
  const config = testConfig({ SKR_HOST: '0.0.0.0', SKR_ALLOW_NON_LOOPBACK: '1', Port: '0', SKR_SERVER_NAMES: 'skr.example.internal' })
  t.same(config.listener.serverNames, ['skr.example.internal'])
  const app = buildApp({ config, attestation: new FakeAttestationService(), keyRelease: new FakeKeyReleaseService(), backpressure: NO_SHEDDING })
  t.teardown(() => app.close())
  const get = async (host: string): Promise<number> => (await app.inject({ method: 'GET', url: '/status', headers: { host } })).statusCode
  t.equal(await get('skr.example.internal:8080'), 200)
  t.equal(await get('10.1.2.3:8080'), 200)
  t.equal(await get('attacker.example:8080'), 403)
  t.throws(() => testConfig({ SKR_SERVER_NAMES: 'ok.example, bad_name' }), { code: 'ERR_CONFIG_INVALID', message: /SKR_SERVER_NAMES entry 2 is not a host name/ })
})

t.test('on the Unix socket any Host is accepted (no browser opens one), Origin is not', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'skr-guard-'))
  const path = join(dir, 'skr.sock')
  await serve(t, { SKR_UNIX_SOCKET: path })
  const docker = await exchange({ path }, 'GET /status HTTP/1.1\r\nHost: docker\r\n\r\n')
  t.equal(docker.answer?.status, 200, 'Host: docker (Docker-style clients)')
  const origin = await exchange({ path }, 'GET /status HTTP/1.1\r\nHost: localhost\r\nOrigin: https://a.example\r\n\r\n')
  t.equal(origin.answer?.status, 403)
})

t.test('an absolute-form target names the host too, and Host may be given once only', async t => {
  const { port, keyRelease } = await serve(t)
  const absolute = await exchange({ port }, 'GET http://attacker.example/status HTTP/1.1\r\nHost: localhost\r\n\r\n')
  t.equal(absolute.answer?.status, 403, 'the target\'s authority is checked (RFC 9112 §3.2.2: it wins over Host)')
  t.equal(absolute.answer?.json?.code, 'ERR_HOST_NOT_ALLOWED')
  const local = await exchange({ port }, `GET http://127.0.0.1:${port}/status HTTP/1.1\r\nHost: localhost\r\n\r\n`)
  t.not(local.answer?.status, 403, 'a loopback absolute-form target is not refused by the guard')
  const twice = await exchange({ port }, 'GET /status HTTP/1.1\r\nHost: localhost\r\nHost: attacker.example\r\n\r\n')
  t.equal(twice.answer?.status, 400, 'two Host headers')
  t.match(twice.answer?.json?.error, /more than once/)
  t.equal(keyRelease.calls.length, 0)
})
