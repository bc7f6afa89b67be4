// The bundle the image and the npm package ship (scripts/bundle.mjs), built and run the way they
// run it: in a layout with package.json, bin/, proto/, the addon and dist/, and no node_modules.
// Every path that loads something on first use is driven (commands, Ajv through the CommonJS
// compilers module, prom-client's default metrics, @fastify/swagger, undici, the identity SDK,
// gRPC with health and reflection from dist/vendor, the addon), and a resolve hook reports any
// file still taken from a node_modules directory.
import t from 'tap'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { IMAGE_NODE_ARGS, spawnSkr } from '../../bench/skr-process.ts'
import { startEmulatedEnvironment } from '../../src/emulator/environment.ts'
import { callUnary, connectClients, listServices } from '../doubles/grpc-fakes.ts'
import { runChild } from '../helpers/child-process.ts'
import { TEST_SHEDDING_OFF } from '../helpers/sidecar-env.ts'
import { buildShim } from '../helpers/shim.ts'

const root = fileURLToPath(new URL('../../', import.meta.url))
const MB = 1024 * 1024

// Preloaded into the bundled skr: every resolution (import and require) that lands in a
// node_modules directory is written to stderr, where the test looks for it.
const NODE_MODULES_HOOK = 'data:text/javascript,' + encodeURIComponent(`
import module from 'node:module'
module.registerHooks({ resolve (specifier, context, next) {
  const result = next(specifier, context)
  if (result.url.includes('/node_modules/')) process.stderr.write('RESOLVED_FROM_NODE_MODULES ' + result.url + '\\n')
  const inDist = /\\/app\\/dist\\/([^/]+\\.js)$/.exec(result.url)
  if (inDist !== null) process.stderr.write('RESOLVED_FROM_DIST ' + inDist[1] + '\\n')
  return result
} })
process.stderr.write('NODE_MODULES_HOOK_ACTIVE\\n')
process.on('exit', () => { process.stderr.write('NODE_OWN_UNDICI ' + JSON.stringify(process.moduleLoadList.filter(m => m.includes('deps/undici'))) + '\\n') })
`)

function sizeOf (path: string): number {
  const s = statSync(path)
  return s.isDirectory() ? readdirSync(path).reduce((sum, name) => sum + sizeOf(join(path, name)), 0) : s.size
}

// One layout for the whole file, outside the checkout (so no node_modules above it either).
const image = mkdtempSync(join(tmpdir(), 'skr-bundle-'))
t.teardown(() => { rmSync(image, { recursive: true, force: true }) })
const app = join(image, 'app')
const dist = join(app, 'dist')
const built = await runChild(t, process.execPath, [join(root, 'scripts/bundle.mjs'), '--outdir', dist], { cwd: root })
cpSync(join(root, 'package.json'), join(app, 'package.json'))
cpSync(join(root, 'bin'), join(app, 'bin'), { recursive: true })
cpSync(join(root, 'proto'), join(app, 'proto'), { recursive: true })
const addon = join(root, 'build/Release/snp_guest.node')
mkdirSync(join(app, 'build/Release'), { recursive: true })
if (existsSync(addon)) cpSync(addon, join(app, 'build/Release/snp_guest.node'))
const bin = join(app, 'bin/skr.js')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string, dependencies: Record<string, string> }

t.test('npm run build:js bundles skr: flat, with its notices and vendored protos, within 15 MB', async t => {
  t.equal(built.status, 0, `scripts/bundle.mjs succeeds\n${built.stderr}`)
  t.match(built.stderr, /^bundle: \d+ files, [\d.]+ MB of JavaScript, \d+ packages, in /)
  const names = readdirSync(dist)
  t.same(names.filter(n => !n.endsWith('.js')).sort(), ['THIRD-PARTY-NOTICES.txt', 'vendor'], 'JavaScript files side by side, the notices and vendor/ only')
  t.ok(names.includes('main.js'), 'dist/main.js: bin/skr.js runs it')
  t.ok(statSync(join(dist, 'main.js')).size < 20 * 1024, 'the entry is small: each command is a chunk of its own')
  t.ok(names.includes('healthcheck.js') && statSync(join(dist, 'healthcheck.js')).size < 4 * 1024, 'dist/healthcheck.js: the exec probes\' own small entry')

  const notices = readFileSync(join(dist, 'THIRD-PARTY-NOTICES.txt'), 'utf8')
  for (const name of ['fastify', 'undici', 'jose', 'pino', '@azure/identity', '@azure/keyvault-keys', '@grpc/grpc-js', 'prom-client']) {
    t.match(notices, new RegExp(`^${name.replace('/', '\\/')}@\\d+\\.\\d+\\.\\d+ \\(`, 'm'), `${name} is listed with its version and license`)
  }
  t.match(notices, /Permission is hereby granted, free of charge/, 'with the license texts')
  t.notMatch(notices, /^typescript@/m, 'and nothing that is not bundled (dev tools)')
  for (const file of ['grpc-health-check/proto/health/v1/health.proto', '@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto',
    '@grpc/reflection/build/proto/grpc/reflection/v1alpha/reflection.proto', 'grpc-health-check/LICENSE', '@grpc/reflection/LICENSE']) {
    t.ok(existsSync(join(dist, 'vendor', file)), `dist/vendor/${file}`)
  }

  t.same(Object.keys(pkg.dependencies), ['node-addon-api'], 'the package installs no runtime dependency tree: only the addon\'s headers')
  const footprint = sizeOf(dist) + (existsSync(addon) ? statSync(addon).size : 0)
  t.ok(footprint <= 15 * MB, `production footprint (dist/ and the addon) ${(footprint / MB).toFixed(2)} MB <= 15 MB`)
})

