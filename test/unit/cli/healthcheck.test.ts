// `skr healthcheck`: flag/env resolution, the probe against real loopback servers (TCP and a
// Unix socket), the exit codes and stderr line, and the promise that it stays light: its
// import graph is node built-ins and its own flag parser only.
import t, { type Test } from 'tap'
import http from 'node:http'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { AddressInfo } from 'node:net'
import { FlagError } from '../../../src/config/flags.ts'
import { describeTarget, probe, resolveTarget, run, summary, type HealthcheckTarget } from '../../../src/cli/healthcheck.ts'

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void

async function serve (t: Test, handler: Handler, path?: string): Promise<number> {
  const server = http.createServer(handler)
  await new Promise<void>(done => {
    if (path !== undefined) server.listen(path, done)
    else server.listen(0, '127.0.0.1', done)
  })
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise<void>(done => { server.close(() => { done() }) })
  })
  return path === undefined ? (server.address() as AddressInfo).port : 0
}

const json = (status: number, body: unknown): Handler => (_req, res) => {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}

function target (port: number, extra: Partial<HealthcheckTarget> = {}): HealthcheckTarget {
  return { host: '127.0.0.1', port, path: '/status', timeoutMs: 2000, socketPath: null, ...extra }
}

function io (): { stdout: string; stderr: string; stdoutWriter: { write: (s: string) => void }; stderrWriter: { write: (s: string) => void } } {
  const captured = {
    stdout: '',
    stderr: '',
    stdoutWriter: { write: (text: string) => { captured.stdout += text } },
    stderrWriter: { write: (text: string) => { captured.stderr += text } }
  }
  return captured
}

async function runCaptured (argv: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const c = io()
  const code = await run(argv, env, { stdout: c.stdoutWriter, stderr: c.stderrWriter })
  return { code, stdout: c.stdout, stderr: c.stderr }
}

t.test('flags, environment and defaults', async t => {
  t.ok(summary.length > 0)
  t.same(resolveTarget([], {}), target(8080))
  t.equal(resolveTarget([], { Port: '50000' }).port, 50000, 'Port env, as serve reads it')
  t.equal(resolveTarget(['--port', '9000'], { Port: '50000' }).port, 9000, 'the flag wins')
  t.equal(resolveTarget(['-port', '9001'], {}).port, 9001, 'Go-style single dash')
  t.same(resolveTarget(['--path=/readyz', '--timeout', '500', '--unix-socket', '/run/skr.sock', '--host', '::1'], {}),
    { host: '::1', port: 8080, path: '/readyz', timeoutMs: 500, socketPath: '/run/skr.sock' })
  t.throws(() => resolveTarget(['--port', '0'], {}), FlagError)
  t.throws(() => resolveTarget([], { Port: 'http' }), { message: /Port/ })
  t.throws(() => resolveTarget(['--timeout', '0'], {}), { message: /--timeout/ })
  t.throws(() => resolveTarget(['--path', 'status'], {}), { message: /--path/ })
  t.throws(() => resolveTarget(['--path', '/sta tus'], {}), { message: /--path/ })
  t.throws(() => resolveTarget(['status'], {}), { message: /unexpected argument/ })
  t.throws(() => resolveTarget(['--nope'], {}), { message: /unknown flag/ })
  t.equal(describeTarget(target(1)), 'http://127.0.0.1:1/status')
  t.equal(describeTarget(target(2, { host: '::1' })), 'http://[::1]:2/status')
  t.equal(describeTarget(target(3, { socketPath: '/s' })), 'unix:/s /status')
})

t.test('healthy only on 200 {"message":"Status OK"}', async t => {
  const ok = await serve(t, json(200, { message: 'Status OK', attestation: { backend: 'simulated', simulated: true } }))
  t.same(await probe(target(ok)), { ok: true })
  const wrong = await serve(t, json(200, { message: 'STATUS OK' }))
  t.same(await probe(target(wrong)), { ok: false, reason: 'HTTP 200 but message is not "Status OK"' })
  const notJson = await serve(t, (_req, res) => { res.end('<html>') })
  t.same(await probe(target(notJson)), { ok: false, reason: 'HTTP 200 but the body is not JSON' })
  const closing = await serve(t, json(503, { error: 'server closing', code: 'ERR_OVERLOADED', requestId: 'x' }))
  t.same(await probe(target(closing)), { ok: false, reason: 'HTTP 503' })
  const big = await serve(t, (_req, res) => { res.end(Buffer.alloc(100 * 1024, 32)) })
  t.match(await probe(target(big)), { ok: false, reason: /over 65536 bytes/ })
})

