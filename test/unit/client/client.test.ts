// skr-sidecar-client against a local HTTP double shaped like skr: real sockets on 127.0.0.1:0 (and a
// Unix socket), scripted answers per call, and a record of what the client sent.
import t, { type Test } from 'tap'
import http from 'node:http'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as net from 'node:net'
import type { AddressInfo } from 'node:net'
import { createSkrClient, isSkrClientError, jwkToKeyObject, SkrClientError, type SkrClient, type SkrClientOptions } from '../../../packages/client/src/index.ts'
import { backoffDelay, errorFromResponse, parseRetryAfter } from '../../../packages/client/src/transport.ts'

interface Answer { status: number; body?: unknown; raw?: string; headers?: Record<string, string>; hang?: boolean }
interface Seen { method: string; url: string; contentType: string | undefined; body: unknown }

async function double (t: Test, answers: Answer[], listenOn?: string): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = []
  const server = http.createServer((req, res) => {
    let text = ''
    req.on('data', (c: Buffer) => { text += c.toString() })
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', contentType: req.headers['content-type'], body: text === '' ? null : JSON.parse(text) })
      const answer = answers.length > 1 ? answers.shift() as Answer : answers[0] as Answer
      if (answer.hang === true) return
      res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers })
      res.end(answer.raw ?? JSON.stringify(answer.body ?? {}))
    })
  })
  await new Promise<void>(resolve => {
    if (listenOn !== undefined) server.listen(listenOn, resolve)
    else server.listen(0, '127.0.0.1', resolve)
  })
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise<void>(resolve => { server.close(() => { resolve() }) })
  })
  const { port } = listenOn === undefined ? server.address() as AddressInfo : { port: 0 }
  return { url: `http://127.0.0.1:${port}`, seen }
}

function client (t: Test, options: SkrClientOptions): SkrClient {
  const c = createSkrClient({ backoffMs: 1, ...options })
  t.teardown(async () => { await c.close() })
  return c
}

const release = { maaEndpoint: 'sharedeus.eus.attest.azure.net', akvEndpoint: 'myvault.vault.azure.net', kid: 'app-key' }

t.test('releaseKey turns oct, RSA and EC JWKs into KeyObjects of the right type', async t => {
  const secret = randomBytes(32)
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' })
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' })
  const { url, seen } = await double(t, [
    { status: 200, body: { key: JSON.stringify({ k: secret.toString('base64url'), key_ops: ['encrypt'], kty: 'oct' }) } },
    { status: 200, body: { key: JSON.stringify({ ...rsa, key_ops: ['sign'] }) } },
    { status: 200, body: { key: JSON.stringify(ec) } }
  ])
  const c = client(t, { baseUrl: url })

  const oct = await c.releaseKey({ ...release, accessToken: 'aad-token' })
  t.equal(oct.key.type, 'secret')
  t.same(oct.key.export(), secret, 'secret bytes preserved')
  t.same(oct.jwk.key_ops, ['encrypt'], 'the JWK is returned as sent')
  const r = await c.releaseKey(release)
  t.equal(r.key.type, 'private')
  t.equal(r.key.asymmetricKeyType, 'rsa')
  const e = await c.releaseKey(release)
  t.equal(e.key.asymmetricKeyType, 'ec')
  t.equal(e.key.asymmetricKeyDetails?.namedCurve, 'prime256v1')

  t.equal(seen[0]?.method, 'POST')
  t.equal(seen[0]?.url, '/key/release')
  t.match(seen[0]?.contentType, /^application\/json/)
  t.same(seen[0]?.body, { maa_endpoint: release.maaEndpoint, akv_endpoint: release.akvEndpoint, kid: 'app-key', access_token: 'aad-token' }, 'reference field names')
  t.notOk(Object.hasOwn(seen[1]?.body as object, 'access_token'), 'no access_token unless given')
})

t.test('a JWK object (not a string) is tolerated; -HSM kty suffixes are accepted', async t => {
  const secret = randomBytes(16)
  const { url } = await double(t, [{ status: 200, body: { key: { kty: 'oct-HSM', k: secret.toString('base64url') } } }])
  const { key } = await client(t, { baseUrl: url }).releaseKey(release)
  t.same(key.export(), secret)
})

