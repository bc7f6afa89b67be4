import t, { type Test } from 'tap'
import type http from 'node:http'
import { createLocalPki } from '../../../src/emulator/pki.ts'
import { DEFAULT_UPSTREAM_POLICY, Upstream, type UpstreamOptions } from '../../../src/http/upstream.ts'
import { startHttpServer, startHttpsServer } from '../../helpers/https-server.ts'

const pki = await createLocalPki()

interface Recorder { sleeps: number[], sleep: (ms: number) => Promise<void> }
function recorder (): Recorder {
  const sleeps: number[] = []
  return { sleeps, sleep: async (ms) => { sleeps.push(ms) } }
}

async function serve (t: Test, handler: http.RequestListener): Promise<{ url: string, ca: string, hits: () => number, connections: () => number }> {
  let hits = 0
  let connections = 0
  const s = await startHttpsServer((req, res) => { hits++; handler(req, res) }, { pki })
  s.server.on('secureConnection', () => { connections++ })
  t.teardown(s.close)
  return { url: s.url, ca: s.ca, hits: () => hits, connections: () => connections }
}

function client (t: Test, ca: string, extra: Partial<UpstreamOptions> = {}): Upstream {
  const up = new Upstream({ name: 'thim', ca, random: () => 0.5, ...extra })
  t.teardown(() => up.close())
  return up
}

// Answers each request with the next status of the script (the last one repeats).
function scripted (statuses: number[], headers: Record<string, string> = {}): http.RequestListener {
  let i = 0
  return (_req, res) => {
    const status = statuses[Math.min(i++, statuses.length - 1)] ?? 500
    res.writeHead(status, { 'content-type': 'application/json', ...headers })
    res.end(status === 200 ? '{"ok":true}' : JSON.stringify({ error: { code: `E${status}`, message: 'scripted' } }))
  }
}

t.test('DEFAULT_UPSTREAM_POLICY holds the documented values', async (t) => {
  t.same(DEFAULT_UPSTREAM_POLICY, {
    connectTimeoutMs: 5000, headersTimeoutMs: 10000, bodyTimeoutMs: 10000, totalTimeoutMs: 30000,
    maxRetries: 3, baseDelayMs: 250, maxDelayMs: 5000, maxResponseBytes: 4 * 1024 * 1024
  })
  t.throws(() => new Upstream({ name: 'kds', policy: { maxRetries: -1 } }), TypeError)
  t.throws(() => new Upstream({ name: 'kds', policy: { totalTimeoutMs: 1.5 } }), TypeError)
})

t.test('only http: and https: URLs leave the process', async (t) => {
  const up = new Upstream({ name: 'akv' })
  t.teardown(async () => { await up.close() })
  for (const url of ['file:///etc/passwd', 'ftp://vault.test/keys/k', 'data:text/plain,x', new URL('ws://vault.test/')]) {
    await t.rejects(up.request({ url, method: 'GET' }), { name: 'TypeError', message: /^akv: only http: and https: URLs are sent, not / }, String(url))
  }
})

t.test('success returns status, headers and body; method, headers and body reach the server', async (t) => {
  const s = await serve(t, (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      res.writeHead(201, { 'x-echo': String(req.headers['x-test']) })
      res.end(`${req.method ?? ''} ${req.url ?? ''} ${Buffer.concat(chunks).toString()}`)
    })
  })
  const up = client(t, s.ca)
  t.equal(up.name, 'thim')
  const res = await up.request({ method: 'POST', url: `${s.url}/a?b=c`, headers: { 'x-test': 'yes' }, body: 'hello' })
  t.equal(res.status, 201)
  t.equal(res.attempts, 1)
  t.equal(res.headers['x-echo'], 'yes')
  t.equal(res.body.toString(), 'POST /a?b=c hello')
  const again = await up.request({ method: 'PUT', url: new URL(`${s.url}/x`), body: Buffer.from('bytes') })
  t.equal(again.body.toString(), 'PUT /x bytes')
})

t.test('503 twice then 200: retried with full-jitter backoff', async (t) => {
  const s = await serve(t, scripted([503, 503, 200]))
  const r = recorder()
  const res = await client(t, s.ca, { sleep: r.sleep }).request({ method: 'GET', url: s.url })
  t.equal(res.status, 200)
  t.equal(res.attempts, 3)
  t.equal(s.hits(), 3)
  t.same(r.sleeps, [125, 250], 'random 0.5 × 250 ms, then × 500 ms')
})

