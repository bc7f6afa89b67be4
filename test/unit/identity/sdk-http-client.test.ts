// The Azure SDK HttpClient over skr's Upstream, against real servers on 127.0.0.1:0: an HTTPS
// Entra double (the local PKI's CA handed to the client), a plain-http IMDS double, and a real
// CONNECT proxy. Also driven through the SDK's own pipeline (createPipelineFromOptions), to show
// that its retry policy sees statuses and network errors as it expects and that each SDK attempt
// is exactly one HTTP request (no double retry).
import t, { type Test } from 'tap'
import http from 'node:http'
import net from 'node:net'
import type { Duplex } from 'node:stream'
import { inspect } from 'node:util'
import { createHttpHeaders, createPipelineFromOptions, createPipelineRequest, isRestError, type PipelineRequest } from '@azure/core-rest-pipeline'
import { createLocalPki } from '../../../src/emulator/pki.ts'
import { parseProxyEnv } from '../../../src/http/proxy.ts'
import { createSdkHttpClient, identityServiceOf } from '../../../src/identity/sdk-http-client.ts'
import { startHttpServer, startHttpsServer } from '../../helpers/https-server.ts'

const pki = await createLocalPki()
const ASSERTION = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2lnbmF0dXJl'
const FORM = `client_id=c&client_assertion=${ASSERTION}&grant_type=client_credentials`

interface Seen { method: string, url: string, headers: http.IncomingHttpHeaders, body: string }

/** A server that records each request and answers with `answer` (never answers when it returns null). */
function recorder (seen: Seen[], answer: (req: Seen, res: http.ServerResponse) => void): http.RequestListener {
  return (req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => { body += c.toString() })
    req.on('end', () => {
      const s = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body }
      seen.push(s)
      answer(s, res)
    })
  }
}

function json (res: http.ServerResponse, status: number, value: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers })
  res.end(JSON.stringify(value))
}

function metricsLog (): { seen: Array<[string, string]>, metrics: { observeUpstream: (s: string, st: string) => void } } {
  const seen: Array<[string, string]> = []
  return { seen, metrics: { observeUpstream: (service, status) => { seen.push([service, status]) } } }
}

// IMDS requests are plain http, which the managed identity credential allows on each request.
function req (url: string, extra: Partial<Parameters<typeof createPipelineRequest>[0]> = {}): PipelineRequest {
  return createPipelineRequest({ url, allowInsecureConnection: url.startsWith('http:'), ...extra })
}

const DIRECT = parseProxyEnv({})

t.test('identityServiceOf: plain http and link-local are IMDS, anything else Entra', async (t) => {
  t.equal(identityServiceOf(new URL('http://169.254.169.254/metadata/identity/oauth2/token')), 'imds')
  t.equal(identityServiceOf(new URL('http://127.0.0.1:8080/metadata/identity/oauth2/token')), 'imds', 'AZURE_POD_IDENTITY_AUTHORITY_HOST redirect')
  t.equal(identityServiceOf(new URL('https://169.254.1.2/')), 'imds')
  t.equal(identityServiceOf(new URL('https://[fe80::1]/')), 'imds')
  t.equal(identityServiceOf(new URL('https://login.microsoftonline.com/t/oauth2/v2.0/token')), 'entra')
  t.equal(identityServiceOf(new URL('https://127.0.0.1:8443/t/oauth2/v2.0/token')), 'entra')
})