t.test('403 keeps the sidecar code and request id, and is not retried', async t => {
  const { url, seen } = await double(t, [{ status: 403, body: { error: 'key release policy not met', code: 'ERR_KEY_RELEASE_DENIED', requestId: 'req-7' } }])
  const err = await client(t, { baseUrl: url }).releaseKey(release).catch((e: unknown) => e)
  t.ok(err instanceof SkrClientError)
  t.ok(isSkrClientError(err))
  t.match(err, { name: 'SkrClientError', code: 'ERR_KEY_RELEASE_DENIED', status: 403, requestId: 'req-7', message: /403 ERR_KEY_RELEASE_DENIED: key release policy not met/ })
  t.equal(seen.length, 1)
})

t.test('400 is not retried', async t => {
  const { url, seen } = await double(t, [{ status: 400, body: { error: 'body.kid is required', code: 'ERR_REQUEST_INVALID', requestId: 'r' } }])
  await t.rejects(client(t, { baseUrl: url, retries: 5 }).releaseKey(release), { code: 'ERR_REQUEST_INVALID', status: 400 })
  t.equal(seen.length, 1)
})

t.test('503 then 200 is retried (Retry-After honoured but bounded)', async t => {
  const jwk = { kty: 'oct', k: randomBytes(32).toString('base64url') }
  const { url, seen } = await double(t, [
    { status: 503, body: { error: 'too many requests in flight; retry later', code: 'ERR_OVERLOADED', requestId: 'a' }, headers: { 'retry-after': '3600' } },
    { status: 200, body: { key: JSON.stringify(jwk) } }
  ])
  // maxRetryDelayMs bounds the hour the server asked for; the test finishing proves it.
  const { key } = await client(t, { baseUrl: url, maxRetryDelayMs: 5 }).releaseKey(release)
  t.equal(key.type, 'secret')
  t.equal(seen.length, 2)
})

t.test('504 exhausts the retries and surfaces the last answer', async t => {
  const { url, seen } = await double(t, [{ status: 504, body: { error: 'request deadline exceeded', code: 'ERR_UPSTREAM_TIMEOUT', requestId: 'z' }, headers: { 'retry-after': '0' } }])
  await t.rejects(client(t, { baseUrl: url, retries: 2 }).attest({ maaEndpoint: 'm', runtimeData: 'x' }), { code: 'ERR_UPSTREAM_TIMEOUT', status: 504, requestId: 'z' })
  t.equal(seen.length, 3, 'one attempt plus two retries')
})

t.test('a reference-shaped error body ({"error"} only) gets ERR_HTTP_<status>', async t => {
  const { url } = await double(t, [{ status: 500, body: { error: 'failed to retrieve attestation report' } }])
  await t.rejects(client(t, { baseUrl: url }).rawReport('x'), { code: 'ERR_HTTP_500', status: 500, requestId: null, message: /failed to retrieve attestation report/ })
  t.match(errorFromResponse(502, '<html>bad gateway</html>'), { code: 'ERR_HTTP_502', message: 'skr answered 502 ERR_HTTP_502: HTTP 502' })
})

t.test('a timeout is reported and not retried', async t => {
  const { url, seen } = await double(t, [{ status: 200, hang: true }])
  await t.rejects(client(t, { baseUrl: url, timeoutMs: 50, retries: 3 }).status(), { code: 'ERR_CLIENT_TIMEOUT', status: null })
  t.equal(seen.length, 1)
})

t.test('network errors are retried, then reported', async t => {
  // A port that was just free: connection refused.
  const probe = http.createServer()
  await new Promise<void>(resolve => probe.listen(0, '127.0.0.1', resolve))
  const { port } = probe.address() as AddressInfo
  await new Promise<void>(resolve => probe.close(() => { resolve() }))
  let calls = 0
  const counting = (async (...args: Parameters<typeof fetch>) => { calls++; return await fetch(...args) }) as typeof fetch
  await t.rejects(client(t, { baseUrl: `http://127.0.0.1:${port}`, retries: 2, fetch: counting }).status(), { code: 'ERR_CLIENT_NETWORK', status: null, message: /unreachable.*ECONNREFUSED/ })
  t.equal(calls, 3)

  // One failure, then the real sidecar answers.
  const { url } = await double(t, [{ status: 200, body: { message: 'Status OK' } }])
  let first = true
  const flaky = (async (...args: Parameters<typeof fetch>) => {
    if (first) { first = false; throw new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) }) }
    return await fetch(...args)
  }) as typeof fetch
  t.same(await client(t, { baseUrl: url, fetch: flaky }).status(), { message: 'Status OK' })
})