t.test('429 with Retry-After: 1 waits exactly one second', async (t) => {
  const s = await serve(t, scripted([429, 200], { 'retry-after': '1' }))
  const r = recorder()
  const res = await client(t, s.ca, { sleep: r.sleep }).request({ method: 'GET', url: s.url })
  t.equal(res.attempts, 2)
  t.same(r.sleeps, [1000])
})

t.test('Retry-After as an HTTP-date is measured from the injected clock', async (t) => {
  const now = new Date('2031-01-01T00:00:00Z')
  const s = await serve(t, scripted([503, 200], { 'retry-after': new Date(now.getTime() + 3000).toUTCString() }))
  const r = recorder()
  const res = await client(t, s.ca, { sleep: r.sleep, now: () => now }).request({ method: 'GET', url: s.url })
  t.equal(res.status, 200)
  t.same(r.sleeps, [3000])
})

t.test('Retry-After is capped at 4 × maxDelayMs', async (t) => {
  const s = await serve(t, scripted([429, 200], { 'retry-after': '3600' }))
  const r = recorder()
  await client(t, s.ca, { sleep: r.sleep }).request({ method: 'GET', url: s.url })
  t.same(r.sleeps, [20000])
})

t.test('a Retry-After beyond the remaining deadline fails now instead of sleeping', async (t) => {
  const s = await serve(t, scripted([503, 200], { 'retry-after': '10' }))
  const r = recorder()
  const up = client(t, s.ca, { sleep: r.sleep, policy: { totalTimeoutMs: 2000 } })
  await t.rejects(up.request({ method: 'GET', url: s.url }), {
    code: 'ERR_UPSTREAM_UNAVAILABLE',
    details: { upstream: 'thim', upstreamStatus: 503, attempts: 1 }
  })
  t.same(r.sleeps, [])
  t.equal(s.hits(), 1)
})

t.test('429 without Retry-After is retried with backoff', async (t) => {
  const s = await serve(t, scripted([429, 429, 429, 200]))
  const r = recorder()
  const res = await client(t, s.ca, { sleep: r.sleep, random: () => 0.999 }).request({ method: 'GET', url: s.url })
  t.equal(res.attempts, 4)
  t.same(r.sleeps, [249, 499, 999])
})

for (const status of [400, 401, 403, 404, 409, 501]) {
  t.test(`${status} is returned, never retried`, async (t) => {
    const s = await serve(t, scripted([status]))
    const r = recorder()
    const res = await client(t, s.ca, { sleep: r.sleep }).request({ method: 'GET', url: s.url })
    t.equal(res.status, status)
    t.equal(res.attempts, 1)
    t.equal(s.hits(), 1)
    t.same(r.sleeps, [])
    t.match(JSON.parse(res.body.toString()), { error: { code: `E${status}` } }, 'body handed to the caller')
  })
}

t.test('exhausted retries throw ERR_UPSTREAM_UNAVAILABLE with details', async (t) => {
  const s = await serve(t, scripted([503]))
  const r = recorder()
  const up = client(t, s.ca, { sleep: r.sleep, policy: { maxRetries: 2 } })
  const err = await up.request({ method: 'GET', url: s.url }).catch((e: unknown) => e)
  t.match(err, {
    code: 'ERR_UPSTREAM_UNAVAILABLE',
    statusCode: 503,
    details: { upstream: 'thim', upstreamStatus: 503, attempts: 3, upstreamCode: 'E503', upstreamMessage: 'scripted' }
  })
  t.match((err as Error).message, /^thim 127\.0\.0\.1:\d+: HTTP 503 \(E503\) after 3 attempts$/)
  t.equal(s.hits(), 3)
  t.equal(r.sleeps.length, 2)
})

t.test('retry: false makes exactly one attempt', async (t) => {
  const s = await serve(t, scripted([503, 200]))
  const r = recorder()
  await t.rejects(client(t, s.ca, { sleep: r.sleep }).request({ method: 'POST', url: s.url, retry: false }),
    { code: 'ERR_UPSTREAM_UNAVAILABLE', details: { attempts: 1, upstreamStatus: 503 } })
  t.equal(s.hits(), 1)
  t.same(r.sleeps, [])
})

