#!/usr/bin/env node
// `npm test`: tap with its configuration from package.json, in a .tap directory of this run's own.
//
// tap keeps every run's coverage data in <checkout>/.tap/coverage and deletes that directory when
// a run starts, so any other tap started in the same checkout meanwhile (another `npm test`, or a
// targeted `tap test/unit/x.test.ts`) deletes the coverage this run has collected so far, and this
// run then fails its coverage threshold. Where it can (Linux, as root, with util-linux's unshare),
// this script runs tap in a private mount namespace where a fresh temporary directory is
// bind-mounted over .tap: tap and every test process it starts see only this run's data, and
// nobody else's tap can delete it. Elsewhere (or with SKR_TEST_SHARED_TAP_DIR=1) tap runs as is,
// with the shared .tap.
//
// Usage (through scripts/node24.mjs): node scripts/run-tap.mjs [tap arguments...]
// (Not named test.mjs: tap's default globs would take that for a test file and run it, and with
// it the whole suite again, in every run.)
import { spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const tap = join(root, 'node_modules', '.bin', 'tap')
const args = process.argv.slice(2)
const shared = join(root, '.tap')

if (process.env.TAP_CHILD_ID !== undefined) {
  process.stderr.write('run-tap.mjs: refusing to start a tap run from inside a tap test\n')
  process.exit(1)
}

// bin/skr.js runs ./dist when it exists (the production layout), so with a leftover `npm run build`
// every test that starts skr as a process would test that bundle, not src/ (and report its
// coverage). The tests build the bundles they need in temporary directories.
if (existsSync(join(root, 'dist'))) {
  process.stderr.write(`run-tap.mjs: ${join(root, 'dist')} exists, and bin/skr.js would run it instead of src/ in every test that starts skr: remove it (rm -rf dist) and run again\n`)
  process.exit(1)
}

// The probe does what the run does (a private mount namespace and a bind mount), so a host that
// allows unshare but not mount falls back to the shared .tap instead of failing the run.
function canIsolate () {
  if (process.platform !== 'linux' || process.getuid?.() !== 0 || process.env.SKR_TEST_SHARED_TAP_DIR === '1') return false
  const dir = mkdtempSync(join(tmpdir(), 'skr-tap-probe-'))
  try {
    const probe = spawnSync('unshare', ['--mount', '/bin/sh', '-c', 'mount --bind "$1" "$1"', 'sh', dir], { stdio: 'ignore' })
    return probe.error === undefined && probe.status === 0
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

let r
if (canIsolate()) {
  mkdirSync(shared, { recursive: true })
  const own = mkdtempSync(join(tmpdir(), 'skr-tap-'))
  // Ctrl-C and a CI's SIGTERM reach tap (it is in the same process group or is told by the runner);
  // this process waits for it and then still removes its directory.
  const ignore = () => {}
  process.on('SIGINT', ignore)
  process.on('SIGTERM', ignore)
  try {
    // unshare --mount makes the new namespace's mounts private: the bind mount is seen by this tap
    // and its descendants only. sh's $0 is a placeholder; "$1" and "$2" are the two directories,
    // and after `shift 2` "$@" is node, tap and tap's arguments.
    r = spawnSync('unshare', ['--mount', '/bin/sh', '-c', 'mount --bind "$1" "$2" && shift 2 && exec "$@"', 'sh', own, shared, process.execPath, tap, ...args],
      { stdio: 'inherit', cwd: root })
    // The results, the coverage report and the process records are still wanted where tap keeps
    // them (tap replay, the HTML report, --changed): they replace the shared ones, coverage data excluded.
    for (const dir of ['test-results', 'report', 'processinfo']) {
      try {
        cpSync(join(own, dir), join(`${shared}`, `${dir}.new`), { recursive: true })
        rmSync(join(shared, dir), { recursive: true, force: true })
        renameSync(join(shared, `${dir}.new`), join(shared, dir))
      } catch {
        // not produced by this run
      }
    }
  } finally {
    rmSync(own, { recursive: true, force: true })
  }
} else {
  r = spawnSync(process.execPath, [tap, ...args], { stdio: 'inherit', cwd: root })
}
if (r.error) {
  process.stderr.write(`skr: ${r.error.message}\n`)
  process.exit(1)
}
process.exit(r.status ?? (r.signal ? 1 : 0))
