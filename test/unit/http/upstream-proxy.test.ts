// Upstream through a real egress proxy: a node:http server on 127.0.0.1:0 that answers CONNECT
// (tunnelling every target to the loopback port it names) and absolute-form requests (forwarding
// plain http), counts both, and can demand Proxy-Authorization, refuse, or never answer. Origins
// are addressed by made-up names (vault.test) because loopback addresses never use a proxy; a
// direct call resolves those names to 127.0.0.1 through the injected `lookup`.
import t, { type Test } from 'tap'
import http from 'node:http'
import https from 'node:https'
import net, { type LookupFunction } from 'node:net'
import type { Duplex } from 'node:stream'
import { inspect } from 'node:util'
import pino from 'pino'
import { createLocalPki } from '../../../src/emulator/pki.ts'
import { parseProxyEnv } from '../../../src/http/proxy.ts'
import { Upstream, type UpstreamOptions } from '../../../src/http/upstream.ts'
import { startHttpServer, startHttpsServer } from '../../helpers/https-server.ts'

const pki = await createLocalPki()

const USER = 'skr-proxy-user'
const PASSWORD = 's3cr3t pw@x'
const USERINFO = `${encodeURIComponent(USER)}:${encodeURIComponent(PASSWORD)}`
const BASIC = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`
// Anything that would reveal the credentials, in any encoding a message or detail might use.
const SECRETS = [USER, PASSWORD, encodeURIComponent(PASSWORD), USERINFO, BASIC, BASIC.slice(6)]

// Every made-up name is 127.0.0.1 (only direct connections and the proxy's own name are resolved here).
const toLoopback: LookupFunction = (_host, options, callback) => {
  if (options.all === true) callback(null, [{ address: '127.0.0.1', family: 4 }])
  else callback(null, '127.0.0.1', 4)
}

interface ProxyScript {
  /** The exact Proxy-Authorization value required; anything else gets 407. */
  auth?: string
  /** Answer every CONNECT and forwarded request with this status instead of serving it. */
  status?: number
  /** Accept the TCP connection, then never answer the CONNECT. */
  hang?: boolean
  /** Answer the CONNECT with 200, then never carry a byte (the origin's TLS handshake stalls). */
  stall?: boolean
  /** Close the connection on a CONNECT without answering it. */
  close?: boolean
  /** Called when a CONNECT arrives, before it is answered. */
  onTunnel?: () => void
  /** Serve the proxy itself over TLS (an https:// proxy URL). */
  tls?: { cert: string, key: string }
  /** The address to listen on (default 127.0.0.1). */
  address?: string
}

interface TestProxy {
  port: number
  /** CONNECT targets, in order. */
  tunnels: string[]
  /** Absolute-form request targets, in order. */
  forwards: string[]
  /** The Proxy-Authorization header of every CONNECT or forwarded request. */
  auths: Array<string | undefined>
  /** Drops every connection it holds (a hung CONNECT then fails at once). */
  drop: () => void
}

async function startProxy (t: Test, script: ProxyScript = {}): Promise<TestProxy> {
  const sockets = new Set<Duplex>()
  const proxy: TestProxy = { port: 0, tunnels: [], forwards: [], auths: [], drop: () => { for (const s of sockets) s.destroy() } }
  const track = (s: Duplex): void => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.on('error', () => {})
  }
  const refusal = (auth: string | undefined): number | null =>
    script.auth !== undefined && auth !== script.auth ? 407 : script.status ?? null

  const forward: http.RequestListener = (req, res) => {
    proxy.forwards.push(req.url ?? '')
    proxy.auths.push(req.headers['proxy-authorization'])
    const status = refusal(req.headers['proxy-authorization'])
    if (status !== null) {
      res.writeHead(status, status === 407 ? { 'proxy-authenticate': 'Basic realm="test"' } : {})
      res.end()
      return
    }
    const target = new URL(req.url ?? '')
    const headers = { ...req.headers }
    delete headers['proxy-authorization']
    const out = http.request({ host: '127.0.0.1', port: target.port, path: `${target.pathname}${target.search}`, method: req.method, headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers)
      up.pipe(res)
    })
    out.on('error', () => { res.destroy() })
    req.pipe(out)
  }
  const server = script.tls === undefined ? http.createServer(forward) : https.createServer(script.tls, forward)
  server.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    track(socket)
    proxy.tunnels.push(req.url ?? '')
    proxy.auths.push(req.headers['proxy-authorization'])
    script.onTunnel?.()
    if (script.hang === true) return
    if (script.close === true) {
      socket.destroy()
      return
    }
    if (script.stall === true) {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      return
    }
    const status = refusal(req.headers['proxy-authorization'])
    if (status !== null) {
      const extra = status === 407 ? 'Proxy-Authenticate: Basic realm="test"\r\n' : ''
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\n${extra}Content-Length: 0\r\n\r\n`)
      return
    }
    const port = Number((req.url ?? '').split(':').pop())
    const upstream = net.connect(port, '127.0.0.1', () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      upstream.write(head)
      upstream.pipe(socket)
      socket.pipe(upstream)
    })
    track(upstream)
    upstream.on('error', () => { socket.destroy() })
  })
  await new Promise<void>((resolve) => { server.listen(0, script.address ?? '127.0.0.1', resolve) })
  proxy.port = (server.address() as net.AddressInfo).port
  t.teardown(async () => {
    // Tunnelled sockets have left the http server: closeAllConnections does not see them.
    proxy.drop()
    server.closeAllConnections()
    await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  })
  return proxy
}

