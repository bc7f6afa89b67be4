// The image layout of the Dockerfile, rebuilt in a temp dir without a Docker engine (the real
// bundle, scripts/bundle.mjs; the same bin/ and /skr.sh; no node_modules) and started: --help,
// skr.sh's positional arguments, the compile-cache fill, and a simulated serve (on port 0, its
// port read back from the kernel) that `skr healthcheck` finds healthy, whose compile cache came
// from the image. The Dockerfile itself is checked in test/unit/deploy/dockerfile.test.ts.
import t from 'tap'
import type { ChildProcess } from 'node:child_process'
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { probe } from '../../../src/cli/healthcheck.ts'
import { exited, listeningPorts, runChild, spawnTracked, type Owner } from '../../helpers/child-process.ts'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
const read = (path: string): string => readFileSync(join(root, path), 'utf8')

/**
 * Spawns node as the image would: through `env -i`, with only the given variables. The test
 * runner adds --import hooks to child processes (NODE_OPTIONS), and with hooks Node sends the
 * main module through the ESM loader, which refuses /skr.sh's extension; the image has none.
 * env execs node: the pid (and process group, killed at the owner's teardown) is node's.
 */
function spawnClean (owner: Owner, args: string[], env: Record<string, string>, cwd: string, stdio: ['ignore', 'pipe' | 'ignore', 'pipe']): ChildProcess {
  const vars = Object.entries({ PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }).map(([k, v]) => `${k}=${v}`)
  return spawnTracked(owner, '/usr/bin/env', ['-i', ...vars, process.execPath, ...args], { cwd, stdio })
}

/** Runs node as the image would and collects exit code and output (bounded by a kill timer, not asserted). */
async function node (owner: Owner, args: string[], env: Record<string, string> = {}, cwd = root): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const vars = Object.entries({ PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }).map(([k, v]) => `${k}=${v}`)
  const r = await runChild(owner, '/usr/bin/env', ['-i', ...vars, process.execPath, ...args], { cwd })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** The port a child started with Port 0 serves /status on, once it does; null if it exits first. */
async function servingPort (child: ChildProcess): Promise<number | null> {
  const pid = child.pid
  if (pid === undefined) return null
  // A bound for a busy machine, not a timing check.
  for (const until = Date.now() + 120_000; Date.now() < until && child.exitCode === null && child.signalCode === null;) {
    for (const port of await listeningPorts(pid)) {
      if ((await probe({ host: '127.0.0.1', port, path: '/status', timeoutMs: 2000, socketPath: null })).ok) return port
    }
    await new Promise(done => setTimeout(done, 100))
  }
  return null
}

// The command table lives in src/cli/commands.ts (src/main.ts only dispatches).
const healthcheckRegistered = /\bhealthcheck\s*:/.test(read('src/cli/commands.ts'))

