// `skr emulate` as a developer runs it (a child process): it prints a curl line per route, the
// lines work as printed (the /status and /key/release ones are run here, through sh and curl when
// curl is installed, else parsed and sent with node:http), and SIGTERM/SIGINT stop it cleanly.
// --json is one parseable line even on a first run, whose progress goes to stderr.
import t, { type Test } from 'tap'
import type { ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { TEST_CHAIN_CACHE } from '../../helpers/sidecar-env.ts'
import { TEST_SHEDDING_OFF } from '../../helpers/shedding.ts'
import { exited as exitOf, runChild, spawnTracked, type Exit } from '../../helpers/child-process.ts'
import { repoRoot } from '../../helpers/vectors.ts'

const main = join(repoRoot, 'src', 'main.ts')
const home = mkdtempSync(join(tmpdir(), 'skr-emulate-'))
t.teardown(() => { rmSync(home, { recursive: true, force: true }) })
// A clean environment (no test-runner NODE_OPTIONS); the shared test chain cache saves a generation.
// Load shedding off: its sidecar shares the event loop with the emulators, and a busy machine
// (two test runs at once) delays it past the 1 s default.
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, XDG_CACHE_HOME: home, SKR_SIMULATED_CACHE_DIR: TEST_CHAIN_CACHE, ...TEST_SHEDDING_OFF }
const haveCurl = (await runChild(t, 'curl', ['--version'])).status === 0

interface Running {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  exited: Promise<Exit>
}

/** Starts `skr emulate` and resolves once stdout has `until`; killed at teardown whatever happens. */
async function emulate (t: Test, args: string[], until: RegExp, extraEnv: Record<string, string> = {}): Promise<Running> {
  const child = spawnTracked(t, process.execPath, [main, 'emulate', ...args], { env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stderr?.on('data', (c: Buffer) => { err += c.toString() })
  const exited = exitOf(child)
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString()
      if (until.test(out)) resolve()
    })
    void exited.then(() => { reject(new Error(`skr emulate exited before it was ready:\n${err}`)) })
  })
  return { child, stdout: () => out, stderr: () => err, exited }
}

interface Answer { status: number, body: string }

/** An assertion message that carries the detail only when it is needed (bodies hold keys and tokens). */
const unless = (ok: boolean, what: string, detail: string): string => ok ? what : `${what}\n${detail}`

/** What a printed `curl -s URL [-d 'JSON']` line does, sent with node:http (-d means POST). */
async function send (line: string): Promise<Answer> {
  const m = /^curl -s (http:\/\/\S+)(?: -d '([^']*)')?$/.exec(line)
  if (m === null) throw new Error(`not a curl line of the expected form: ${line}`)
  const body = m[2]
  return await new Promise<Answer>((resolve, reject) => {
    const req = request(m[1] as string, { method: body === undefined ? 'GET' : 'POST', headers: body === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded' } }, res => {
      let text = ''
      res.on('data', (c: Buffer) => { text += c.toString() })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: text }) })
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** Runs the line as a person would paste it: through sh, with curl. */
async function paste (t: Test, line: string): Promise<string> {
  const r = await runChild(t, 'sh', ['-c', line])
  if (r.status !== 0) throw new Error(`${line} exited ${String(r.status)}: ${r.stderr}`)
  return r.stdout
}