// The origin (vault.test and plain.test are served on 127.0.0.1): echoes the method, path and Host it saw.
async function startOrigin (t: Test): Promise<{ port: number, ca: string }> {
  const s = await startHttpsServer((req, res) => {
    res.setHeader('content-type', 'text/plain')
    res.end(`${req.method ?? ''} ${req.url ?? ''} host=${req.headers.host ?? ''} proxy-auth=${req.headers['proxy-authorization'] ?? 'none'}`)
  }, { pki, hosts: ['vault.test', 'localhost', '127.0.0.1'] })
  t.teardown(s.close)
  return { port: s.port, ca: s.ca }
}

function upstream (t: Test, env: Record<string, string>, extra: Partial<UpstreamOptions> = {}): Upstream {
  const up = new Upstream({ name: 'akv', proxy: parseProxyEnv(env), lookup: toLoopback, random: () => 0, sleep: async () => {}, ...extra })
  t.teardown(() => up.close())
  return up
}

// Everything an error can be printed or logged as: message, details, cause chain, pino's serializer.
function printed (err: unknown): string {
  const e = err as Error & { details?: unknown }
  return [e.message, JSON.stringify(e.details), String(e.cause), inspect(err, { depth: null }),
    JSON.stringify(pino.stdSerializers.err(e))].join('\n')
}

function assertNoSecrets (t: Test, text: string): void {
  for (const secret of SECRETS) t.notOk(text.includes(secret), `printed text does not contain ${JSON.stringify(secret.slice(0, 4))}…`)
}

// Before the first subtest: see test/unit/maa/client.test.ts.
const hasIpv6Loopback = await new Promise<boolean>((resolve) => {
  const probe = net.createServer().once('error', () => { resolve(false) }).listen(0, '::1', () => { probe.close(() => { resolve(true) }) })
})

t.test('https goes through the proxy: one CONNECT, tunnel reused, origin TLS verified against the extra CA', async (t) => {
  const origin = await startOrigin(t)
  const proxy = await startProxy(t)
  const up = upstream(t, { HTTPS_PROXY: `http://127.0.0.1:${proxy.port}` }, { ca: origin.ca })
  const headers = { 'x-test': '1' }
  const res = await up.request({ method: 'GET', url: `https://vault.test:${origin.port}/keys/k?api-version=7.4`, headers })
  t.equal(res.status, 200)
  t.equal(res.body.toString(), `GET /keys/k?api-version=7.4 host=vault.test:${origin.port} proxy-auth=none`)
  t.same(proxy.tunnels, [`vault.test:${origin.port}`])
  t.same(headers, { 'x-test': '1' }, "the caller's headers object is not modified")
  const again = await up.request({ method: 'POST', url: `https://vault.test:${origin.port}/release`, body: '{}' })
  t.equal(again.status, 200)
  t.equal(proxy.tunnels.length, 1, 'keep-alive: the second request reuses the tunnel')
})

