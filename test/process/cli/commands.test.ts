// `skr` as a child process (src/main.ts): --help and --version load no command module (so they
// cannot cost `serve` anything), and an unknown command exits 2 while skr.sh's positional
// arguments still reach the config. The tables of the command line: test/unit/cli/commands.test.ts.
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { usage, versionLine } from '../../../src/cli/commands.ts'
import { runChild, type Owner } from '../../helpers/child-process.ts'
import { repoRoot } from '../../helpers/vectors.ts'

// A child without the test runner's NODE_OPTIONS (its loader hooks would show up as loaded modules).
async function skr (owner: Owner, args: string[], hook?: string): Promise<{ status: number | null, stdout: string, stderr: string }> {
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmpdir() }
  const r = await runChild(owner, process.execPath, [...(hook === undefined ? [] : ['--import', hook]), join(repoRoot, 'src/main.ts'), ...args], { env })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

t.test('skr --help and --version run without loading any command or the server', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'skr-commands-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const record = join(dir, 'loaded.txt')
  // Records every module URL the process loads (synchronous hooks: Node >= 22.15).
  const hook = join(dir, 'hook.mjs')
  writeFileSync(hook, [
    "import { registerHooks } from 'node:module'",
    "import { appendFileSync } from 'node:fs'",
    `registerHooks({ load (url, context, next) { appendFileSync(${JSON.stringify(record)}, url + '\\n'); return next(url, context) } })`
  ].join('\n'))
  for (const args of [['--help'], ['--version'], ['-v']]) {
    writeFileSync(record, '')
    const r = await skr(t, args, hook)
    t.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`)
    const loaded = readFileSync(record, 'utf8').split('\n').filter(u => u.includes('/src/'))
    t.ok(loaded.some(u => u.endsWith('/src/main.ts')), 'the hook sees the entry point')
    t.same(loaded.map(u => u.slice(u.indexOf('/src/'))).sort(), ['/src/cli/commands.ts', '/src/errors/sidecar-error.ts', '/src/main.ts', '/src/package-root.ts'], `${args.join(' ')} loads only the entry point`)
    t.notOk(readFileSync(record, 'utf8').includes('node_modules'), 'and no dependency')
  }
  const help = await skr(t, ['--help'])
  t.equal(help.stdout, usage() + '\n')
  t.equal((await skr(t, ['--version'])).stdout, versionLine() + '\n')
  t.equal((await skr(t, ['help', 'wrap'])).status, 0)
  t.match((await skr(t, ['help', 'wrap'])).stdout, /^usage: skr wrap/)
})

t.test('skr bogus: "unknown command", exit 2; skr.sh\'s arguments still reach the config', async t => {
  const bogus = await skr(t, ['bogus'])
  t.equal(bogus.status, 2)
  t.equal(bogus.stderr, 'skr: unknown command "bogus". Run `skr --help` for the commands.\n')
  t.equal(bogus.stdout, '')
  const typo = await skr(t, ['emulat', '--port', '0'])
  t.equal(typo.status, 2)
  t.match(typo.stderr, /Did you mean `skr emulate`\?/)
  // e30 is base64 of {}: a valid (empty) SkrSideCarArgs, so the bad port is what stops start-up.
  const positional = await skr(t, ['e30', 'not-a-port'])
  t.equal(positional.status, 2)
  t.match(positional.stderr, /^skr: ERR_CONFIG_INVALID: .*Port must be/)
  const notJson = await skr(t, ['SGVsbG8sIHdvcmxk'])
  t.equal(notJson.status, 2)
  t.match(notJson.stderr, /ERR_CONFIG_INVALID: .*SkrSideCarArgs is not base64-encoded JSON/, 'base64 that is not JSON is still SkrSideCarArgs, as before')
})
