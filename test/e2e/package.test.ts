// Issue 13 §1-2: the package installs and works from a tarball. `npm pack` of the repository (its
// prepack bundles skr into dist/, scripts/bundle.mjs), then `npm install <tarball>` into a scratch
// directory outside the checkout, as a user would (node-addon-api, the one dependency, comes from
// the registry; the addon is built by the package's install script), then the installed `skr`
// runs: --help, and `skr demo`, a full key release against the embedded emulators, from the
// installed copy only.
import t from 'tap'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { copyCheckout } from '../helpers/checkout-copy.ts'
import { runChild } from '../helpers/child-process.ts'
import { TEST_SHEDDING_OFF } from '../helpers/shedding.ts'

// npm install and a first chain generation take a while on a busy 2-core machine.
t.setTimeout(600_000)
const work = realpathSync(mkdtempSync(join(tmpdir(), 'skr-package-')))
t.teardown(() => { rmSync(work, { recursive: true, force: true }) })
// Packed from a copy: prepack writes dist/, which bin/skr.js in the checkout would then run.
const checkout = copyCheckout('skr-package-src-')
t.teardown(checkout.remove)
// npm runs prepack and the install script with this Node first on PATH (the machine's may be older).
const env: Record<string, string | undefined> = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' }
// Nothing from the test runner (its --import hooks) may reach the installed skr.
delete env['NODE_OPTIONS']

interface Packed { filename: string, files: Array<{ path: string }>, size: number, name: string }

const pack = await runChild(t, 'npm', ['pack', '--json', '--pack-destination', work], { cwd: checkout.root, env, timeoutMs: 300_000 })
const packed = pack.status === 0 ? (JSON.parse(pack.stdout) as Packed[])[0] : undefined

t.test('npm pack bundles dist/ and ships what skr needs, and nothing of the checkout\'s', async t => {
  t.equal(pack.status, 0, `npm pack\n${pack.stderr.slice(-3000)}`)
  t.equal(packed?.name, 'skr-sidecar', 'the package name (free on the registry; "skr" is someone else\'s)')
  const files = new Set((packed?.files ?? []).map(f => f.path))
  for (const want of ['package.json', 'README.md', 'LICENSE', 'bin/skr.js', 'dist/main.js', 'dist/THIRD-PARTY-NOTICES.txt', 'dist/vendor/grpc-health-check/proto/health/v1/health.proto', 'binding.gyp', 'scripts/build-native.mjs']) {
    t.ok(files.has(want), want)
  }
  t.ok([...files].filter(f => /^dist\/[^/]+\.js$/.test(f)).length > 10, 'the bundle: the entry and its chunks')
  t.ok([...files].some(f => f.startsWith('native/')), 'the addon\'s sources (built at install)')
  t.ok([...files].some(f => f.startsWith('proto/')), 'the gRPC protos (read at run time)')
  t.same([...files].filter(f => /^(src|test|bench|deploy|packages|\.cache|node_modules|build)\//.test(f)), [], 'no sources, tests, deploy files, other packages or build output')
})

t.test('installed from the tarball, outside the checkout, skr runs: --help and a full release', async t => {
  if (packed === undefined) { t.fail('nothing was packed'); return }
  const app = join(work, 'app')
  mkdirSync(app, { recursive: true })
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }))
  const install = await runChild(t, 'npm', ['install', '--no-audit', '--no-fund', '--omit=dev', '--prefer-offline', join(work, packed.filename)], { cwd: app, env, timeoutMs: 300_000 })
  t.equal(install.status, 0, `npm install <tarball>\n${install.stderr.slice(-3000)}`)
  const bin = join(app, 'node_modules', '.bin', 'skr')
  t.ok(existsSync(bin), 'the skr command is installed')
  t.ok(existsSync(join(app, 'node_modules', 'skr-sidecar', 'build', 'Release', 'snp_guest.node')), 'the addon was built by the install script')
  const installed = readdirSync(join(app, 'node_modules')).filter(n => !n.startsWith('.')).sort()
  t.same(installed, ['node-addon-api', 'skr-sidecar'], 'nothing else is installed: every JavaScript dependency is in the bundle')

  const help = await runChild(t, bin, ['--help'], { cwd: app, env })
  t.equal(help.status, 0, help.stderr)
  t.match(help.stdout, /^usage: skr/)

  // The demo is skr serving against the embedded emulators: a real release, all from the install.
  // (Load shedding off: a busy machine delays the demo's event loop past the 1 s default.)
  const demo = await runChild(t, bin, ['demo', '--json'], { cwd: app, env: { ...env, ...TEST_SHEDDING_OFF, SKR_SIMULATED_CACHE_DIR: join(work, 'chain-cache'), HOME: work }, timeoutMs: 240_000 })
  t.equal(demo.status, 0, `skr demo from the installed copy\n${demo.stderr.slice(-3000)}`)
  const result = JSON.parse(demo.stdout) as { ok?: boolean, released?: { status?: number }, refused?: { status?: number } }
  t.equal(result.ok, true)
  t.equal(result.released?.status, 200, 'the key was released')
  t.equal(result.refused?.status, 403, 'and the key bound to another policy refused')
})