t.test('credentials in the proxy URL are sent as Proxy-Authorization, to the proxy only', async (t) => {
  const origin = await startOrigin(t)
  const proxy = await startProxy(t, { auth: BASIC })
  const up = upstream(t, { HTTPS_PROXY: `http://${USERINFO}@proxy.test:${proxy.port}` }, { ca: origin.ca })
  const res = await up.request({ method: 'GET', url: `https://vault.test:${origin.port}/` })
  t.equal(res.status, 200)
  t.match(res.body.toString(), /proxy-auth=none$/, 'the origin never sees the proxy credentials')
  t.same(proxy.auths, [BASIC])
})

t.test('407: typed, not retried, names the proxy, never the credentials', async (t) => {
  const origin = await startOrigin(t)
  const proxy = await startProxy(t, { auth: 'Basic something-else' })
  const up = upstream(t, { HTTPS_PROXY: `http://${USERINFO}@proxy.test:${proxy.port}` }, { ca: origin.ca })
  const err = await up.request({ method: 'GET', url: `https://vault.test:${origin.port}/` }).catch((e: unknown) => e)
  t.match(err, {
    code: 'ERR_UPSTREAM_UNAVAILABLE',
    statusCode: 503,
    details: { upstream: 'akv', errorCode: 'PROXY_REFUSED', proxyStatus: 407, attempts: 1 }
  })
  t.equal((err as Error).message,
    `akv vault.test:${origin.port}: proxy http://proxy.test:${proxy.port} refused the tunnel with HTTP 407 ` +
    '(proxy authentication required: credentials missing or wrong in the proxy URL) after 1 attempt')
  t.equal(proxy.tunnels.length, 1, 'not retried')
  assertNoSecrets(t, printed(err))
})