t.test('attest, rawReport, combined and status speak the reference shapes', async t => {
  const report = randomBytes(1184)
  const { url, seen } = await double(t, [
    { status: 200, body: { token: 'eyJ.token.sig' } },
    { status: 200, body: { report: report.toString('hex') } },
    { status: 200, body: { endorsed_tcb: 'AA==', endorsements: 'Yg==', evidence: 'Yw==', uvm_endorsements: 'ZA==' } },
    { status: 200, body: { message: 'Status OK', attestation: { backend: 'simulated', simulated: true }, warning: 'SIMULATED' } }
  ])
  const c = client(t, { baseUrl: `${url}/` })
  t.equal(await c.attest({ maaEndpoint: 'sharedeus.eus.attest.azure.net', runtimeData: '{"keys":[]}' }), 'eyJ.token.sig')
  t.same(await c.rawReport(new Uint8Array([1, 2, 3])), report)
  t.same(await c.combined('x'), { endorsedTcb: 'AA==', endorsements: 'Yg==', evidence: 'Yw==', uvmEndorsements: 'ZA==' })
  t.same(await c.status(), { message: 'Status OK', attestation: { backend: 'simulated', simulated: true }, warning: 'SIMULATED' })
  t.same(seen.map(s => `${s.method} ${s.url}`), ['POST /attest/maa', 'POST /attest/raw', 'POST /attest/combined', 'GET /status'])
  t.same(seen[0]?.body, { maa_endpoint: 'sharedeus.eus.attest.azure.net', runtime_data: Buffer.from('{"keys":[]}').toString('base64') }, 'string runtime data is UTF-8, base64-encoded')
  t.same(seen[1]?.body, { runtime_data: 'AQID' })
  t.equal(seen[3]?.body, null, 'GET has no body')
})

t.test('invalid 2xx bodies never echo the body', async t => {
  const { url } = await double(t, [
    { status: 200, raw: 'not json SECRET' },
    { status: 200, body: { report: 'xyz' } },
    { status: 200, body: { key: JSON.stringify({ kty: 'RSA', n: 'AQAB', e: 'AQAB' }) } },
    { status: 200, body: { key: '{"kty":"oct","k":"c2VjcmV0IGtleQ"' } },
    { status: 200, body: { key: JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: 'AA', d: 'SECRETD' }) } }
  ])
  const c = client(t, { baseUrl: url })
  const e1 = await c.releaseKey(release).catch((e: unknown) => e) as Error
  t.match(e1, { code: 'ERR_CLIENT_RESPONSE_INVALID', status: 200 })
  t.notMatch(e1.message, /SECRET/)
  await t.rejects(c.rawReport('x'), { code: 'ERR_CLIENT_RESPONSE_INVALID' })
  await t.rejects(c.releaseKey(release), { code: 'ERR_CLIENT_KEY_INVALID', message: /without its private member/ })
  const e4 = await c.releaseKey(release).catch((e: unknown) => e) as Error
  t.match(e4, { code: 'ERR_CLIENT_KEY_INVALID', message: /not JSON/ })
  t.notMatch(e4.message, /c2VjcmV0/)
  const e5 = await c.releaseKey(release).catch((e: unknown) => e) as Error
  t.match(e5, { code: 'ERR_CLIENT_KEY_INVALID', message: /unsupported kty/ })
  t.notMatch(e5.message, /SECRETD/)
})