t.test('the image layout, rebuilt in a temp dir, starts', async t => {
  const image = mkdtempSync(join(tmpdir(), 'skr-image-'))
  t.teardown(() => { rmSync(image, { recursive: true, force: true }) })
  const app = join(image, 'app')
  // `npm run build:js`, with the output redirected into the simulated /app. Nothing else: the
  // image has no node_modules, and neither has this layout (or any directory above it).
  const bundled = await runChild(t, process.execPath, [join(root, 'scripts/bundle.mjs'), '--outdir', join(app, 'dist')], { cwd: root })
  t.equal(bundled.status, 0, `scripts/bundle.mjs succeeds (the image build fails otherwise)\n${bundled.stderr}`)
  t.ok(existsSync(join(app, 'dist/main.js')), 'dist/main.js written')
  cpSync(join(root, 'package.json'), join(app, 'package.json'))
  cpSync(join(root, 'bin'), join(app, 'bin'), { recursive: true })
  cpSync(join(root, 'proto'), join(app, 'proto'), { recursive: true })
  cpSync(join(root, 'deploy/image/skr.sh'), join(image, 'skr.sh'))
  cpSync(join(root, 'deploy/image/skr.sh'), join(image, 'bin', 'skr'))

  // Every entry the reference's users and skr's own docs write starts skr.
  for (const entry of [join(app, 'bin/skr.js'), join(image, 'skr.sh'), join(image, 'bin', 'skr')]) {
    const started = await node(t, [entry, '--help'], {}, image)
    t.equal(started.code, 0, `${entry.slice(image.length)} --help\n${started.stderr}`)
    t.match(started.stdout, /^usage: skr/)
  }

  const help = await node(t, [join(app, 'bin/skr.js'), '--help'], {}, image)
  t.equal(help.code, 0, help.stderr)
  t.match(help.stdout, /^usage: skr/)
  t.notOk(existsSync(join(app, 'src')), 'and it ran dist/, not the TypeScript sources')
  t.notOk(existsSync(join(app, 'node_modules')), 'with no node_modules')

  for (const entry of ['skr.sh', 'bin/skr']) {
    const positional = await node(t, [join(image, entry), '', 'not-a-port'], {}, image)
    t.equal(positional.code, 2, `/${entry} $2 reaches the Port setting (and is rejected as a config error)`)
    t.match(positional.stderr, /ERR_CONFIG_INVALID.*Port/)
  }


  if (healthcheckRegistered) {
    const down = await node(t, [join(app, 'bin/skr.js'), 'healthcheck', '--port', '1'], {}, image)
    t.equal(down.code, 1)
    t.match(down.stderr, /^skr healthcheck: GET http:\/\/127\.0\.0\.1:1\/status failed: .*ECONNREFUSED/)
  } else {
    t.comment('src/cli/commands.ts does not register `healthcheck` yet: the entrypoint check of `skr healthcheck` is skipped')
  }

  // The compile-cache stage's step, then the runtime's read-only copy of its result.
  const warmed = join(image, 'home/compile-cache')
  const warm = await node(t, [join(root, 'deploy/image/warm-compile-cache.mjs'), app], { NODE_COMPILE_CACHE: warmed }, image)
  t.equal(warm.code, 0, `the compile cache fills\n${warm.stderr}`)
  t.match(warm.stderr, /skr serve started, probed and stopped; \d+ entries/)
  // A fill that caches nothing for its own uid fails, even where another uid's entries exist.
  const none = await node(t, [join(root, 'deploy/image/warm-compile-cache.mjs'), app], { NODE_COMPILE_CACHE: warmed, NODE_DISABLE_COMPILE_CACHE: '1' }, image)
  t.equal(none.code, 1, `a fill that caches nothing for its uid fails the build\n${none.stderr}`)
  t.match(none.stderr, /compile cache is not enabled/)
  cpSync(warmed, join(app, 'compile-cache'), { recursive: true })

  // /skr.sh with the reference's environment, simulated attestation: serves (on a port the kernel
  // picks), and is healthy.
  const serve = spawnClean(t, [join(image, 'skr.sh')], {
    Port: '0', LogLevel: 'error', SKR_ATTESTATION: 'simulated',
    NODE_COMPILE_CACHE: join(app, 'compile-cache'), NODE_DEBUG_NATIVE: 'COMPILE_CACHE'
  }, image, ['ignore', 'ignore', 'pipe'])
  let serveErr = ''
  serve.stderr?.on('data', (c: Buffer) => { serveErr += c.toString() })
  const port = await servingPort(serve)
  t.ok(port !== null, `skr started from /skr.sh answers the healthcheck\n${serveErr}`)
  if (healthcheckRegistered && port !== null) {
    const up = await node(t, [join(app, 'bin/skr.js'), 'healthcheck'], { Port: String(port) }, image)
    t.equal(up.code, 0, `skr healthcheck exits 0 against it\n${up.stderr}`)
  }
  serve.kill('SIGTERM')
  t.equal((await exited(serve)).code, 0, 'SIGTERM shuts it down cleanly')

  // /bin/skr, as the AKS docs' manifest starts it: serves and is healthy too.
  const binServe = spawnClean(t, [join(image, 'bin', 'skr')], { Port: '0', LogLevel: 'error', SKR_ATTESTATION: 'simulated' }, image, ['ignore', 'ignore', 'pipe'])
  t.ok(await servingPort(binServe) !== null, 'skr started from /bin/skr answers the healthcheck')
  binServe.kill('SIGTERM')
  t.equal((await exited(binServe)).code, 0, 'and shuts down cleanly')
  // Node's own account of each module it compiled: the shipped cache served every skr module.
  const verdicts = [...serveErr.matchAll(/V8 code cache for \S+ (\S+) was (accepted|rejected|not initialized)/g)]
  const ofDist = verdicts.filter(m => (m[1] ?? '').includes(`${app}/dist/`))
  t.ok(ofDist.some(m => (m[1] ?? '').endsWith('/dist/main.js') && m[2] === 'accepted'), 'dist/main.js came from the cache')
  t.ok(ofDist.some(m => (m[1] ?? '').endsWith('/dist/serve.js')), 'and dist/serve.js, the sidecar graph\'s entry (scripts/bundle.mjs)')
  t.ok(ofDist.length >= 15, `${ofDist.length} skr modules looked up: the files serving loads before its first answer`)
  t.same(ofDist.filter(m => m[2] !== 'accepted').map(m => m[1]), [], 'none compiled afresh')
})