t.test('maps the request and the response; statuses pass through, each in one attempt', async (t) => {
  const seen: Seen[] = []
  const entra = await startHttpsServer(recorder(seen, (s, res) => {
    if (s.url.startsWith('/bad')) json(res, 400, { error: 'invalid_client', error_description: 'AADSTS700211' })
    else if (s.url.startsWith('/down')) json(res, 503, { error: 'temporarily_unavailable' }, { 'retry-after': '1' })
    else json(res, 200, { access_token: 'tok', expires_in: 3600 }, { 'x-ms-request-id': 'r1', 'set-cookie': ['a=1', 'b=2'] })
  }), { pki })
  t.teardown(entra.close)
  const { seen: observed, metrics } = metricsLog()
  const client = createSdkHttpClient({ attemptTimeoutMs: 5_000, ca: [entra.ca], proxy: DIRECT, metrics })

  const request = req(`${entra.url}/tenant/oauth2/v2.0/token?api-version=1`, {
    method: 'POST',
    body: FORM,
    headers: createHttpHeaders({ 'Content-Type': 'application/x-www-form-urlencoded', 'x-client-SKU': 'msal.js.node', 'Accept-Encoding': 'gzip,deflate' })
  })
  const res = await client.sendRequest(request)
  t.equal(res.request, request)
  t.equal(res.status, 200)
  t.same(JSON.parse(res.bodyAsText ?? ''), { access_token: 'tok', expires_in: 3600 })
  t.equal(res.headers.get('content-type'), 'application/json')
  t.equal(res.headers.get('X-MS-Request-Id'), 'r1', 'headers are case-insensitive')
  t.equal(res.headers.get('set-cookie'), 'a=1, b=2', 'repeated headers are joined')
  t.match(seen[0], {
    method: 'POST',
    url: '/tenant/oauth2/v2.0/token?api-version=1',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-client-sku': 'msal.js.node', 'accept-encoding': 'identity' },
    body: FORM
  })

  const bytes = await client.sendRequest(req(`${entra.url}/bytes`, { method: 'PUT', body: new TextEncoder().encode('abc') }))
  t.equal(bytes.status, 200)
  t.equal(seen[1]?.body, 'abc', 'byte bodies are sent as they are')

  const bad = await client.sendRequest(req(`${entra.url}/bad`, { method: 'POST', body: FORM }))
  t.equal(bad.status, 400, 'a 4xx is an answer for the SDK to parse')
  t.same(JSON.parse(bad.bodyAsText ?? ''), { error: 'invalid_client', error_description: 'AADSTS700211' })
  const before = seen.length
  const down = await client.sendRequest(req(`${entra.url}/down`))
  t.equal(down.status, 503, 'a 5xx is returned, not thrown: the SDK decides on retries')
  t.equal(down.headers.get('retry-after'), '1')
  t.equal(seen.length, before + 1, 'exactly one attempt')
  t.same(observed, [['entra', '200'], ['entra', '200'], ['entra', '400'], ['entra', '503']])

  const gz = await startHttpServer((_req, res) => { res.writeHead(200, { 'content-encoding': 'gzip' }); res.end('x') })
  t.teardown(gz.close)
  await t.rejects(client.sendRequest(req(gz.url)), { name: 'RestError', code: 'PARSE_ERROR', message: /content-encoding gzip, want identity/ }, 'an encoding it did not ask for')

  const streamed = await client.sendRequest(req(`${entra.url}/x`, { streamResponseStatusCodes: new Set([200]) }))
  let text = ''
  for await (const chunk of streamed.readableStreamBody ?? []) text += String(chunk)
  t.match(JSON.parse(text), { access_token: 'tok' }, 'a streamed body when the request asks for one')
})

t.test('unsupported methods and bodies are clear errors', async (t) => {
  const client = createSdkHttpClient({ attemptTimeoutMs: 1_000, proxy: DIRECT })
  await t.rejects(client.sendRequest(req('https://127.0.0.1:1/', { method: 'DELETE' })), { name: 'RestError', message: /method DELETE is not supported/ })
  await t.rejects(client.sendRequest(req('https://127.0.0.1:1/', { method: 'POST', body: new Blob(['x']) })), { name: 'RestError', message: /only string and byte bodies/ })
  await t.rejects(client.sendRequest(req('https://127.0.0.1:1/', { method: 'POST', formData: { a: 'b' } })), { name: 'RestError', message: /form and multipart/ })
  await t.rejects(client.sendRequest(req('http://127.0.0.1:1/', { allowInsecureConnection: false })), { name: 'RestError', message: /http: to 127\.0\.0\.1:1 while allowInsecureConnection is false/ })
  t.throws(() => createSdkHttpClient({ attemptTimeoutMs: 0 }), TypeError)
})

t.test('a network error is a RestError with the errno as code and the request, and no secret', async (t) => {
  const closed = await startHttpServer(() => {})
  const url = `${closed.url}/metadata/identity/oauth2/token`
  await closed.close()
  const { seen, metrics } = metricsLog()
  const client = createSdkHttpClient({ attemptTimeoutMs: 1_000, proxy: DIRECT, metrics })
  const request = req(url, { method: 'POST', body: FORM, headers: createHttpHeaders({ Authorization: `Bearer ${ASSERTION}` }) })
  const err = await client.sendRequest(request).then(() => null, (e: unknown) => e as Error & { code?: string, request?: unknown })
  t.ok(isRestError(err), 'a RestError, which the retry policy inspects')
  t.equal(err?.code, 'ECONNREFUSED', 'the code the SDK\'s retry strategy retries')
  t.equal(err?.request, request)
  t.match(err?.message, /^imds 127\.0\.0\.1:\d+: connection refused \(ECONNREFUSED\) after 1 attempt$/)
  for (const text of [err?.message, JSON.stringify(err), inspect(err), String(err?.stack)]) {
    t.notMatch(text, /eyJ|client_assertion/, 'no token, assertion or body in the error')
  }
  t.same(seen, [['imds', 'error']])
})