t.test('the bundled skr serves every route, from a layout without node_modules', async t => {
  const env = await startEmulatedEnvironment()
  t.teardown(env.close)
  const data = Buffer.from(JSON.stringify(env.releasePolicy())).toString('base64url')
  await env.akv.store.createKey('bundle-key', { kty: 'oct-HSM', size: 256, exportable: true, releasePolicy: { data, immutable: false } })
  // gRPC on a port the kernel picks, read back from skr's own log line.
  const skr = await spawnSkr(env, {
    bin,
    nodeArgs: [...IMAGE_NODE_ARGS, '--import', NODE_MODULES_HOOK],
    overrides: { ...TEST_SHEDDING_OFF, ServerType: 'both', SKR_GRPC_PORT: '0' },
    logLevel: 'info',
    startTimeoutMs: 120_000,
    owner: t
  })
  let stopped = false
  t.teardown(async () => { if (!stopped) await skr.stop() })
  const call = async (path: string, body?: unknown): Promise<{ status: number, text: string }> => {
    const res = await request(`${skr.base}${path}`, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    return { status: res.statusCode, text: await res.body.text() }
  }

  const released = await call('/key/release', { maa_endpoint: env.maa.endpoint, akv_endpoint: env.akv.endpoint, kid: 'bundle-key' })
  t.equal(released.status, 200, `a key release (undici, the identity SDK, jose)\n${released.text}`)
  t.match(JSON.parse(JSON.parse(released.text).key as string), { kty: 'oct', k: /^[\w-]{43}$/ })
  const invalid = await call('/key/release', {})
  t.equal(invalid.status, 400, 'a body its schema refuses: Ajv, loaded on first use through fastify-compilers.cjs')
  t.match(JSON.parse(invalid.text), { code: 'ERR_REQUEST_INVALID' })
  const openapi = await call('/openapi.json')
  t.equal(openapi.status, 200, '@fastify/swagger, loaded on first use')
  t.match(JSON.parse(openapi.text), { openapi: /^3\./, info: { version: pkg.version } }, 'with the version from package.json')
  const metrics = await call('/metrics')
  t.equal(metrics.status, 200)
  t.match(metrics.text, /^skr_process_resident_memory_bytes \d+/m, 'prom-client\'s default metrics, loaded on the first scrape')
  t.match(metrics.text, /^skr_key_releases_total\{outcome="released"\} 1$/m)

  const grpcAddress = skr.output().split('\n').filter(l => l.startsWith('{'))
    .map(l => JSON.parse(l) as { msg?: string, address?: string }).find(l => l.msg === 'skr gRPC key provider listening')?.address
  t.match(grpcAddress, /^127\.0\.0\.1:\d+$/, 'gRPC listens on loopback')
  const clients = connectClients(grpcAddress ?? '')
  t.teardown(() => { clients.close() })
  t.match(await callUnary(clients.health, 'Check', { service: '' }), { status: 'SERVING' }, 'gRPC health (its proto from dist/vendor)')
  const services = await listServices(clients.reflection)
  for (const name of ['key_provider.KeyProviderService', 'keyprovider.KeyProviderService', 'grpc.health.v1.Health', 'grpc.reflection.v1alpha.ServerReflection']) {
    t.ok(services.includes(name), `reflection lists ${name}`)
  }

  const probe = await runChild(t, process.execPath, [...IMAGE_NODE_ARGS, bin, 'healthcheck', '--port', String(skr.port)], { env: { PATH: process.env.PATH ?? '' } })
  t.equal(probe.status, 0, `skr healthcheck against it\n${probe.stderr}`)
  // bin/skr.js runs dist/healthcheck.js for this command: the same exit codes as through main.js.
  const refused = await runChild(t, process.execPath, [bin, 'healthcheck', '--port', '1'], { env: { PATH: process.env.PATH ?? '' } })
  t.equal(refused.status, 1, 'unhealthy: exit 1')
  t.match(refused.stderr, /^skr healthcheck: GET http:\/\/127\.0\.0\.1:1\/status failed: .*ECONNREFUSED/)
  const misused = await runChild(t, process.execPath, [bin, 'healthcheck', '--bogus'], { env: { PATH: process.env.PATH ?? '' } })
  t.equal(misused.status, 2, 'a bad flag: exit 2')
  const version = await runChild(t, process.execPath, [bin, '--version'], { env: { PATH: process.env.PATH ?? '' } })
  t.match(version.stdout, new RegExp(`^skr ${pkg.version.replace(/\./g, '\\.')} \\(Node\\.js v\\d+`), 'skr --version reads package.json from the package root')
  // main.js (the CLI's graph) reads the error serve.js (the sidecar's graph) throws: a bad setting is exit 2, with its code.
  const badSetting = await runChild(t, process.execPath, [bin, 'serve', '-port', 'x'], { env: { PATH: process.env.PATH ?? '' } })
  t.equal(badSetting.status, 2, 'a bad setting: exit 2')
  t.match(badSetting.stderr, /^skr: ERR_CONFIG_INVALID: invalid configuration: Port must be a TCP port number/)

  const exit = await skr.stop()
  stopped = true
  t.same(exit, { code: 0, signal: null }, 'SIGTERM ends it cleanly')
  t.ok(skr.output().includes('NODE_MODULES_HOOK_ACTIVE'), 'the resolve hook was active')
  t.same(skr.output().split('\n').filter(l => l.startsWith('RESOLVED_FROM_NODE_MODULES')), [], 'nothing was resolved from a node_modules directory')
  // Node's own copy of undici (behind globalThis.FormData, fetch and the like, and node:http's
  // WebSocket exports) costs ~16 MB of RSS once loaded; nothing skr does may load it
  // (scripts/bundle.mjs: builtinHttpPlugin, formDataCheckPlugin; src/http/undici-parts.ts).
  t.match(skr.output(), /^NODE_OWN_UNDICI \[\]$/m, 'Node\'s own undici was never loaded: not by the identity SDK, undici, gRPC or the OpenAPI route')
  // The sidecar is a graph of its own (scripts/bundle.mjs): of the CLI's files, serving loads
  // only main.js and what main.js imports statically, however many routes it answered.
  const mainImports = [...readFileSync(join(dist, 'main.js'), 'utf8').matchAll(/from"\.\/([\w.-]+\.js)"|^import\s*"\.\/([\w.-]+\.js)"|;import"\.\/([\w.-]+\.js)"/gm)].map(m => m[1] ?? m[2] ?? m[3])
  const loaded = [...new Set(skr.output().split('\n').filter(l => l.startsWith('RESOLVED_FROM_DIST ')).map(l => l.slice('RESOLVED_FROM_DIST '.length)))]
  t.ok(loaded.includes('serve.js') && loaded.some(f => f.startsWith('serve-')), `skr serve ran from the sidecar graph: ${loaded.join(' ')}`)
  t.same(loaded.filter(f => !/^serve[.-]/.test(f) && !['main.js', 'require.js', ...mainImports].includes(f)), [], 'and loaded no other file of the CLI\'s graph')
  t.notOk(existsSync(join(dirname(app), 'node_modules')) || existsSync(join(app, 'node_modules')), 'and there is none beside it')
})

const shim = buildShim()
t.test('the addon loads from the bundle: a report through the /dev/sev-guest stand-in', { skip: shim.ok ? false : shim.skip }, async t => {
  if (!shim.ok) return
  const r = await runChild(t, process.execPath, [bin, 'report', '--attestation', 'sev-guest', '--json'], {
    env: { PATH: process.env.PATH ?? '', LD_PRELOAD: shim.shim }
  })
  t.equal(r.status, 0, `skr report read the device through build/Release/snp_guest.node\n${r.stderr}`)
  t.match(JSON.parse(r.stdout), { version: 3 })
})
