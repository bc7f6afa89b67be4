// `npm test` (scripts/run-tap.mjs) refuses to run while ./dist exists: bin/skr.js would run that
// bundle instead of src/ in every test that starts skr, and the suite would test (and count the
// coverage of) a stale build. Run from a copy of the script, so no tap starts.
import t from 'tap'
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runChild } from '../../helpers/child-process.ts'

const script = fileURLToPath(new URL('../../../scripts/run-tap.mjs', import.meta.url))

t.test('a checkout with dist/: refused, with what to do', async t => {
  const root = mkdtempSync(join(tmpdir(), 'skr-run-tap-'))
  t.teardown(() => { rmSync(root, { recursive: true, force: true }) })
  mkdirSync(join(root, 'scripts'))
  cpSync(script, join(root, 'scripts', 'run-tap.mjs'))
  mkdirSync(join(root, 'dist'))
  // Not TAP_CHILD_ID (the script refuses to start inside a tap test before it looks at dist/).
  const run = await runChild(t, process.execPath, [join(root, 'scripts', 'run-tap.mjs')], { env: { PATH: process.env['PATH'] ?? '' } })
  t.equal(run.status, 1)
  t.match(run.stderr, /dist exists, and bin\/skr\.js would run it instead of src\/ .*rm -rf dist/)
})
