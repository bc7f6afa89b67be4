// Fills Node's compile cache (NODE_COMPILE_CACHE) for the image, at image build time, with the
// runtime's own node: a container starts with an empty /tmp, so without a cache shipped in the
// image every start parses and compiles skr and its dependencies again (~70 ms more start-up on
// the build machine; bench/startup.ts --no-compile-cache).
//
// 1. Imports every file of the bundle (dist/, scripts/bundle.mjs) but its two entries (main.js and
//    healthcheck.js run on import), so the chunks skr loads on first use (the identity SDK, gRPC,
//    undici, the OpenAPI generator, the emulators of `skr demo`) are cached too.
// 2. Runs `skr serve` (simulated attestation, no upstream reachable) until /status answers, asks
//    for the cheap local endpoints, runs `skr healthcheck` against it (the exec probes' entry), and
//    stops it with SIGTERM: Node writes the cache at exit, and then it also holds the functions
//    start-up ran, not only module top levels.
//
// Node keys the cache directory by Node version, V8 flags and uid, so the Dockerfile runs this
// once per user the image runs as, with the runtime's NODE_OPTIONS. Exits 1 (failing the image
// build) when serve does not start and stop cleanly or nothing was cached.
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import module from 'node:module'
import { createServer } from 'node:net'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const app = resolve(process.argv[2] ?? '/app')
const cacheDir = process.env.NODE_COMPILE_CACHE
const say = (line) => { process.stderr.write(`warm-compile-cache: ${line}\n`) }

function jsFiles (dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap(e => {
    const path = join(dir, e.name)
    return e.isDirectory() ? jsFiles(path) : e.name.endsWith('.js') ? [path] : []
  })
}

async function freePort () {
  return await new Promise((done, fail) => {
    const server = createServer().once('error', fail).listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => { done(port) })
    })
  })
}

async function get (port, path, body) {
  return await new Promise((done) => {
    const options = { host: '127.0.0.1', port, path, timeout: 2000, ...(body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' } }) }
    const req = request(options, (res) => { res.resume().once('end', () => { done(res.statusCode ?? 0) }) })
    req.once('timeout', () => { req.destroy() }).once('error', () => { done(0) }).end(body)
  })
}

async function serveOnce (port, work) {
  const sidecarArgs = { certcache: { endpoint_type: 'LocalTHIM', endpoint: '127.0.0.1:1/metadata/THIM/amd/certification' } }
  const child = spawn(process.execPath, [join(app, 'bin/skr.js'), 'serve'], {
    env: {
      ...process.env,
      Port: String(port),
      LogLevel: 'error',
      SKR_ATTESTATION: 'simulated',
      SKR_SIMULATED_CACHE_DIR: join(work, 'chain'),
      UVM_SECURITY_CONTEXT_DIR: join(work, 'no-security-context'),
      SkrSideCarArgs: Buffer.from(JSON.stringify(sidecarArgs)).toString('base64')
    },
    stdio: ['ignore', 'ignore', 'inherit']
  })
  const exited = new Promise(done => { child.once('exit', (code, signal) => { done(signal ?? code) }) })
  let up = false
  for (let i = 0; i < 300 && !up && child.exitCode === null; i++) {
    up = await get(port, '/status') === 200
    if (!up) await new Promise(done => setTimeout(done, 50))
  }
  if (up) for (const path of ['/livez', '/readyz', '/metrics', '/openapi.json']) await get(port, path)
  // An empty release request is refused by its body schema (400), which loads and compiles the
  // validator (Ajv, ~100 modules) that the first real release would otherwise compile on the spot.
  if (up) await get(port, '/key/release', '{}')
  const probe = up ? spawnSync(process.execPath, [join(app, 'bin/skr.js'), 'healthcheck', '--port', String(port)], { env: process.env, encoding: 'utf8', timeout: 30_000 }) : null
  if (probe !== null && probe.status !== 0) say(`skr healthcheck exited ${String(probe.status)}: ${probe.stderr.trim()}`)
  child.kill('SIGTERM')
  const timer = setTimeout(() => { child.kill('SIGKILL') }, 15_000)
  const end = await exited
  clearTimeout(timer)
  return { up, end, probed: probe?.status === 0 }
}

async function main () {
  if (cacheDir === undefined || cacheDir === '') {
    say('NODE_COMPILE_CACHE is not set: nothing to fill')
    return 1
  }
  // This user's directory (Node's tag: version, V8 flags, uid), where `skr serve` with the same
  // environment writes too. Only its entries count: the fill for a second uid must not pass on
  // the first one's.
  const ownDir = module.getCompileCacheDir()
  if (ownDir === undefined) {
    say(`the compile cache is not enabled at ${cacheDir} (unusable directory, or NODE_DISABLE_COMPILE_CACHE)`)
    return 1
  }
  const dist = join(app, 'dist')
  const entries = new Set(['main.js', 'healthcheck.js'].map(name => join(dist, name)))
  let imported = 0
  for (const file of jsFiles(dist)) {
    if (entries.has(file)) continue
    await import(pathToFileURL(file).href)
    imported++
  }
  const work = mkdtempSync(join(dirname(cacheDir), '.warm-'))
  try {
    const { up, end, probed } = await serveOnce(await freePort(), work)
    if (!up || end !== 0 || !probed) {
      say(`skr serve ${up ? 'answered /status' : 'never answered /status'}, ${probed ? 'was' : 'was not'} found healthy by skr healthcheck, and ended with ${String(end)}`)
      return 1
    }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
  // This process's own entries (step 1) are written when it exits, after this count.
  const cached = readdirSync(ownDir).length
  if (cached === 0) {
    say(`skr serve left no cache entries in ${ownDir}`)
    return 1
  }
  say(`${imported} modules of ${relative(app, dist)}/ imported; skr serve started, probed and stopped; ${cached} entries in ${relative(cacheDir, ownDir)}`)
  return 0
}

if (fileURLToPath(import.meta.url) === resolve(process.argv[1] ?? '')) process.exitCode = await main()