t.test('a server that never answers → ERR_UPSTREAM_TIMEOUT (headers timeout, retried)', async (t) => {
  const s = await serve(t, () => { /* never answers */ })
  const r = recorder()
  const up = client(t, s.ca, { sleep: r.sleep, policy: { headersTimeoutMs: 100, maxRetries: 1 } })
  await t.rejects(up.request({ method: 'GET', url: s.url }), {
    code: 'ERR_UPSTREAM_TIMEOUT',
    statusCode: 504,
    details: { upstream: 'thim', errorCode: 'UND_ERR_HEADERS_TIMEOUT', attempts: 2 }
  })
  t.equal(s.hits(), 2)
})

t.test('the total deadline cuts a hanging call short', async (t) => {
  const s = await serve(t, () => { /* never answers */ })
  const up = client(t, s.ca, { policy: { totalTimeoutMs: 150 } })
  await t.rejects(up.request({ method: 'GET', url: s.url }), {
    code: 'ERR_UPSTREAM_TIMEOUT',
    details: { upstream: 'thim', errorCode: 'TOTAL_DEADLINE', attempts: 1 }
  })
})

t.test('connection refused → ERR_UPSTREAM_UNAVAILABLE after every attempt', async (t) => {
  const s = await startHttpServer(() => {})
  await s.close()
  const r = recorder()
  const up = new Upstream({ name: 'thim', sleep: r.sleep, random: () => 0 })
  t.teardown(() => up.close())
  const err = await up.request({ method: 'GET', url: s.url }).catch((e: unknown) => e)
  t.match(err, { code: 'ERR_UPSTREAM_UNAVAILABLE', details: { upstream: 'thim', errorCode: 'ECONNREFUSED', attempts: 4 } })
  t.equal((err as Error).message, `thim 127.0.0.1:${s.port}: connection refused (ECONNREFUSED) after 4 attempts`)
  t.same(r.sleeps, [0, 0, 0])
})

t.test('a host name that does not exist (ENOTFOUND) fails at once with 502; EAI_AGAIN is retried as 503', async (t) => {
  const lookups: string[] = []
  // Name resolution as getaddrinfo reports it: NXDOMAIN for one name, a resolver that cannot answer for another.
  const lookup = ((hostname: string, _options: unknown, callback: (err: Error | null) => void): void => {
    lookups.push(hostname)
    const code = hostname.startsWith('nx.') ? 'ENOTFOUND' : 'EAI_AGAIN'
    process.nextTick(() => { callback(Object.assign(new Error(`getaddrinfo ${code} ${hostname}`), { code, hostname })) })
  }) as unknown as UpstreamOptions['lookup']
  const r = recorder()
  const up = new Upstream({ name: 'akv', sleep: r.sleep, random: () => 0, ...(lookup === undefined ? {} : { lookup }) })
  t.teardown(() => up.close())

  const nx = await up.request({ method: 'GET', url: 'http://nx.vault.skr.test:8080/keys' }).catch((e: unknown) => e)
  t.match(nx, { code: 'ERR_UPSTREAM_NOT_FOUND', statusCode: 502, details: { upstream: 'akv', host: 'nx.vault.skr.test:8080', errorCode: 'ENOTFOUND', attempts: 1 } })
  t.equal((nx as Error).message, 'akv nx.vault.skr.test:8080: host name not found (ENOTFOUND) after 1 attempt')
  t.same(lookups, ['nx.vault.skr.test'], 'asked once: NXDOMAIN is not retried')
  t.same(r.sleeps, [])

  lookups.length = 0
  const again = await up.request({ method: 'GET', url: 'http://flaky.vault.skr.test:8080/keys' }).catch((e: unknown) => e)
  t.match(again, { code: 'ERR_UPSTREAM_UNAVAILABLE', statusCode: 503, details: { errorCode: 'EAI_AGAIN', attempts: 4 } })
  t.equal(lookups.length, 4, 'a resolver that cannot answer now is retried')
})