t.test('--path probes another route by status alone', async t => {
  const seen: string[] = []
  const port = await serve(t, (req, res) => { seen.push(req.url ?? ''); res.end('ready') })
  t.same(await probe(target(port, { path: '/readyz' })), { ok: true })
  t.same(seen, ['/readyz'])
})

t.test('no answer: refused, silent, missing socket', async t => {
  t.match(await probe(target(1)), { ok: false, reason: /ECONNREFUSED/ })
  const silent = await serve(t, () => { /* never answers */ })
  t.match(await probe(target(silent, { timeoutMs: 50 })), { ok: false, reason: 'no answer within 50 ms' })
  t.match(await probe(target(0, { socketPath: '/nonexistent/skr.sock' })), { ok: false, reason: /ENOENT/ })
})

t.test('a Unix socket listener', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'skr-hc-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const path = join(dir, 'skr.sock')
  await serve(t, json(200, { message: 'Status OK' }), path)
  t.same(await probe(target(0, { socketPath: path })), { ok: true })
})

t.test('run: exit codes and one line on stderr', async t => {
  const port = await serve(t, json(200, { message: 'Status OK' }))
  t.same(await runCaptured([], { Port: String(port) }), { code: 0, stdout: '', stderr: '' })
  const down = await runCaptured(['--port', '1'], {})
  t.equal(down.code, 1)
  t.match(down.stderr, /^skr healthcheck: GET http:\/\/127\.0\.0\.1:1\/status failed: .*ECONNREFUSED.*\n$/)
  t.equal(down.stderr.split('\n').length, 2, 'exactly one line')
  const bad = await runCaptured(['--port', 'x'], {})
  t.same(bad, { code: 2, stdout: '', stderr: 'skr healthcheck: --port (or Port) must be a TCP port number 1..65535\n' })
})

t.test('--help', async t => {
  const help = await runCaptured(['--help'], {})
  t.equal(help.code, 0)
  t.match(help.stdout, /usage: skr healthcheck/)
  t.match(help.stdout, /--unix-socket/)
})

t.test('imports stay light: node built-ins and local modules only, no fastify/SDK/pino/undici', async t => {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
  const seen = new Set<string>()
  const external: string[] = []
  const visit = (file: string): void => {
    if (seen.has(file)) return
    seen.add(file)
    const text = readFileSync(file, 'utf8')
    for (const m of text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gm)) {
      const spec = m[1] ?? m[2] ?? ''
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec))
      else if (!spec.startsWith('node:')) external.push(`${file.slice(root.length + 1)} → ${spec}`)
    }
  }
  visit(join(root, 'src/cli/healthcheck.ts'))
  t.same(external, [], 'no package imports')
  t.same([...seen].map(f => f.slice(root.length + 1)).sort(), ['src/cli/healthcheck.ts', 'src/config/flags.ts'])
})

t.test('--json prints the verdict on stdout, healthy or not', async t => {
  const ok = await serve(t, json(200, { message: 'Status OK' }))
  const good = await runCaptured(['--port', String(ok), '--json'], {})
  t.equal(good.code, 0)
  t.same(JSON.parse(good.stdout), { healthy: true, target: describeTarget(target(ok)) })
  const bad = await runCaptured(['--port', '1', '--json'], {})
  t.equal(bad.code, 1)
  t.match(JSON.parse(bad.stdout), { healthy: false, reason: /ECONNREFUSED/ })
  t.match(bad.stderr, /failed/)
})

t.test('--json is read like any boolean flag (=1, -JSON)', async t => {
  const ok = await serve(t, json(200, { message: 'Status OK' }))
  for (const flag of ['--json=1', '-JSON', '--json=yes']) {
    const r = await runCaptured(['--port', String(ok), flag], {})
    t.equal(JSON.parse(r.stdout).healthy, true, flag)
  }
  t.equal((await runCaptured(['--port', String(ok), '--json=false'], {})).stdout, '', '--json=false prints nothing')
})