t.test('prints a curl line per route; /status and /key/release work as printed; SIGTERM stops it', async t => {
  const tmp = join(home, 'tmp-sigterm')
  mkdirSync(tmp)
  const run = await emulate(t, ['--port', '0'], /Ctrl-C stops/, { TMPDIR: tmp })
  const text = run.stdout()
  const base = /^ {2}sidecar {7}(http:\/\/127\.0\.0\.1:\d+)$/m.exec(text)?.[1] ?? ''
  const maa = /^ {2}maa_endpoint {2}(127\.0\.0\.1:\d+) /m.exec(text)?.[1] ?? ''
  const akv = /^ {2}akv_endpoint {2}(127\.0\.0\.1:\d+) /m.exec(text)?.[1] ?? ''
  t.match(base, /^http:\/\/127\.0\.0\.1:[1-9]\d*$/, '--port 0: the real port is printed')
  const curls = text.split('\n').filter(l => l.startsWith('curl '))
  for (const path of ['/status', '/attest/raw', '/attest/combined', '/attest/maa', '/key/release', '/metrics']) {
    t.ok(curls.some(l => l.startsWith(`curl -s ${base}${path}`)), `a curl line for ${path}`)
  }
  t.ok(curls.some(l => l.includes(`"maa_endpoint":"${maa}"`) && l.includes(`"akv_endpoint":"${akv}"`) && l.includes('"kid":"demo-key"')), 'the release line names this run\'s MAA and vault')

  const status = curls.find(l => l.endsWith('/status')) as string
  const release = curls.find(l => l.includes('"kid":"demo-key"')) as string
  const refused = curls.find(l => l.includes('"kid":"other-key"')) as string
  const attest = curls.find(l => l.includes('/attest/maa')) as string
  const statusAnswer = await send(status)
  t.equal(statusAnswer.status, 200)
  t.match(JSON.parse(statusAnswer.body), { message: 'Status OK', attestation: { backend: 'simulated', simulated: true } })
  const released = await send(release)
  t.equal(released.status, 200, unless(released.status === 200, 'demo-key released', released.body))
  const jwk = JSON.parse((JSON.parse(released.body) as { key: string }).key) as { kty: string, k: string }
  t.equal(jwk.kty, 'oct')
  t.equal(Buffer.from(jwk.k, 'base64url').length, 32)
  const denied = await send(refused)
  t.equal(denied.status, 403)
  t.match(JSON.parse(denied.body), { code: 'ERR_KEY_RELEASE_DENIED' })
  const token = await send(attest)
  t.equal(token.status, 200, unless(token.status === 200, 'the /attest/maa line\'s runtime_data is what MAA accepts', token.body))
  if (haveCurl) {
    t.match(JSON.parse(await paste(t, status)), { message: 'Status OK' }, 'pasted into sh, the /status line works')
    t.type((JSON.parse(await paste(t, release)) as { key?: unknown }).key, 'string', 'and so does the release line')
  } else {
    t.comment('curl is not installed: the lines were sent with node:http only')
  }

  run.child.kill('SIGTERM')
  const exit = await run.exited
  t.same(exit, { code: 0, signal: null }, unless(exit.code === 0, 'SIGTERM: a clean exit', run.stderr()))
  await t.rejects(send(status), { code: 'ECONNREFUSED' }, 'the sidecar is gone')
  t.same(readdirSync(tmp), [], 'and the emulators\' temporary files')
})

t.test('--json on a first run: one JSON line on stdout, the chain\'s progress on stderr; SIGINT stops it', async t => {
  const cacheDir = join(home, 'fresh-cache')
  const run = await emulate(t, ['--port', '0', '--json'], /\n/, { SKR_SIMULATED_CACHE_DIR: cacheDir })
  const doc = JSON.parse(run.stdout()) as {
    sidecar: string, maa_endpoint: string, akv_endpoint: string, keys: { released: string, refused: string },
    requests: Array<{ method: string, path: string, body?: Record<string, string>, status: number, curl: string }>
  }
  t.match(doc, { sidecar: /^http:\/\/127\.0\.0\.1:\d+$/, maa_endpoint: /^127\.0\.0\.1:\d+$/, akv_endpoint: /^127\.0\.0\.1:\d+$/, keys: { released: 'demo-key', refused: 'other-key' } })
  t.same(doc.requests.map(r => `${r.method} ${r.path} ${r.status}`), [
    'GET /status 200', 'POST /attest/raw 200', 'POST /attest/combined 200', 'POST /attest/maa 200',
    'POST /key/release 200', 'POST /key/release 403', 'GET /metrics 200'
  ])
  const releaseRow = doc.requests[4]
  t.same(releaseRow?.body, { maa_endpoint: doc.maa_endpoint, akv_endpoint: doc.akv_endpoint, kid: 'demo-key' })
  t.equal((await send(releaseRow?.curl ?? '')).status, 200, 'the JSON\'s curl line releases the key')
  t.match(run.stderr(), `skr emulate: generating the emulated AMD certificate chain (RSA-4096 keys: a few seconds, once; cached in ${cacheDir})\n`)
  run.child.kill('SIGINT')
  t.same(await run.exited, { code: 0, signal: null })
  t.equal(run.stdout().trim().split('\n').length, 1, 'nothing else on stdout')
})