t.test('a Unix socket (skr --unix-socket) is reachable', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'skr-client-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const socketPath = join(dir, 'skr.sock')
  const { seen } = await double(t, [{ status: 200, body: { message: 'Status OK' } }], socketPath)
  const c = client(t, { socketPath })
  t.same(await c.status(), { message: 'Status OK' })
  t.equal(seen[0]?.url, '/status')
})

t.test('over a Unix socket, odd statuses become client errors, never an exception in the app', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'skr-client-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const socketPath = join(dir, 'odd.sock')
  // 205 may carry no body in a Response; 999 is no HTTP status a Response can hold.
  const raw = net.createServer((socket) => {
    socket.once('data', () => {
      const status = odd.shift() ?? 205
      socket.end(`HTTP/1.1 ${status} Odd\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}`)
    })
  })
  const odd = [205, 999]
  await new Promise<void>(resolve => { raw.listen(socketPath, resolve) })
  t.teardown(() => { raw.close() })
  const uncaught: unknown[] = []
  const onUncaught = (err: unknown): void => { uncaught.push(err) }
  process.on('uncaughtException', onUncaught)
  t.teardown(() => { process.removeListener('uncaughtException', onUncaught) })
  const c = client(t, { socketPath, retries: 0 })
  await t.rejects(c.status(), SkrClientError, '205 with a body')
  await t.rejects(c.status(), SkrClientError, 'status 999')
  t.same(uncaught, [], 'nothing escaped')
  t.throws(() => createSkrClient({ socketPath, fetch: globalThis.fetch }), TypeError, 'a custom fetch cannot dial the socket')
})

t.test('the caller can abort, also while waiting to retry', async t => {
  const { url } = await double(t, [{ status: 503, body: { code: 'ERR_OVERLOADED' }, headers: { 'retry-after': '60' } }])
  const controller = new AbortController()
  const pending = client(t, { baseUrl: url, maxRetryDelayMs: 60_000 }).status({ signal: controller.signal })
  setTimeout(() => { controller.abort() }, 20)
  await t.rejects(pending, { code: 'ERR_CLIENT_ABORTED' })
  const aborted = AbortSignal.abort()
  await t.rejects(client(t, { baseUrl: url }).releaseKey({ ...release, signal: aborted }), { code: 'ERR_CLIENT_ABORTED' })
})

t.test('argument mistakes are TypeErrors', async t => {
  t.throws(() => createSkrClient({ baseUrl: 'localhost:8080' }), TypeError)
  t.throws(() => createSkrClient({ baseUrl: 'ftp://x' }), TypeError)
  t.throws(() => createSkrClient({ retries: -1 }), TypeError)
  t.throws(() => createSkrClient({ timeoutMs: 0 }), TypeError)
  t.throws(() => createSkrClient({ socketPath: '' }), TypeError)
  const c = createSkrClient()
  await t.rejects(c.releaseKey({ ...release, kid: '' }), TypeError)
  await t.rejects(c.attest({ maaEndpoint: 'm', runtimeData: '' }), TypeError)
  await t.rejects(c.rawReport(42 as unknown as string), TypeError)
})

t.test('helpers: Retry-After, backoff, jwkToKeyObject', async t => {
  t.equal(parseRetryAfter(null), null)
  t.equal(parseRetryAfter('7'), 7000)
  t.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:10 GMT', Date.parse('Wed, 21 Oct 2015 07:28:00 GMT')), 10_000)
  t.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:10 GMT', Date.parse('Wed, 21 Oct 2015 08:00:00 GMT')), 0, 'past dates mean now')
  t.equal(parseRetryAfter('soon'), null)
  for (let n = 0; n < 8; n++) {
    const d = backoffDelay(n, 100, 1000)
    t.ok(d >= Math.min(1000, 100 * 2 ** n) / 2 && d <= Math.min(1000, 100 * 2 ** n), `attempt ${n} within [half, full]`)
  }
  t.throws(() => jwkToKeyObject({ kty: 'oct', k: 'not base64url!' }), { code: 'ERR_CLIENT_KEY_INVALID' })
  t.throws(() => jwkToKeyObject({ kty: 'RSA', n: 'AA', e: 'AQAB', d: 'AA' }), { code: 'ERR_CLIENT_KEY_INVALID', message: /could not be imported/ })
})