t.test('a socket destroyed mid-body is retried', async (t) => {
  let n = 0
  const half: http.RequestListener = (_req, res) => {
    if (n++ === 0) {
      res.writeHead(200, { 'content-length': '1000' })
      res.write('x'.repeat(10), () => { res.socket?.destroy() })
      return
    }
    res.end('whole')
  }
  const s = await serve(t, half)
  const r = recorder()
  const res = await client(t, s.ca, { sleep: r.sleep }).request({ method: 'GET', url: s.url })
  t.equal(res.body.toString(), 'whole')
  t.equal(res.attempts, 2)
  t.equal(r.sleeps.length, 1)
})

t.test('a socket always destroyed mid-body ends in ERR_UPSTREAM_UNAVAILABLE', async (t) => {
  const s = await serve(t, (_req, res) => {
    res.writeHead(200, { 'content-length': '1000' })
    res.write('x'.repeat(10), () => { res.socket?.destroy() })
  })
  const r = recorder()
  await t.rejects(client(t, s.ca, { sleep: r.sleep, policy: { maxRetries: 2 } }).request({ method: 'GET', url: s.url }),
    { code: 'ERR_UPSTREAM_UNAVAILABLE', details: { upstream: 'thim', errorCode: 'UND_ERR_SOCKET', attempts: 3 } })
  t.equal(s.hits(), 3)
})

t.test('an oversize body → ERR_UPSTREAM_RESPONSE_INVALID, declared or streamed', async (t) => {
  const s = await serve(t, (req, res) => {
    if (req.url === '/declared') {
      res.writeHead(200, { 'content-length': '2048' })
      res.end('y'.repeat(2048))
      return
    }
    res.writeHead(200) // chunked: the cap must hold while streaming
    res.write('z'.repeat(800))
    res.end('z'.repeat(800))
  })
  const up = client(t, s.ca, { policy: { maxResponseBytes: 1024 } })
  await t.rejects(up.request({ method: 'GET', url: `${s.url}/declared` }),
    { code: 'ERR_UPSTREAM_RESPONSE_INVALID', details: { upstream: 'thim', maxResponseBytes: 1024 } })
  await t.rejects(up.request({ method: 'GET', url: `${s.url}/streamed` }), { code: 'ERR_UPSTREAM_RESPONSE_INVALID' })
  t.equal(s.hits(), 2, 'not retried')
})