t.test('Ctrl-C twice during start-up: it stops at the next step, cleans up, and removes its temporary files', async t => {
  const scratch = mkdtempSync(join(home, 'tmp-'))
  // A fresh chain cache makes start-up long enough (the chain is generated) to signal into it.
  const child = spawnTracked(t, process.execPath, [main, 'emulate', '--port', '0'], {
    env: { ...env, TMPDIR: scratch, SKR_SIMULATED_CACHE_DIR: join(scratch, 'chain') }, stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  child.stdout?.on('data', (c: Buffer) => { out += c.toString() })
  const exited = exitOf(child)
  await new Promise<void>(resolve => {
    child.stderr?.on('data', (c: Buffer) => {
      err += c.toString()
      if (/generating the emulated AMD certificate chain/.test(err)) resolve()
    })
  })
  child.kill('SIGINT')
  child.kill('SIGINT')
  t.same(await exited, { code: 0, signal: null }, 'the second signal did not kill it')
  t.notMatch(out, /curl/, 'it stopped before printing the curl lines')
  t.same(readdirSync(scratch).filter(f => f.startsWith('skr-')), [], 'no temporary directory left behind')
})

t.test('a taken port: ERR_LISTEN_FAILED with the hint, exit 2, the emulators closed with it', async t => {
  const other = createServer(socket => socket.end())
  await new Promise<void>(resolve => { other.listen(0, '127.0.0.1', resolve) })
  t.teardown(() => new Promise<void>(resolve => other.close(() => { resolve() })))
  const port = (other.address() as { port: number }).port
  // The emulators' files (the security context) go under TMPDIR: it must be empty again afterwards.
  const tmp = join(home, 'tmp-taken-port')
  mkdirSync(tmp)
  // Bounded by runChild's kill timer, which would show as a signal.
  const r = await runChild(t, process.execPath, [main, 'emulate', '--port', String(port)], { env: { ...env, TMPDIR: tmp }, timeoutMs: 60_000 })
  t.equal(r.signal, null, 'it exits by itself: nothing it started keeps it alive')
  t.same(readdirSync(tmp), [], 'and it removed its temporary files')
  t.equal(r.status, 2, unless(r.status === 2, 'exit 2', r.stderr))
  t.match(r.stderr, `skr: ERR_LISTEN_FAILED: port ${port} on 127.0.0.1 is in use (EADDRINUSE): another skr or the reference sidecar? Stop it, or set Port / --port to a free port (0 picks one)`)
})

t.test('bad arguments exit 2 before anything starts', async t => {
  for (const [args, message] of [
    [['--port', 'http'], 'skr emulate: --port must be a TCP port number 0..65535'],
    [['--port', '70000'], 'skr emulate: --port must be a TCP port number 0..65535'],
    [['--bogus'], 'skr emulate: unknown flag --bogus'],
    [['--uvm-layout', 'v3'], 'skr emulate: --uvm-layout must be cwt-claims or json-payload'],
    [['extra'], 'skr emulate: unexpected argument extra']
  ] as const) {
    const r = await runChild(t, process.execPath, [main, 'emulate', ...args], { env })
    t.equal(r.status, 2, args.join(' '))
    t.equal(r.stderr.trim(), message)
  }
  const help = await runChild(t, process.execPath, [main, 'emulate', '--help'], { env })
  t.equal(help.status, 0)
  t.match(help.stdout, /^usage: skr emulate \[--port N\] \[--log-level LEVEL\] \[--uvm-layout L\] \[--json\]/)
})