t.test('abort, the per-attempt timeout and a request\'s own timeout', async (t) => {
  const held = new Set<http.ServerResponse>()
  const hang = await startHttpServer((_req, res) => { held.add(res) })
  t.teardown(async () => { for (const r of held) r.destroy(); await hang.close() })
  const { seen, metrics } = metricsLog()

  const client = createSdkHttpClient({ attemptTimeoutMs: 5_000, proxy: DIRECT, metrics })
  const already = new AbortController()
  already.abort()
  await t.rejects(client.sendRequest(req(hang.url, { abortSignal: already.signal })), { name: 'AbortError' }, 'already aborted')
  const caller = new AbortController()
  const pending = client.sendRequest(req(hang.url, { abortSignal: caller.signal }))
  setTimeout(() => { caller.abort() }, 50)
  await t.rejects(pending, { name: 'AbortError' }, 'aborted while waiting')

  const started = performance.now()
  await t.rejects(client.sendRequest(req(hang.url, { timeout: 100 })), { name: 'RestError', code: 'ETIMEDOUT', message: /100 ms timeout/ }, 'the request\'s shorter timeout')
  t.ok(performance.now() - started < 2_000)

  const quick = createSdkHttpClient({ attemptTimeoutMs: 150, proxy: DIRECT, metrics })
  await t.rejects(quick.sendRequest(req(hang.url, { timeout: 0 })), { name: 'RestError', code: 'ETIMEDOUT' }, 'the per-attempt timeout')
  t.same(seen, [['imds', 'timeout'], ['imds', 'timeout']], 'timeouts are the upstream\'s; the caller\'s aborts are not counted')
})

t.test('through the SDK pipeline: its retry policy retries 503 and ECONNREFUSED, one request per attempt', async (t) => {
  let hits = 0
  const busy = await startHttpServer((_req, res) => { hits++; json(res, 503, { error: 'busy' }) })
  t.teardown(busy.close)
  const client = createSdkHttpClient({ attemptTimeoutMs: 1_000, proxy: DIRECT })
  const pipeline = createPipelineFromOptions({ retryOptions: { maxRetries: 2, retryDelayInMs: 1, maxRetryDelayInMs: 5 } })
  const res = await pipeline.sendRequest(client, req(busy.url))
  t.equal(res.status, 503, 'the last answer, after the SDK\'s retries')
  t.equal(hits, 3, 'maxRetries + 1 requests: no retries of our own')

  const closed = await startHttpServer(() => {})
  const url = closed.url
  await closed.close()
  const { seen, metrics } = metricsLog()
  const counting = createSdkHttpClient({ attemptTimeoutMs: 1_000, proxy: DIRECT, metrics })
  await t.rejects(pipeline.sendRequest(counting, req(url)), { name: 'RestError', code: 'ECONNREFUSED' })
  t.equal(seen.length, 3, 'a refused connection is retried by the SDK, once per attempt')
})

interface Proxy { url: string, tunnels: string[], forwards: string[] }

/** A CONNECT proxy on 127.0.0.1:0 that tunnels every target to the loopback port it names. */
async function startProxy (t: Test): Promise<Proxy> {
  const proxy: Proxy = { url: '', tunnels: [], forwards: [] }
  const sockets = new Set<Duplex>()
  const server = http.createServer((req, res) => { proxy.forwards.push(req.url ?? ''); res.writeHead(502); res.end() })
  server.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    sockets.add(socket)
    socket.on('error', () => {})
    proxy.tunnels.push(req.url ?? '')
    const upstream = net.connect(Number((req.url ?? '').split(':').pop()), '127.0.0.1', () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      upstream.write(head)
      upstream.pipe(socket)
      socket.pipe(upstream)
    })
    upstream.on('error', () => { socket.destroy() })
    sockets.add(upstream)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  proxy.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
  t.teardown(async () => {
    for (const s of sockets) s.destroy()
    await new Promise<void>((resolve) => { server.close(() => { resolve() }); server.closeAllConnections() })
  })
  return proxy
}

t.test('egress proxy: Entra goes through the CONNECT proxy, IMDS goes direct with HTTPS_PROXY set', async (t) => {
  const proxy = await startProxy(t)
  const entra = await startHttpsServer((_req, res) => { json(res, 200, { access_token: 'via-proxy' }) }, { pki, hosts: ['login.test'] })
  t.teardown(entra.close)
  const imds = await startHttpServer((_req, res) => { json(res, 200, { access_token: 'direct' }) })
  t.teardown(imds.close)
  const { seen, metrics } = metricsLog()
  const client = createSdkHttpClient({
    attemptTimeoutMs: 5_000,
    ca: [entra.ca],
    proxy: parseProxyEnv({ HTTPS_PROXY: proxy.url, HTTP_PROXY: proxy.url }),
    metrics
  })

  // login.test resolves nowhere: only the proxy can reach it.
  const viaProxy = await client.sendRequest(req(`https://login.test:${entra.port}/tenant/oauth2/v2.0/token`, { method: 'POST', body: FORM }))
  t.equal(viaProxy.status, 200)
  t.match(viaProxy.bodyAsText, /via-proxy/)
  t.same(proxy.tunnels, [`login.test:${entra.port}`], 'one CONNECT tunnel to Entra')

  const direct = await client.sendRequest(req(`${imds.url}/metadata/identity/oauth2/token?api-version=2018-02-01`, { headers: createHttpHeaders({ Metadata: 'true' }) }))
  t.equal(direct.status, 200)
  t.match(direct.bodyAsText, /direct/)
  t.same(proxy.tunnels, [`login.test:${entra.port}`], 'no tunnel for IMDS')
  t.same(proxy.forwards, [], 'no forwarded request for IMDS')
  t.same(seen, [['entra', '200'], ['imds', '200']])
})
