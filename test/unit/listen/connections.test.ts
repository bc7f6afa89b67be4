// Issue 11 §3 and §5 at the listener: idle and slow sockets are closed, the connection cap keeps
// skr serving the connections it has, parser-level failures answer in skr's JSON shape without
// ever logging the request's bytes, and a body over the limit gets its 413 rather than a reset.
// Bounds are set small here so each case is quick; the assertions are about what happens, never
// about how long it took.
import t, { type Test } from 'tap'
import { request as httpRequest, Agent } from 'node:http'
import { pino } from 'pino'
import { loggerOptions } from '../../../src/log.ts'
import { createMetricsRegistry, type PrometheusMetrics } from '../../../src/observability/registry.ts'
import { buildApp } from '../../../src/server/app.ts'
import { clientErrorFor } from '../../../src/server/client-error.ts'
import { deriveConnectionCap, readOpenFileLimit, MIN_CONNECTIONS, MAX_DERIVED_CONNECTIONS } from '../../../src/listen/connections.ts'
import { listen } from '../../../src/server/listen.ts'
import { FakeAttestationService, FakeKeyReleaseService, GatedKeyRelease, testConfig, NO_SHEDDING } from '../../doubles/fake-services.ts'
import { exchange, open, receive } from '../../helpers/raw-http.ts'
import type { KeyReleaseService } from '../../../src/service/types.ts'

const RELEASE = JSON.stringify({ maa_endpoint: 'sharedeus.eus.attest.azure.net', akv_endpoint: 'myvault.vault.azure.net', kid: 'mykey', access_token: 'eyJhbGciOiJub25lIn0.eyJzZWNyZXQiOnRydWV9.c2lnbmF0dXJl' })
const SECRET_HEADER = 'Bearer eyJhbGciOiJub25lIn0.c2VjcmV0LWhlYWRlci12YWx1ZQ.c2lnbmF0dXJl'

interface Served { port: number, logs: string[], metrics: PrometheusMetrics, keyRelease: { calls?: unknown[] } }

async function serve (t: Test, env: Record<string, string> = {}, keyRelease: KeyReleaseService & { calls?: unknown[] } = new FakeKeyReleaseService()): Promise<Served> {
  const config = testConfig({ SKR_HOST: '127.0.0.1', Port: '0', LogLevel: 'trace', ...env })
  const logs: string[] = []
  const logger = pino(loggerOptions('trace'), { write (line: string) { logs.push(line) } })
  const metrics = createMetricsRegistry({ defaultMetrics: false })
  const app = buildApp({ config, attestation: new FakeAttestationService(), keyRelease, logger, metrics, backpressure: NO_SHEDDING })
  const listening = await listen(app, config, logger, { events: metrics })
  t.teardown(async () => { listening.forceClose(); await listening.close() })
  return { port: Number((listening.addresses[0] ?? '').split(':').pop()), logs, metrics, keyRelease }
}