t.test('an untrusted TLS certificate → ERR_UPSTREAM_UNAVAILABLE, not retried', async (t) => {
  const s = await serve(t, scripted([200]))
  const stranger = await createLocalPki({ commonName: 'some other CA' })
  const r = recorder()
  await t.rejects(client(t, stranger.caCertPem, { sleep: r.sleep }).request({ method: 'GET', url: s.url }),
    { code: 'ERR_UPSTREAM_UNAVAILABLE', details: { upstream: 'thim', errorCode: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', attempts: 1 } })
  t.same(r.sleeps, [])
  t.equal(s.hits(), 0)
  // Without any extra CA the system roots do not know the test CA either.
  const plain = new Upstream({ name: 'thim', sleep: r.sleep })
  t.teardown(() => plain.close())
  await t.rejects(plain.request({ method: 'GET', url: s.url }), { code: 'ERR_UPSTREAM_UNAVAILABLE' })
})

t.test('a certificate for another host name → ERR_UPSTREAM_UNAVAILABLE (ERR_TLS_CERT_ALTNAME_INVALID)', async (t) => {
  const s = await startHttpsServer(scripted([200]), { pki, hosts: ['vault.test'] })
  t.teardown(s.close)
  const r = recorder()
  await t.rejects(client(t, s.ca, { sleep: r.sleep }).request({ method: 'GET', url: s.url }),
    { code: 'ERR_UPSTREAM_UNAVAILABLE', details: { errorCode: 'ERR_TLS_CERT_ALTNAME_INVALID', attempts: 1 } })
  t.same(r.sleeps, [])
})

t.test('keep-alive: two sequential requests share one TLS connection', async (t) => {
  const s = await serve(t, scripted([200]))
  const up = client(t, s.ca)
  await up.request({ method: 'GET', url: s.url })
  await up.request({ method: 'GET', url: s.url })
  t.equal(s.hits(), 2)
  t.equal(s.connections(), 1)
})

t.test("the caller's abort surfaces unchanged", async (t) => {
  const s = await serve(t, () => { /* never answers */ })
  const ac = new AbortController()
  const p = client(t, s.ca).request({ method: 'GET', url: s.url, signal: ac.signal })
  setImmediate(() => { ac.abort() })
  await t.rejects(p, { name: 'AbortError' })
})

t.test('plain http works (IMDS and THIM speak it)', async (t) => {
  const s = await startHttpServer(scripted([200]))
  t.teardown(s.close)
  const up = new Upstream({ name: 'imds' })
  t.teardown(() => up.close())
  const res = await up.request({ method: 'GET', url: s.url })
  t.equal(res.status, 200)
})

t.test('every settled call is observed once (status or failure class); a caller abort is not', async (t) => {
  const seen: Array<[string, string]> = []
  const metrics = { observeUpstream: (service: string, status: string, seconds: number) => { t.ok(seconds >= 0); seen.push([service, status]) } }
  const s = await startHttpServer((req, res) => {
    if (req.url === '/hang') return
    res.statusCode = req.url === '/missing' ? 404 : 200
    res.end('{}')
  })
  t.teardown(() => s.close())
  const up = new Upstream({ name: 'thim', metrics, policy: { maxRetries: 0, headersTimeoutMs: 200, totalTimeoutMs: 300 } })
  t.teardown(() => up.close())
  await up.request({ method: 'GET', url: `${s.url}/ok` })
  await up.request({ method: 'GET', url: `${s.url}/missing` })
  await t.rejects(up.request({ method: 'GET', url: `${s.url}/hang` }), { code: 'ERR_UPSTREAM_TIMEOUT' })
  const caller = new AbortController()
  const pending = up.request({ method: 'GET', url: `${s.url}/hang`, signal: caller.signal })
  caller.abort()
  await t.rejects(pending)
  t.same(seen, [['thim', '200'], ['thim', '404'], ['thim', 'timeout']])
})

t.test('the Agent is created on the first request; a closed upstream refuses requests, used or not', async (t) => {
  const s = await serve(t, scripted([200]))
  const unused = new Upstream({ name: 'kds', ca: s.ca, random: () => 0.5 })
  await unused.close()
  await unused.close()
  await t.rejects(unused.request({ method: 'GET', url: s.url, retry: false }), 'closed before any request: still refused')
  t.equal(s.hits(), 0)

  const used = new Upstream({ name: 'kds', ca: s.ca, random: () => 0.5 })
  const [a, b] = await Promise.all([used.request({ method: 'GET', url: s.url }), used.request({ method: 'GET', url: s.url })])
  t.equal(a.status, 200)
  t.equal(b.status, 200)
  await used.close()
  await t.rejects(used.request({ method: 'GET', url: s.url, retry: false }), 'closed after use: refused')
  t.equal(s.hits(), 2)
})

t.test('at most MAX_CONNECTIONS_PER_ORIGIN connections to one origin; the rest wait and are answered', async t => {
  const { MAX_CONNECTIONS_PER_ORIGIN } = await import('../../../src/http/upstream-dispatchers.ts')
  const total = MAX_CONNECTIONS_PER_ORIGIN + 8
  // Holds every answer until the cap's worth of requests is in: with no cap, all `total` would
  // each have opened a connection by then; with the cap, the last 8 wait and reuse connections.
  const held: http.ServerResponse[] = []
  const s = await serve(t, (_req, res) => {
    if (held.length < MAX_CONNECTIONS_PER_ORIGIN) {
      held.push(res)
      if (held.length === MAX_CONNECTIONS_PER_ORIGIN) for (const r of held) r.end('ok')
      return
    }
    res.end('ok')
  })
  const up = client(t, s.ca, { policy: { totalTimeoutMs: 120_000, headersTimeoutMs: 120_000, bodyTimeoutMs: 120_000 } })
  const answers = await Promise.all(Array.from({ length: total }, async () => await up.request({ method: 'GET', url: s.url })))
  t.equal(answers.filter(a => a.status === 200).length, total, 'every request answered')
  t.ok(s.connections() <= MAX_CONNECTIONS_PER_ORIGIN, `${s.connections()} connections for ${total} concurrent requests, at most ${MAX_CONNECTIONS_PER_ORIGIN}`)
})
