// Real listeners: loopback TCP, the Unix socket, refusal and warning for non-loopback hosts,
// stale-socket handling, and client disconnects reaching the service's AbortSignal.
import t, { type Test } from 'tap'
import * as http from 'node:http'
import { createServer as createNetServer } from 'node:net'
import { link, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import type { Config } from '../../../src/config/config.ts'
import { loggerOptions } from '../../../src/log.ts'
import { buildApp } from '../../../src/server/app.ts'
import { listen } from '../../../src/server/listen.ts'
import { FakeAttestationService, FakeKeyReleaseService, testConfig, NO_SHEDDING } from '../../doubles/fake-services.ts'

function capture (): { logger: pino.Logger; logs: Array<Record<string, unknown>> } {
  const logs: Array<Record<string, unknown>> = []
  const logger = pino(loggerOptions('debug'), { write (line: string) { logs.push(JSON.parse(line) as Record<string, unknown>) } })
  return { logger, logs }
}

interface Answer { status: number; body: string }

async function request (options: http.RequestOptions, body?: string): Promise<Answer> {
  return await new Promise<Answer>((resolve, reject) => {
    const req = http.request(options, res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }) })
    })
    req.on('error', reject)
    req.end(body)
  })
}

function portOf (address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1))
}

async function tempDir (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'skr-listen-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

function setup (env: Record<string, string>): { config: Config; app: ReturnType<typeof buildApp>; attestation: FakeAttestationService; logs: Array<Record<string, unknown>>; logger: pino.Logger } {
  const { logger, logs } = capture()
  const config = testConfig(env)
  const attestation = new FakeAttestationService()
  const app = buildApp({ config, attestation, keyRelease: new FakeKeyReleaseService(), logger, backpressure: NO_SHEDDING })
  return { config, app, attestation, logs, logger }
}

t.test('listens on 127.0.0.1:0 and answers /status', async t => {
  const { config, app, logger } = setup({ SKR_HOST: '127.0.0.1', Port: '0' })
  const server = await listen(app, config, logger)
  t.teardown(() => server.close())
  t.equal(server.addresses.length, 1)
  t.match(server.addresses[0], /^http:\/\/127\.0\.0\.1:\d+$/)
  const port = portOf(server.addresses[0] ?? '')
  t.ok(port > 0)
  const res = await request({ host: '127.0.0.1', port, path: '/status' })
  t.equal(res.status, 200)
  t.same(JSON.parse(res.body), { message: 'Status OK', attestation: { backend: 'tsm', simulated: false } })
})

t.test("'localhost' binds loopback addresses only, never the wildcard", async t => {
  const { config, app, logger } = setup({ Port: '0' })
  t.equal(config.host, 'localhost')
  const server = await listen(app, config, logger)
  t.teardown(() => server.close())
  t.match(server.addresses[0], /^http:\/\/127\.0\.0\.1:\d+$/)
  for (const address of server.addresses) t.match(address, /^http:\/\/(127\.0\.0\.1|\[::1\]):\d+$/)
  const bound = app.server.address()
  t.equal(typeof bound === 'object' && bound !== null ? bound.address : null, '127.0.0.1')
  const res = await request({ host: '127.0.0.1', port: portOf(server.addresses[0] ?? ''), path: '/status' })
  t.equal(res.status, 200)
})

t.test('serves the same routes on a Unix socket (mode 0660) and removes it on close', async t => {
  const dir = await tempDir(t)
  const socketPath = join(dir, 'skr.sock')
  const { config, app, logger, attestation } = setup({ SKR_HOST: '127.0.0.1', Port: '0', SKR_UNIX_SOCKET: socketPath })
  const server = await listen(app, config, logger)
  t.equal(server.addresses.length, 2)
  t.equal(server.addresses[1], `unix:${socketPath}`)
  t.equal((await stat(socketPath)).mode & 0o777, 0o660)

  const status = await request({ socketPath, path: '/status' })
  t.equal(status.status, 200)
  t.equal(JSON.parse(status.body).message, 'Status OK')
  const raw = await request({ socketPath, path: '/attest/raw', method: 'POST', headers: { 'content-type': 'application/json' } }, '{"runtime_data":"aGVsbG8="}')
  t.equal(raw.status, 200)
  t.same(JSON.parse(raw.body), { report: attestation.report.toString('hex') })
  const missing = await request({ socketPath, path: '/nope' })
  t.equal(missing.status, 404)
  t.equal(JSON.parse(missing.body).code, 'ERR_NOT_FOUND')

  await server.close()
  await t.rejects(stat(socketPath), { code: 'ENOENT' }, 'socket file removed')
  const port = portOf(server.addresses[0] ?? '')
  await t.rejects(request({ host: '127.0.0.1', port, path: '/status' }), { code: 'ECONNREFUSED' }, 'TCP listener closed')
})

t.test('a stale socket left by a killed process is replaced', async t => {
  const dir = await tempDir(t)
  const socketPath = join(dir, 'stale.sock')
  // What a killed process leaves: a socket file nobody listens on. Made without killing anything:
  // a second name for a listening socket outlives the listener (close() unlinks only its own name).
  const gone = createNetServer()
  const original = join(dir, 'gone.sock')
  await new Promise<void>(resolve => { gone.listen(original, resolve) })
  await link(original, socketPath)
  await new Promise<void>(resolve => { gone.close(() => { resolve() }) })
  t.ok((await stat(socketPath)).isSocket(), 'the stale socket is still there')
  await t.rejects(request({ socketPath, path: '/status' }), { code: 'ECONNREFUSED' }, 'and nobody listens on it')

  const { config, app, logger } = setup({ SKR_HOST: '127.0.0.1', Port: '0', SKR_UNIX_SOCKET: socketPath })
  const server = await listen(app, config, logger)
  t.teardown(() => server.close())
  t.equal((await request({ socketPath, path: '/status' })).status, 200)
})

t.test('refuses a socket path that is a regular file or a live socket', async t => {
  const dir = await tempDir(t)
  const file = join(dir, 'not-a-socket')
  await writeFile(file, 'keep me')
  const a = setup({ SKR_HOST: '127.0.0.1', Port: '0', SKR_UNIX_SOCKET: file })
  await t.rejects(listen(a.app, a.config, a.logger), {
    code: 'ERR_CONFIG_INVALID',
    message: 'SKR_UNIX_SOCKET names an existing file that is not a socket; refusing to replace it'
  })
  t.equal(await readFile(file, 'utf8'), 'keep me')
  t.equal(a.app.server.listening, false, 'the TCP listener was closed again')

  const live = join(dir, 'live.sock')
  const other = createNetServer(socket => socket.end())
  await new Promise<void>(resolve => other.listen(live, resolve))
  t.teardown(() => new Promise<void>(resolve => other.close(() => { resolve() })))
  const b = setup({ SKR_HOST: '127.0.0.1', Port: '0', SKR_UNIX_SOCKET: live })
  await t.rejects(listen(b.app, b.config, b.logger), { code: 'ERR_CONFIG_INVALID', message: 'SKR_UNIX_SOCKET is in use by another process' })
  t.ok((await stat(live)).isSocket(), 'the live socket is left alone')
})

t.test('a non-loopback host needs the opt-in, and is announced at warn level', async t => {
  const refused = setup({ Port: '0' })
  const config: Config = { ...refused.config, host: '192.0.2.1', allowNonLoopback: false }
  await t.rejects(listen(refused.app, config, refused.logger), { code: 'ERR_CONFIG_INVALID' })
  t.equal(refused.app.server.listening, false)

  // 192.0.2.1 (TEST-NET-1) is not assigned here, so the bind fails after the warning: nothing is exposed.
  const allowed = setup({ Port: '0' })
  const allowedConfig: Config = { ...allowed.config, host: '192.0.2.1', allowNonLoopback: true }
  await t.rejects(listen(allowed.app, allowedConfig, allowed.logger), {
    code: 'ERR_LISTEN_FAILED',
    message: '192.0.2.1 is not an address of this machine (EADDRNOTAVAIL): set SKR_HOST / --host to one of its addresses, or leave it unset for localhost',
    details: { errno: 'EADDRNOTAVAIL', host: '192.0.2.1' }
  })
  const warning = allowed.logs.find(l => l.level === 'warn')
  t.ok(warning, 'a warning was logged')
  t.match(String(warning?.msg), 'NON-LOOPBACK address 192.0.2.1')
})

/** A plain TCP listener on host:0 standing in for "another skr"; closed at teardown. */
async function occupy (t: Test, host: string): Promise<number> {
  const other = createNetServer(socket => socket.end())
  await new Promise<void>((resolve, reject) => { other.once('error', reject); other.listen(0, host, resolve) })
  t.teardown(() => new Promise<void>(resolve => other.close(() => { resolve() })))
  const bound = other.address()
  return typeof bound === 'object' && bound !== null ? bound.port : 0
}

t.test('a port in use is ERR_LISTEN_FAILED with a hint, and nothing stays open', async t => {
  const port = await occupy(t, '127.0.0.1')
  const { config, app, logger } = setup({ Port: String(port) })
  await t.rejects(listen(app, config, logger), {
    code: 'ERR_LISTEN_FAILED',
    message: `port ${port} on 127.0.0.1 is in use (EADDRINUSE): another skr or the reference sidecar? Stop it, or set Port / --port to a free port (0 picks one)`,
    details: { errno: 'EADDRINUSE', host: '127.0.0.1', port },
    cause: { code: 'EADDRINUSE' }
  })
  t.equal(app.server.listening, false)
})

t.test("'localhost': the port in use on ::1 only is ERR_LISTEN_FAILED too, and the 127.0.0.1 listener is closed again", async t => {
  let port: number
  try {
    port = await occupy(t, '::1')
  } catch (err) {
    t.comment(`skipped: this machine has no IPv6 loopback (${String((err as { code?: unknown }).code)})`)
    t.pass('nothing to check without ::1')
    return
  }
  const { config, app, logger } = setup({ Port: String(port) })
  const failed = await listen(app, config, logger).then(async s => { await s.close(); return null }, (err: unknown) => err)
  if (failed === null) {
    t.comment('skipped: 127.0.0.1 and ::1 do not share port numbers here')
    t.pass('nothing to check')
    return
  }
  t.match(failed, { code: 'ERR_LISTEN_FAILED', message: `port ${port} on [::1] is in use (EADDRINUSE)`, details: { host: '::1', port } })
  t.equal(app.server.listening, false)
})

t.test('a Unix socket that cannot be created is ERR_LISTEN_FAILED naming the setting, not the path', async t => {
  const dir = await tempDir(t)
  const { config, app, logger } = setup({ SKR_HOST: '127.0.0.1', Port: '0', SKR_UNIX_SOCKET: join(dir, 'missing', 'skr.sock') })
  const err = await listen(app, config, logger).then(() => null, (e: unknown) => e)
  // libuv reports a missing directory as EACCES (Linux) or ENOENT.
  t.match(err, { code: 'ERR_LISTEN_FAILED', message: /^cannot create the Unix socket SKR_UNIX_SOCKET names \((EACCES|ENOENT)\): its directory must exist and be writable by skr's user$/ })
  t.notMatch((err as Error).message, dir)
  t.equal(app.server.listening, false, 'the TCP listener was closed again')
})

t.test('a privileged port without the privilege is ERR_LISTEN_FAILED (EACCES)', { skip: process.getuid?.() === 0 ? 'running as root: any port can be bound (listen-error.test.ts covers the message)' : false }, async t => {
  const { config, app, logger } = setup({ SKR_HOST: '127.0.0.1', Port: '1' })
  await t.rejects(listen(app, config, logger), { code: 'ERR_LISTEN_FAILED', message: /^port 1 on 127\.0\.0\.1 needs privileges \(EACCES\)/ })
})

t.test('a client disconnect aborts the service signal', async t => {
  const { config, app, logger, attestation } = setup({ SKR_HOST: '127.0.0.1', Port: '0' })
  const server = await listen(app, config, logger)
  t.teardown(() => server.close())
  attestation.mode = { kind: 'hang', honourSignal: true }
  const req = http.request({ host: '127.0.0.1', port: portOf(server.addresses[0] ?? ''), path: '/attest/raw', method: 'POST', headers: { 'content-type': 'application/json' } })
  req.on('error', () => {})
  req.end('{"runtime_data":"aGVsbG8="}')
  while (attestation.calls.length === 0) await new Promise(resolve => setTimeout(resolve, 5))
  const signal = attestation.calls[0]?.signal
  t.equal(signal?.aborted, false)
  req.destroy()
  while (signal?.aborted !== true) await new Promise(resolve => setTimeout(resolve, 5))
  t.equal(signal.aborted, true)
  t.equal(signal.reason?.code, 'ERR_CLIENT_CLOSED', 'a disconnect is the caller\'s doing, not an upstream timeout')
})