t.test('every parser-level failure answers skr\'s JSON shape, and no log line at trace holds the request', async t => {
  const s = await serve(t)
  const auth = `Authorization: ${SECRET_HEADER}\r\n`
  const cases: Array<[string, string, number, string]> = [
    ['header too large', `GET /status HTTP/1.1\r\nHost: localhost\r\n${auth}X-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'ERR_HEADERS_TOO_LARGE'],
    ['bad Content-Length', `POST /key/release HTTP/1.1\r\nHost: localhost\r\n${auth}Content-Length: abc\r\n\r\n${RELEASE}`, 400, 'ERR_REQUEST_INVALID'],
    ['Content-Length and Transfer-Encoding', `POST /key/release HTTP/1.1\r\nHost: localhost\r\n${auth}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n${RELEASE}`, 400, 'ERR_REQUEST_INVALID'],
    ['two Content-Lengths', `POST /key/release HTTP/1.1\r\nHost: localhost\r\n${auth}Content-Length: 5\r\nContent-Length: 6\r\n\r\n${RELEASE}`, 400, 'ERR_REQUEST_INVALID'],
    ['bad method', `FO\u0001O /status HTTP/1.1\r\nHost: localhost\r\n${auth}\r\n`, 400, 'ERR_REQUEST_INVALID'],
    ['HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 400, 'ERR_REQUEST_INVALID'],
    ['bare LF', `POST /key/release HTTP/1.1\nHost: localhost\n${auth.trim()}\nContent-Length: ${RELEASE.length}\n\n${RELEASE}`, 400, 'ERR_REQUEST_INVALID'],
    ['NUL in a header', `GET /status HTTP/1.1\r\nHost: localhost\r\n${auth}X-A: a\u0000b\r\n\r\n`, 400, 'ERR_REQUEST_INVALID'],
    ['bad version', `GET /status HTTP/1.7\r\nHost: localhost\r\n${auth}\r\n`, 400, 'ERR_REQUEST_INVALID'],
    ['bad chunk', `POST /key/release HTTP/1.1\r\nHost: localhost\r\n${auth}Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n${RELEASE}\r\n0\r\n\r\n`, 400, 'ERR_REQUEST_INVALID']
  ]
  for (const [name, raw, status, code] of cases) {
    const got = await exchange({ port: s.port }, raw)
    t.equal(got.answer?.status, status, `${name}: status`)
    t.same(Object.keys(got.answer?.json ?? {}), ['error', 'code', 'requestId'], `${name}: skr's error shape`)
    t.equal(got.answer?.json?.code, code, `${name}: code`)
    t.equal(got.answer?.headers['content-type'], 'application/json; charset=utf-8')
  }
  t.equal(s.keyRelease.calls?.length, 0)
  const text = s.logs.join('\n')
  t.notMatch(text, /rawPacket/, 'the raw request is never logged')
  t.notMatch(text, /c2VjcmV0LWhlYWRlci12YWx1ZQ|eyJzZWNyZXQiOnRydWV9/, 'neither the Authorization header nor the body\'s access_token')
  t.match(text, /"parserCode":"HPE_INVALID_CONTENT_LENGTH"/, 'the parser\'s code is logged')
  t.match(await s.metrics.render(), /skr_http_client_errors_total\{code="ERR_REQUEST_INVALID"\} \d+/)
})

t.test('clientErrorFor names the problem, never the bytes', async t => {
  t.equal(clientErrorFor('HPE_PAUSED_H2_UPGRADE').message, 'malformed HTTP request (HPE_PAUSED_H2_UPGRADE): HTTP/2 is not served here; use HTTP/1.1')
  t.equal(clientErrorFor('ERR_HTTP_REQUEST_TIMEOUT').statusCode, 408)
  t.equal(clientErrorFor(undefined).message, 'malformed HTTP request: the request could not be parsed')
  t.equal(clientErrorFor('weird code with spaces').message, 'malformed HTTP request: the request could not be parsed')
})

t.test('a connection that sends nothing is closed; a silent wait for an answer is not cut', async t => {
  const keyRelease = new GatedKeyRelease()
  const s = await serve(t, { SKR_IDLE_CONNECTION_TIMEOUT_MS: '150', SKR_HEADERS_TIMEOUT_MS: '5000' }, keyRelease)
  const idle = await open({ port: s.port })
  const idleEnd = await receive(idle, { withinMs: 20_000, untilClosed: true })
  t.ok(idleEnd.closed, 'the idle connection was closed')
  t.equal(idleEnd.text, '', 'without an answer: nothing was asked')

  // A release that waits (silently) far longer than the idle timeout still gets its answer.
  const slow = await open({ port: s.port })
  const answer = receive(slow, { withinMs: 30_000 })
  slow.write(`POST /key/release HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${RELEASE.length}\r\n\r\n${RELEASE}`)
  while (keyRelease.started.length === 0) await new Promise(resolve => setTimeout(resolve, 10))
  await new Promise(resolve => setTimeout(resolve, 600))
  keyRelease.open()
  t.equal((await answer).answer?.status, 200, 'answered after a long silent wait')
  slow.destroy()
})

t.test('trickled headers and a never-ending body get 408 in skr\'s shape', async t => {
  const s = await serve(t, { SKR_IDLE_CONNECTION_TIMEOUT_MS: '5000', SKR_HEADERS_TIMEOUT_MS: '300', SKR_RECEIVE_TIMEOUT_MS: '600' })
  const trickle = await open({ port: s.port })
  const trickled = receive(trickle, { withinMs: 20_000 })
  const line = 'GET /status HTTP/1.1\r\nHost: localhost\r\nX-Slow: '
  let i = 0
  const drip = setInterval(() => { if (!trickle.destroyed) trickle.write(line[i++ % line.length] ?? 'a') }, 50)
  const got = await trickled
  clearInterval(drip)
  t.equal(got.answer?.status, 408, 'trickled headers')
  t.equal(got.answer?.json?.code, 'ERR_REQUEST_TIMEOUT')
  trickle.destroy()

  const endless = await open({ port: s.port })
  const body = receive(endless, { withinMs: 20_000 })
  endless.write('POST /key/release HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{')
  const feed = setInterval(() => { if (!endless.destroyed) endless.write(' ') }, 50)
  const gotBody = await body
  clearInterval(feed)
  t.equal(gotBody.answer?.status, 408, 'a body that never ends')
  t.equal(gotBody.answer?.json?.code, 'ERR_REQUEST_TIMEOUT')
  endless.destroy()
  t.equal(s.keyRelease.calls?.length, 0)
})

t.test('an idle keep-alive connection is closed after SKR_KEEP_ALIVE_TIMEOUT_MS', async t => {
  const s = await serve(t, { SKR_KEEP_ALIVE_TIMEOUT_MS: '100' })
  const socket = await open({ port: s.port })
  const first = receive(socket)
  socket.write('GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n')
  t.equal((await first).answer?.status, 200)
  const after = await receive(socket, { withinMs: 20_000, untilClosed: true })
  t.ok(after.closed, 'closed once idle')
})

t.test('past SKR_MAX_CONNECTIONS new connections are closed at once; the open ones keep being served', async t => {
  const s = await serve(t, { SKR_MAX_CONNECTIONS: '4', SKR_IDLE_CONNECTION_TIMEOUT_MS: '60000', SKR_HEADERS_TIMEOUT_MS: '60000', SKR_RECEIVE_TIMEOUT_MS: '60000' })
  const kept = await open({ port: s.port })
  const idle = await Promise.all([1, 2, 3].map(async () => await open({ port: s.port })))
  const extra = await Promise.all([1, 2, 3].map(async () => await open({ port: s.port })))
  const ends = await Promise.all(extra.map(async socket => await receive(socket, { withinMs: 20_000, untilClosed: true })))
  t.ok(ends.every(e => e.closed && e.text === ''), 'each connection past the cap was closed without a byte')
  const answer = receive(kept)
  kept.write('GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n')
  t.equal((await answer).answer?.status, 200, 'a connection opened before the cap still gets answers')
  t.match(await s.metrics.render(), /skr_http_connections_dropped_total [3-9]/)
  t.match(await s.metrics.render(), /skr_http_connections_open 4/)
  for (const socket of [kept, ...idle]) socket.destroy()
  while (!/skr_http_connections_open 0/.test(await s.metrics.render())) await new Promise(resolve => setTimeout(resolve, 10))
  const fresh = await exchange({ port: s.port }, 'GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n')
  t.equal(fresh.answer?.status, 200, 'new connections are accepted again once others closed')
})

t.test('a body over the limit: an uploading client sees the 413, not a reset', async t => {
  const s = await serve(t)
  const agent = new Agent({ keepAlive: false })
  t.teardown(() => { agent.destroy() })
  const big = Buffer.alloc(8 * 1024 * 1024, 0x61)
  for (const mode of ['content-length', 'chunked', 'content-length', 'chunked', 'content-length'] as const) {
    const outcome = await new Promise<{ status?: number, code?: unknown, error?: string }>((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port: s.port, method: 'POST', path: '/key/release', agent,
        headers: { 'content-type': 'application/json', ...(mode === 'content-length' ? { 'content-length': big.length } : {}) } }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => { resolve({ status: res.statusCode, code: (JSON.parse(Buffer.concat(chunks).toString()) as { code?: unknown }).code }) })
      })
      req.on('error', (err: NodeJS.ErrnoException) => { resolve({ error: err.code ?? err.message }) })
      // Written in chunks, as an uploading client does, so it is still sending when the 413 comes.
      let offset = 0
      const next = (): void => {
        while (offset < big.length) {
          const chunk = big.subarray(offset, offset + 64 * 1024)
          offset += chunk.length
          if (!req.write(chunk)) { req.once('drain', next); return }
        }
        req.end()
      }
      next()
    })
    t.same(outcome, { status: 413, code: 'ERR_REQUEST_TOO_LARGE' }, `${mode}: the client got the 413`)
  }
})

