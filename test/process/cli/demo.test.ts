// `npm run demo` is the README's main job: run it as a user would (a child process) and check
// that it released the matching key and was refused the other, and that bad flags exit 2.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runChild } from '../../helpers/child-process.ts'
import { TEST_SHEDDING_OFF } from '../../helpers/shedding.ts'
import { repoRoot } from '../../helpers/vectors.ts'

// src/main.ts, as `npm run demo` runs it (bin/skr.js would prefer a dist/ left by an earlier build).
const bin = join(repoRoot, 'src', 'main.ts')
const cache = mkdtempSync(join(tmpdir(), 'skr-demo-cache-'))
t.teardown(() => { rmSync(cache, { recursive: true, force: true }) })
// A clean environment: the demo sets up everything it needs itself.
// Load shedding off: the demo's sidecar shares its event loop with the emulators, and a busy
// machine (two test runs at once) delays it past the 1 s default.
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: cache, XDG_CACHE_HOME: cache, ...TEST_SHEDDING_OFF }

t.test('skr demo --json: the bound key is released, the other refused', async t => {
  const r = await runChild(t, process.execPath, [bin, 'demo', '--json'], { env })
  t.equal(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout) as { ok: boolean, hostData: string, claims: Record<string, unknown>, released: { status: number, jwk: { kty: string, k: string } }, refused: { status: number, body: { code: string } } }
  t.equal(out.ok, true)
  t.equal(out.released.status, 200)
  t.equal(out.released.jwk.kty, 'oct')
  t.equal(Buffer.from(out.released.jwk.k, 'base64url').length, 32)
  t.equal(out.claims['x-ms-sevsnpvm-hostdata'], out.hostData, 'the token carries the simulated HOST_DATA')
  t.equal(out.refused.status, 403)
  t.equal(out.refused.body.code, 'ERR_KEY_RELEASE_DENIED')
  // The cache directory is fresh: the chain was generated, and said so on stderr, not stdout.
  t.match(r.stderr, `skr demo: generating the emulated AMD certificate chain (RSA-4096 keys: a few seconds, once; cached in ${join(cache, 'skr')})\n`)
  t.match(r.stderr, /skr demo: emulated AMD certificate chain ready \(\d+\.\d s\)\n/)
})

t.test('skr demo with a bad flag exits 2 with one line', async t => {
  const r = await runChild(t, process.execPath, [bin, 'demo', '--bogus'], { env })
  t.equal(r.status, 2)
  t.equal(r.stderr.trim(), 'skr demo: unknown flag --bogus')
})