t.test('403 is not retried; a 503 from the proxy is', async (t) => {
  const origin = await startOrigin(t)
  const denied = await startProxy(t, { status: 403 })
  const err = await upstream(t, { HTTPS_PROXY: `http://127.0.0.1:${denied.port}` }, { ca: origin.ca })
    .request({ method: 'GET', url: `https://vault.test:${origin.port}/` }).catch((e: unknown) => e)
  t.match(err, { code: 'ERR_UPSTREAM_UNAVAILABLE', details: { errorCode: 'PROXY_REFUSED', proxyStatus: 403, attempts: 1 } })
  t.match((err as Error).message, /refused the tunnel with HTTP 403 \(the proxy's policy denies this host\)/)
  t.equal(denied.tunnels.length, 1)

  const busy = await startProxy(t, { status: 503 })
  const sleeps: number[] = []
  const err2 = await upstream(t, { HTTPS_PROXY: `http://127.0.0.1:${busy.port}` }, { ca: origin.ca, policy: { maxRetries: 2 }, sleep: async (ms) => { sleeps.push(ms) } })
    .request({ method: 'GET', url: `https://vault.test:${origin.port}/` }).catch((e: unknown) => e)
  t.match(err2, { code: 'ERR_UPSTREAM_UNAVAILABLE', details: { errorCode: 'PROXY_REFUSED', proxyStatus: 503, attempts: 3 } })
  t.equal(busy.tunnels.length, 3)
  t.equal(sleeps.length, 2)
})

t.test('NO_PROXY, loopback and localhost go direct', async (t) => {
  const origin = await startOrigin(t)
  const proxy = await startProxy(t)
  const env = { HTTPS_PROXY: `http://127.0.0.1:${proxy.port}`, HTTP_PROXY: `http://127.0.0.1:${proxy.port}`, NO_PROXY: 'example.com,.test' }
  const up = upstream(t, env, { ca: origin.ca })
  for (const host of ['vault.test', '127.0.0.1', 'localhost']) {
    const res = await up.request({ method: 'GET', url: `https://${host}:${origin.port}/` })
    t.equal(res.status, 200, host)
  }
  const plain = await startHttpServer((_req, res) => { res.end('imds-like') })
  t.teardown(plain.close)
  t.equal((await up.request({ method: 'GET', url: plain.url })).body.toString(), 'imds-like', 'plain http to loopback')
  t.same(proxy.tunnels, [])
  t.same(proxy.forwards, [])
})

t.test('plain http through HTTP_PROXY is forwarded in absolute form (as Go does), with credentials', async (t) => {
  const plain = await startHttpServer((req, res) => { res.end(`${req.url ?? ''} host=${req.headers.host ?? ''} proxy-auth=${req.headers['proxy-authorization'] ?? 'none'}`) })
  t.teardown(plain.close)
  const proxy = await startProxy(t, { auth: BASIC })
  const up = upstream(t, { HTTP_PROXY: `http://${USERINFO}@127.0.0.1:${proxy.port}` })
  const res = await up.request({ method: 'GET', url: `http://plain.test:${plain.port}/metadata?x=1` })
  t.equal(res.body.toString(), `/metadata?x=1 host=plain.test:${plain.port} proxy-auth=none`)
  t.same(proxy.forwards, [`http://plain.test:${plain.port}/metadata?x=1`])
  t.same(proxy.tunnels, [])

  const refusing = await startProxy(t, { auth: 'Basic other' })
  const err = await upstream(t, { HTTP_PROXY: `http://${USERINFO}@127.0.0.1:${refusing.port}` })
    .request({ method: 'GET', url: `http://plain.test:${plain.port}/` }).catch((e: unknown) => e)
  t.match(err, { code: 'ERR_UPSTREAM_UNAVAILABLE', details: { errorCode: 'PROXY_REFUSED', proxyStatus: 407, attempts: 1 } })
  assertNoSecrets(t, printed(err))
})

t.test('an unreachable proxy fails promptly with a typed error naming it', async (t) => {
  const origin = await startOrigin(t)
  const gone = await startHttpServer(() => {})
  await gone.close()
  const started = performance.now()
  const err = await upstream(t, { HTTPS_PROXY: `http://${USERINFO}@proxy.test:${gone.port}` }, { ca: origin.ca, policy: { maxRetries: 1 } })
    .request({ method: 'GET', url: `https://vault.test:${origin.port}/` }).catch((e: unknown) => e)
  t.ok(performance.now() - started < 3000, 'well within the deadline')
  t.match(err, { code: 'ERR_UPSTREAM_UNAVAILABLE', details: { upstream: 'akv', errorCode: 'ECONNREFUSED', attempts: 2 } })
  t.equal((err as Error).message,
    `akv vault.test:${origin.port} via proxy http://proxy.test:${gone.port}: connection refused (ECONNREFUSED) after 2 attempts`)
  assertNoSecrets(t, printed(err))
})

t.test('a proxy that never answers CONNECT times out within the connect timeout', async (t) => {
  const origin = await startOrigin(t)
  const proxy = await startProxy(t, { hang: true })
  const started = performance.now()
  const err = await upstream(t, { HTTPS_PROXY: `http://127.0.0.1:${proxy.port}` }, { ca: origin.ca, policy: { connectTimeoutMs: 200, maxRetries: 0 } })
    .request({ method: 'GET', url: `https://vault.test:${origin.port}/` }).catch((e: unknown) => e)
  t.ok(performance.now() - started < 3000, 'bounded by the connect timeout, not the 30 s deadline')
  t.match(err, { code: 'ERR_UPSTREAM_TIMEOUT', details: { errorCode: 'UND_ERR_HEADERS_TIMEOUT', attempts: 1 } })
  t.match((err as Error).message, new RegExp(`via proxy http://127\\.0\\.0\\.1:${proxy.port}: `))
  t.equal(proxy.tunnels.length, 1)
})

t.test('a proxy that closes the connection on CONNECT: a reset, retried within the budget, no reconnect loop', async (t) => {
  const origin = await startOrigin(t)
  const proxy = await startProxy(t, { close: true })
  const started = performance.now()
  const err = await upstream(t, { HTTPS_PROXY: `http://${USERINFO}@127.0.0.1:${proxy.port}` }, { ca: origin.ca, policy: { maxRetries: 2, totalTimeoutMs: 5_000 } })
    .request({ method: 'GET', url: `https://vault.test:${origin.port}/` }).catch((e: unknown) => e)
  t.ok(performance.now() - started < 2_500, 'at once, not at the deadline')
  t.match(err, { code: 'ERR_UPSTREAM_UNAVAILABLE', details: { errorCode: 'ECONNRESET', attempts: 3 } })
  t.equal((err as Error).message, `akv vault.test:${origin.port} via proxy http://127.0.0.1:${proxy.port}: connection reset (ECONNRESET) after 3 attempts`)
  assertNoSecrets(t, printed(err))
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(proxy.tunnels.length, 3, 'one CONNECT per attempt, none after the call')
})

t.test('the whole-call deadline and the caller\'s abort do not wait for a CONNECT that is never answered', async (t) => {
  const origin = await startOrigin(t)
  const proxy = await startProxy(t, { hang: true })
  // The connect timeout (which bounds the CONNECT answer) is far beyond what either wait may take.
  // undici itself still waits for it: drop the proxy's connections so that close() need not.
  const policy = { connectTimeoutMs: 20_000, totalTimeoutMs: 300, maxRetries: 0 }
  let started = performance.now()
  const err = await upstream(t, { HTTPS_PROXY: `http://127.0.0.1:${proxy.port}` }, { ca: origin.ca, policy })
    .request({ method: 'GET', url: `https://vault.test:${origin.port}/` }).catch((e: unknown) => e)
  t.ok(performance.now() - started < 10_000, 'the 300 ms deadline, not the 20 s connect timeout')
  t.match(err, { code: 'ERR_UPSTREAM_TIMEOUT', details: { errorCode: 'TOTAL_DEADLINE', attempts: 1 } })
  proxy.drop()

  const caller = new AbortController()
  const reason = new Error('the caller went away')
  const waiting = await startProxy(t, { hang: true, onTunnel: () => { caller.abort(reason) } })
  started = performance.now()
  const err2 = await upstream(t, { HTTPS_PROXY: `http://127.0.0.1:${waiting.port}` }, { ca: origin.ca, policy: { ...policy, totalTimeoutMs: 30_000 } })
    .request({ method: 'GET', url: `https://vault.test:${origin.port}/`, signal: caller.signal }).catch((e: unknown) => e)
  t.ok(performance.now() - started < 10_000, 'the caller\'s abort, not the 20 s connect timeout')
  t.equal(err2, reason, 'the caller\'s own reason, unchanged')
  waiting.drop()
})

t.test('a tunnel that carries nothing times out within the connect timeout (the origin\'s TLS handshake)', async (t) => {
  const origin = await startOrigin(t)
  const proxy = await startProxy(t, { stall: true })
  const err = await upstream(t, { HTTPS_PROXY: `http://127.0.0.1:${proxy.port}` }, { ca: origin.ca, policy: { connectTimeoutMs: 200, maxRetries: 0 } })
    .request({ method: 'GET', url: `https://vault.test:${origin.port}/` }).catch((e: unknown) => e)
  t.match(err, { code: 'ERR_UPSTREAM_TIMEOUT', details: { errorCode: 'UND_ERR_CONNECT_TIMEOUT', attempts: 1 } })
  t.equal(proxy.tunnels.length, 1)
})

t.test('through the tunnel the origin\'s certificate is still verified: its roots and its name', async (t) => {
  const origin = await startOrigin(t)
  const proxy = await startProxy(t)
  const env = { HTTPS_PROXY: `http://127.0.0.1:${proxy.port}` }
  const untrusted = await upstream(t, env, { policy: { maxRetries: 2 } })
    .request({ method: 'GET', url: `https://vault.test:${origin.port}/` }).catch((e: unknown) => e)
  t.match(untrusted, { code: 'ERR_UPSTREAM_UNAVAILABLE', details: { errorCode: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', attempts: 1 } }, 'without the extra CA: rejected, not retried')
  const other = await createLocalPki()
  const wrongRoot = await upstream(t, env, { ca: other.caCertPem })
    .request({ method: 'GET', url: `https://vault.test:${origin.port}/` }).catch((e: unknown) => e)
  t.match(wrongRoot, { code: 'ERR_UPSTREAM_UNAVAILABLE', details: { errorCode: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' } }, 'an unrelated extra CA does not help')
  const wrongName = await upstream(t, env, { ca: origin.ca, policy: { maxRetries: 2 } })
    .request({ method: 'GET', url: `https://elsewhere.test:${origin.port}/` }).catch((e: unknown) => e)
  t.match(wrongName, { code: 'ERR_UPSTREAM_UNAVAILABLE', details: { errorCode: 'ERR_TLS_CERT_ALTNAME_INVALID', attempts: 1 } }, 'the name in the URL is checked')
  t.same(proxy.tunnels, [`vault.test:${origin.port}`, `vault.test:${origin.port}`, `elsewhere.test:${origin.port}`])
})

t.test('an https:// proxy\'s own certificate is verified: its roots and its name', async (t) => {
  const origin = await startOrigin(t)
  const other = await createLocalPki()
  const untrusted = await startProxy(t, { tls: await other.issue(['proxy.test']).then(({ certPem, keyPem }) => ({ cert: certPem, key: keyPem })) })
  const err = await upstream(t, { HTTPS_PROXY: `https://${USERINFO}@proxy.test:${untrusted.port}` }, { ca: origin.ca, policy: { maxRetries: 2 } })
    .request({ method: 'GET', url: `https://vault.test:${origin.port}/` }).catch((e: unknown) => e)
  t.match(err, { code: 'ERR_UPSTREAM_UNAVAILABLE', details: { errorCode: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', attempts: 1 } })
  t.same(untrusted.tunnels, [], 'no CONNECT (and no credentials) sent to an unverified proxy')
  assertNoSecrets(t, printed(err))

  const misnamed = await startProxy(t, { tls: await pki.issue(['elsewhere.test']).then(({ certPem, keyPem }) => ({ cert: certPem, key: keyPem })) })
  const err2 = await upstream(t, { HTTPS_PROXY: `https://${USERINFO}@proxy.test:${misnamed.port}` }, { ca: origin.ca, policy: { maxRetries: 2 } })
    .request({ method: 'GET', url: `https://vault.test:${origin.port}/` }).catch((e: unknown) => e)
  t.match(err2, { code: 'ERR_UPSTREAM_UNAVAILABLE', details: { errorCode: 'UND_ERR_PRX_TLS', attempts: 1 } })
  t.equal((err2 as Error).message,
    `akv vault.test:${origin.port} via proxy https://proxy.test:${misnamed.port}: TLS certificate of the proxy does not match its name (UND_ERR_PRX_TLS) after 1 attempt`)
  t.same(misnamed.tunnels, [])
  assertNoSecrets(t, printed(err2))
})

t.test('an https:// proxy: TLS to the proxy (trusting the extra CA), then the tunnel', async (t) => {
  const origin = await startOrigin(t)
  const { certPem, keyPem } = await pki.issue(['proxy.test'])
  const proxy = await startProxy(t, { tls: { cert: certPem, key: keyPem }, auth: BASIC })
  const up = upstream(t, { HTTPS_PROXY: `https://${USERINFO}@proxy.test:${proxy.port}` }, { ca: origin.ca })
  const res = await up.request({ method: 'GET', url: `https://vault.test:${origin.port}/tls` })
  t.equal(res.status, 200)
  t.same(proxy.tunnels, [`vault.test:${origin.port}`])
  t.same(proxy.auths, [BASIC])
})


t.test('an https:// proxy at an IPv6 address: its certificate is checked against that address', { skip: hasIpv6Loopback ? false : 'no IPv6 loopback on this machine' }, async (t) => {
  const origin = await startOrigin(t)
  const { certPem, keyPem } = await pki.issue(['::1'])
  const proxy = await startProxy(t, { tls: { cert: certPem, key: keyPem }, address: '::1' })
  const up = upstream(t, { HTTPS_PROXY: `https://[::1]:${proxy.port}` }, { ca: origin.ca })
  t.equal((await up.request({ method: 'GET', url: `https://vault.test:${origin.port}/` })).status, 200)
  t.same(proxy.tunnels, [`vault.test:${origin.port}`])
})

t.test('an unusable proxy variable fails the calls it would carry, naming the variable, not the value', async (t) => {
  const up = upstream(t, { HTTPS_PROXY: `socks5://${USERINFO}@proxy.test:1080`, NO_PROXY: 'direct.test' })
  const err = await up.request({ method: 'GET', url: 'https://vault.test/' }).catch((e: unknown) => e)
  t.match(err, { code: 'ERR_UPSTREAM_UNAVAILABLE', details: { upstream: 'akv', errorCode: 'PROXY_UNUSABLE', proxyVariable: 'HTTPS_PROXY' } })
  t.equal((err as Error).message,
    'akv vault.test: HTTPS_PROXY is set but unusable (scheme socks5 is not supported; want http or https); fix it, unset it, or list the host in NO_PROXY')
  assertNoSecrets(t, printed(err))
})

t.test('close() closes the proxied connections too; later calls are refused', async (t) => {
  const origin = await startOrigin(t)
  const proxy = await startProxy(t)
  const up = upstream(t, { HTTPS_PROXY: `http://127.0.0.1:${proxy.port}` }, { ca: origin.ca })
  t.equal((await up.request({ method: 'GET', url: `https://vault.test:${origin.port}/` })).status, 200)
  await up.close()
  await t.rejects(up.request({ method: 'GET', url: `https://vault.test:${origin.port}/`, retry: false }), { code: 'ERR_UPSTREAM_UNAVAILABLE' })
  await t.rejects(up.request({ method: 'GET', url: `https://127.0.0.1:${origin.port}/`, retry: false }), { code: 'ERR_UPSTREAM_UNAVAILABLE' },
    'a dispatcher first needed after close() refuses as well')
  t.equal(proxy.tunnels.length, 1)
})

t.test('a proxy whose own name does not resolve: the proxy is named, not the upstream host, and it is not retried', async (t) => {
  const lookups: string[] = []
  const noSuchProxy: UpstreamOptions['lookup'] = (hostname, options, callback) => {
    lookups.push(hostname)
    const err = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname })
    ;(callback as (err: Error) => void)(err)
  }
  const up = upstream(t, { HTTPS_PROXY: `http://${USERINFO}@nx-proxy.test:3128` }, { lookup: noSuchProxy })
  const err = await up.request({ method: 'GET', url: 'https://myvault.vault.azure.net/' }).catch((e: unknown) => e)
  t.match(err, { code: 'ERR_UPSTREAM_UNAVAILABLE', statusCode: 503, details: { errorCode: 'PROXY_NOT_FOUND', proxyVariable: 'HTTPS_PROXY', attempts: 1 } })
  t.match((err as Error).message, /the egress proxy http:\/\/nx-proxy\.test:3128 \(HTTPS_PROXY\) has a host name that does not resolve/)
  t.same(lookups, ['nx-proxy.test'], 'resolved once, not retried; the vault\'s name is the proxy\'s to resolve')
  assertNoSecrets(t, printed(err))
})