t.test('the cap follows the open-file limit', async t => {
  t.equal(readOpenFileLimit('Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 4096                 files\n'), 1024)
  t.equal(readOpenFileLimit('Max open files            unlimited            unlimited            files\n'), null)
  t.equal(readOpenFileLimit('nothing'), null)
  t.type(readOpenFileLimit(), 'number', 'this machine\'s limit is readable')
  t.same(deriveConnectionCap({ configured: null, fdLimit: 1024, openNow: 30, upstreamSockets: 256 }),
    { maxConnections: 1024 - 30 - 256 - 64, source: 'open-file limit', fdLimit: 1024, tight: false })
  t.same(deriveConnectionCap({ configured: null, fdLimit: 1_048_576, openNow: 30, upstreamSockets: 256 }).maxConnections, MAX_DERIVED_CONNECTIONS)
  t.same(deriveConnectionCap({ configured: null, fdLimit: 256, openNow: 30, upstreamSockets: 256 }), { maxConnections: MIN_CONNECTIONS, source: 'open-file limit', fdLimit: 256, tight: true })
  t.same(deriveConnectionCap({ configured: 99, fdLimit: 256, openNow: 30, upstreamSockets: 256 }).maxConnections, 99)
  t.same(deriveConnectionCap({ configured: null, fdLimit: null, openNow: null, upstreamSockets: 256 }).source, 'default')
})

