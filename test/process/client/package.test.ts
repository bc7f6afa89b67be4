// The client as an app container gets it: `npm pack` of packages/client (its prepack builds it),
// unpacked into a consumer's node_modules with no access to this checkout's. Checks what an
// install would bring (no dependencies, no install scripts, kilobytes), that its types resolve
// under `moduleResolution` nodenext and bundler (and catch a misuse), and that the packed
// JavaScript talks to a sidecar.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { repoRoot } from '../../helpers/vectors.ts'
import { copyCheckout } from '../../helpers/checkout-copy.ts'

const work = mkdtempSync(join(tmpdir(), 'skr-client-pack-'))
t.teardown(() => { rmSync(work, { recursive: true, force: true }) })
// Packed from a copy of the checkout: its prepack writes packages/client/dist.
const checkout = copyCheckout('skr-client-src-')
t.teardown(checkout.remove)
// npm runs the package's prepack with this Node first on PATH (the machine's may be older).
const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' }

const packed = spawnSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: join(checkout.root, 'packages/client'), encoding: 'utf8', env, timeout: 240_000, killSignal: 'SIGKILL' })
t.equal(packed.status, 0, `npm pack succeeds\n${packed.stderr}`)
const info = (JSON.parse(packed.stdout) as Array<{ filename: string, files: Array<{ path: string }>, size: number }>)[0]
const tarball = join(work, info?.filename ?? 'missing.tgz')
const consumer = join(work, 'consumer')
const installed = join(consumer, 'node_modules', 'skr-sidecar-client')
mkdirSync(installed, { recursive: true })
const untar = spawnSync('tar', ['-xzf', tarball, '-C', installed, '--strip-components', '1'], { timeout: 60_000, killSignal: 'SIGKILL' })
if (untar.status !== 0) throw new Error(`tar failed: ${String(untar.stderr)}`)

t.test('what an install brings: the built files, no dependencies, no install scripts, kilobytes', async t => {
  const files = (info?.files ?? []).map(f => f.path).sort()
  t.ok(files.includes('dist/index.js') && files.includes('dist/index.d.ts'), 'the built entry and its types')
  t.ok(files.includes('README.md') && files.includes('LICENSE') && files.includes('package.json'))
  t.notOk(files.some(f => f.startsWith('src/') || f.endsWith('.map')), 'no sources or maps')
  const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as Record<string, unknown>
  t.same(manifest['dependencies'], undefined, 'no dependencies')
  t.same(manifest['peerDependencies'], undefined)
  const scripts = (manifest['scripts'] ?? {}) as Record<string, string>
  t.same(['preinstall', 'install', 'postinstall'].filter(s => s in scripts), [], 'no install scripts')
  t.ok((info?.size ?? Infinity) < 64 * 1024, `the tarball is small (${info?.size ?? '?'} bytes)`)
  const size = readdirSync(join(installed, 'dist')).reduce((sum, f) => sum + statSync(join(installed, 'dist', f)).size, 0)
  t.ok(size < 128 * 1024, `installed dist is ${size} bytes`)
})

const CONSUMER = `import { createSkrClient, isSkrClientError, CLIENT_ERROR_CODES, type SkrClient, type ReleasedKey } from 'skr-sidecar-client'
import type { KeyObject } from 'node:crypto'
export async function use (): Promise<KeyObject | string> {
  const skr: SkrClient = createSkrClient({ baseUrl: 'http://localhost:8080', retries: 1 })
  try {
    const released: ReleasedKey = await skr.releaseKey({ maaEndpoint: 'm.attest.azure.net', akvEndpoint: 'v.vault.azure.net', kid: 'k' })
    return released.key
  } catch (err) {
    if (isSkrClientError(err)) return err.code === CLIENT_ERROR_CODES.timeout ? 'timeout' : err.code
    throw err
  }
}
`

function typecheck (resolution: 'nodenext' | 'bundler', source: string): { status: number | null, output: string } {
  const dir = join(consumer, resolution)
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'use.ts'), source)
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      strict: true,
      noEmit: true,
      target: 'es2023',
      module: resolution === 'nodenext' ? 'nodenext' : 'esnext',
      moduleResolution: resolution,
      types: ['node'],
      typeRoots: [join(repoRoot, 'node_modules/@types')],
      skipLibCheck: false
    },
    files: ['use.ts']
  }))
  // A package.json of type module, as an ESM app would have (nodenext needs it for `import`).
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
  const r = spawnSync(process.execPath, [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', join(dir, 'tsconfig.json')], { encoding: 'utf8', timeout: 240_000, killSignal: 'SIGKILL' })
  return { status: r.status, output: `${r.stdout}${r.stderr}` }
}

t.test('its types resolve under moduleResolution nodenext and bundler', async t => {
  for (const resolution of ['nodenext', 'bundler'] as const) {
    const ok = typecheck(resolution, CONSUMER)
    t.equal(ok.status, 0, `${resolution}: a correct consumer typechecks\n${ok.output}`)
    const wrong = typecheck(resolution, CONSUMER.replace("kid: 'k'", 'kid: 42'))
    t.not(wrong.status, 0, `${resolution}: and a misuse is caught`)
    t.match(wrong.output, /TS2322: Type 'number' is not assignable to type 'string'/)
  }
})

t.test('the packed JavaScript talks to a sidecar', async t => {
  const server = createServer((_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }).end('{"message":"Status OK"}') })
  await new Promise<void>(resolve => { server.listen(0, '127.0.0.1', resolve) })
  t.teardown(() => { server.close() })
  const mod = await import(pathToFileURL(join(installed, 'dist/index.js')).href) as { createSkrClient: (o: { baseUrl: string }) => { status: () => Promise<{ message: string }> } }
  const client = mod.createSkrClient({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })
  t.same(await client.status(), { message: 'Status OK' })
})
