// `skr serve` as a person starts it (a child process): a port that is taken stops it with
// ERR_LISTEN_FAILED, a hint and exit code 2 (for the gRPC port too, without leaving the HTTP
// listener holding the process open), and simulated attestation's first run says on stderr that
// it is generating the emulated AMD chain, while stdout stays JSON log lines.
import t, { type Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runChild, spawnTracked } from '../../helpers/child-process.ts'
import { repoRoot } from '../../helpers/vectors.ts'

const main = join(repoRoot, 'src', 'main.ts')
const home = mkdtempSync(join(tmpdir(), 'skr-serve-cli-'))
t.teardown(() => { rmSync(home, { recursive: true, force: true }) })
// A clean environment without the test runner's NODE_OPTIONS; attestation `auto` finds no device
// here and serves anyway (its calls would fail), which is all a listen test needs.
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, XDG_CACHE_HOME: home }

async function occupy (t: Test): Promise<number> {
  const other = createServer(socket => socket.end())
  await new Promise<void>(resolve => { other.listen(0, '127.0.0.1', resolve) })
  t.teardown(() => new Promise<void>(resolve => other.close(() => { resolve() })))
  const bound = other.address()
  return typeof bound === 'object' && bound !== null ? bound.port : 0
}

t.test('the HTTP port in use: ERR_LISTEN_FAILED with a hint, exit 2', async t => {
  const port = await occupy(t)
  // The reference's own invocation: flags only.
  const r = await runChild(t, process.execPath, [main, '-port', String(port)], { env })
  t.equal(r.status, 2, r.stderr)
  t.equal(r.stderr.trim().split('\n').at(-1), `skr: ERR_LISTEN_FAILED: port ${port} on 127.0.0.1 is in use (EADDRINUSE): another skr or the reference sidecar? Stop it, or set Port / --port to a free port (0 picks one)`)
})

t.test('the gRPC port of ServerType=both in use: exit 2 naming SKR_GRPC_PORT, and the HTTP listener does not keep the process alive', async t => {
  const grpcPort = await occupy(t)
  // Bounded by runChild's kill timer, which would show as a signal.
  const r = await runChild(t, process.execPath, [main, '--server-type', 'both', '--port', '0', '--grpc-port', String(grpcPort)], { env, timeoutMs: 60_000 })
  t.equal(r.signal, null, 'exited by itself (before the fix it hung with its HTTP port open)')
  t.equal(r.status, 2, r.stderr)
  t.match(r.stderr, new RegExp(`skr: ERR_LISTEN_FAILED: gRPC port ${grpcPort} on 127\\.0\\.0\\.1 is in use \\(EADDRINUSE\\): .* set SKR_GRPC_PORT / --grpc-port to a free port`))
})

t.test('simulated attestation, first run: a progress line on stderr, JSON logs on stdout', async t => {
  const cacheDir = join(home, 'fresh-chain-cache')
  const child = spawnTracked(t, process.execPath, [main, '--attestation', 'simulated', '--port', '0', '--log-level', 'info'],
    { env: { ...env, SKR_SIMULATED_CACHE_DIR: cacheDir }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stderr?.on('data', (c: Buffer) => { stderr += c.toString() })
  const exited = new Promise<number | null>(resolve => child.on('close', code => { resolve(code) }))
  // Listening means the chain is there; the RSA-4096 generation takes seconds on a busy machine.
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (c: Buffer) => {
      stdout += c.toString()
      if (stdout.includes('"msg":"skr listening"')) resolve()
    })
    child.once('close', () => { reject(new Error(`skr exited before listening:\n${stderr}`)) })
  })
  child.kill('SIGTERM')
  t.equal(await exited, 0, stderr)
  t.match(stderr, `skr: generating the emulated AMD certificate chain (RSA-4096 keys: a few seconds, once; cached in ${cacheDir})\n`)
  t.match(stderr, /skr: emulated AMD certificate chain ready \(\d+\.\d s\)\n/)
  for (const line of stdout.split('\n').filter(Boolean)) t.doesNotThrow(() => JSON.parse(line), `stdout is JSON log lines: ${line.slice(0, 60)}`)
})