t.test('a caller that never reads its answers does not hold its connection: closed after the deadline plus a margin', async t => {
  const s = await serve(t, { SKR_REQUEST_TIMEOUT_MS: '200', SKR_KEEP_ALIVE_TIMEOUT_MS: '60000', SKR_HEADERS_TIMEOUT_MS: '60000', SKR_RECEIVE_TIMEOUT_MS: '60000' })
  const socket = await open({ port: s.port })
  socket.pause() // never reads: the answers fill the kernel buffers and writing stalls
  socket.write('GET /openapi.json HTTP/1.1\r\nHost: localhost\r\n\r\n'.repeat(400))
  // A paused client does not notice the close; the server's own count does.
  const open1 = async (): Promise<boolean> => /skr_http_connections_open 1\b/.test(await s.metrics.render())
  while (!await open1()) await new Promise(resolve => setTimeout(resolve, 20))
  const until = Date.now() + 60_000
  while (await open1() && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 100))
  t.notOk(await open1(), 'the stalled connection was closed by the server')
  socket.destroy()
})

t.test('bare CRLFs after an answer do not keep a connection open', async t => {
  const s = await serve(t, { SKR_KEEP_ALIVE_TIMEOUT_MS: '100', SKR_HEADERS_TIMEOUT_MS: '300' })
  const socket = await open({ port: s.port })
  const first = receive(socket)
  socket.write('GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n')
  t.equal((await first).answer?.status, 200)
  // Each CRLF re-arms Node's keep-alive (inactivity) timer; skr's next-request timer is absolute.
  const drip = setInterval(() => { if (!socket.destroyed) socket.write('\r\n') }, 50)
  const ended = await receive(socket, { withinMs: 30_000, untilClosed: true })
  clearInterval(drip)
  t.ok(ended.closed, 'closed although bytes kept coming')
  t.equal(ended.text, '', 'with nothing more said')
})

t.test('an early answer is the connection\'s last: what the client pipelines after it does no work, and gets no second answer', async t => {
  const s = await serve(t, { SKR_RECEIVE_TIMEOUT_MS: '500', SKR_HEADERS_TIMEOUT_MS: '400' })
  const socket = await open({ port: s.port })
  const got = receive(socket, { withinMs: 20_000, untilClosed: true })
  socket.write(`POST /key/release HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n${RELEASE}`)
  // The rest of the "body" is more requests: none may reach the service.
  const pipelined = `POST /key/release HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${RELEASE.length}\r\n\r\n${RELEASE}`
  setTimeout(() => { if (!socket.destroyed) socket.write(pipelined.repeat(5)) }, 100)
  const received = await got
  const answers = received.text.split('HTTP/1.1 ').length - 1
  t.equal(received.answer?.status, 413)
  t.equal(received.answer?.headers.connection, 'close')
  t.equal(answers, 1, 'exactly one answer on the connection')
  t.equal(s.keyRelease.calls?.length, 0, 'no pipelined request reached the service')

  // A refusal before the body (a browser's request), then the body trickles: no 408 after the 403.
  const trickle = await open({ port: s.port })
  const refused = receive(trickle, { withinMs: 20_000, untilClosed: true })
  trickle.write('POST /key/release HTTP/1.1\r\nHost: localhost\r\nOrigin: https://a.example\r\nContent-Type: application/json\r\nContent-Length: 500000\r\n\r\n{')
  const drip = setInterval(() => { if (!trickle.destroyed) trickle.write(' ') }, 50)
  const after = await refused
  clearInterval(drip)
  t.equal(after.answer?.status, 403)
  t.equal(after.text.split('HTTP/1.1 ').length - 1, 1, 'one answer only')
})

t.test('a caller that disconnects is logged as ERR_CLIENT_CLOSED at info, not as a 5xx', async t => {
  const keyRelease = new GatedKeyRelease()
  const s = await serve(t, {}, keyRelease)
  const socket = await open({ port: s.port })
  socket.write(`POST /key/release HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${RELEASE.length}\r\n\r\n${RELEASE}`)
  while (keyRelease.started.length === 0) await new Promise(resolve => setTimeout(resolve, 10))
  socket.destroy()
  const line = async (): Promise<Record<string, unknown> | undefined> => s.logs.map(l => JSON.parse(l) as Record<string, unknown>).find(l => l['code'] === 'ERR_CLIENT_CLOSED')
  while (await line() === undefined) await new Promise(resolve => setTimeout(resolve, 10))
  t.equal((await line())?.['level'], 'info')
  t.notOk(s.logs.some(l => l.includes('"level":"error"')), 'nothing at error level')
  keyRelease.open()
})
