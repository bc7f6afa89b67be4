// Where bin/skr.js keeps Node's compile cache: NODE_COMPILE_CACHE when set (the image's read-only
// cache), else under the user's home, never in the shared temp directory, where another local
// user could plant code that V8 would run inside skr.
import t from 'tap'
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runChild, type Owner } from '../../helpers/child-process.ts'

const bin = resolve(dirname(fileURLToPath(import.meta.url)), '../../../bin/skr.js')

/** `skr --help` with only the given environment (env -i: the test runner's NODE_OPTIONS hooks stay out). */
async function help (owner: Owner, env: Record<string, string>, cwd?: string, asUser: string[] = []): Promise<number | null> {
  const vars = Object.entries({ PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }).map(([k, v]) => `${k}=${v}`)
  const command = [...asUser, '/usr/bin/env', '-i', ...vars, process.execPath, bin, '--help']
  return (await runChild(owner, command[0] as string, command.slice(1), cwd === undefined ? {} : { cwd })).status
}

const entries = (dir: string): string[] => existsSync(dir) ? readdirSync(dir) : []

t.test('without NODE_COMPILE_CACHE: under $HOME/.cache/skr, not in the temp directory', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'skr-cc-'))
  t.teardown(() => { rmSync(root, { recursive: true, force: true }) })
  const home = join(root, 'home')
  const tmp = join(root, 'tmp')
  t.equal(await help(t, { HOME: home, TMPDIR: tmp }), 0)
  t.ok(entries(join(home, '.cache/skr/compile-cache')).some(d => d.startsWith('v')), 'a cache for this Node under the home directory')
  t.notOk(existsSync(join(tmp, 'node-compile-cache')), 'nothing in the temp directory')
})

t.test('NODE_COMPILE_CACHE wins', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'skr-cc-'))
  t.teardown(() => { rmSync(root, { recursive: true, force: true }) })
  const home = join(root, 'home')
  const chosen = join(root, 'chosen')
  t.equal(await help(t, { HOME: home, NODE_COMPILE_CACHE: chosen }), 0)
  t.ok(entries(chosen).some(d => d.startsWith('v')), 'the cache is where NODE_COMPILE_CACHE says')
  t.notOk(existsSync(join(home, '.cache/skr')), 'and not under the home directory')
})

t.test('NODE_DISABLE_COMPILE_CACHE turns it off', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'skr-cc-'))
  t.teardown(() => { rmSync(root, { recursive: true, force: true }) })
  const home = join(root, 'home')
  t.equal(await help(t, { HOME: home, NODE_DISABLE_COMPILE_CACHE: '1' }), 0)
  t.notOk(existsSync(join(home, '.cache/skr/compile-cache')), 'no cache written')
})

t.test('HOME empty: no cache, and none relative to the working directory', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'skr-cc-'))
  t.teardown(() => { rmSync(root, { recursive: true, force: true }) })
  t.equal(await help(t, { HOME: '' }, root), 0)
  t.notOk(existsSync(join(root, '.cache')), 'nothing under the working directory')
})

// os.homedir() throws for a uid with no passwd entry and no HOME; only root can switch to one.
const UNNAMED_UID = 54321
const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find(p => existsSync(p))
const canSwitch = process.getuid?.() === 0 && setpriv !== undefined && (await runChild(t, 'getent', ['passwd', String(UNNAMED_UID)])).status === 2

t.test('a uid with no passwd entry and no HOME: starts, without a cache', {
  skip: canSwitch ? false : `needs root, setpriv and getent, and uid ${UNNAMED_UID} without a passwd entry`
}, async (t) => {
  const uid = UNNAMED_UID
  const root = mkdtempSync(join(tmpdir(), 'skr-cc-'))
  t.teardown(() => { rmSync(root, { recursive: true, force: true }) })
  chmodSync(root, 0o777)
  t.equal(await help(t, {}, root, [setpriv as string, `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups']), 0, 'skr --help exits 0')
  t.same(readdirSync(root), [], 'and wrote nothing')
})
