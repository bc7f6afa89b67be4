// The command line's first argument: a command, help or version, an unknown command, or (the
// reference's invocations, unchanged) flags and skr.sh's positional arguments for `serve`. Both
// sides of the line between "a command that does not exist" and "skr.sh's $1" are tables. Also:
// the --help table matches each module's own summary, every command module is registered, and
// --help and --version load no command module (so they cannot cost `serve` anything either: run
// as a child process in test/process/cli/commands.test.ts).
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { COMMANDS, isCommandWord, resolveCommand, suggestCommand, unknownCommandMessage, usage, versionLine, type CommandName, type Resolution } from '../../../src/cli/commands.ts'
import { repoRoot } from '../../helpers/vectors.ts'

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64')
// The reference's documented value: THIM through the local endpoint.
const sidecarArgs = { certcache: { endpoint_type: 'LocalTHIM', endpoint: '169.254.169.254/metadata/THIM/amd/certification' } }

const serve = (args: readonly string[]): Resolution => ({ kind: 'run', name: 'serve', args })
const unknown = (word: string, suggestion: CommandName | null): Resolution => ({ kind: 'unknown', word, suggestion })

t.test('the reference\'s invocations mean serve, unchanged', async t => {
  const rows: Array<[string, string[]]> = [
    ['no arguments', []],
    ['flags only, Go-style', ['-port', '8080', '-base64', b64(sidecarArgs)]],
    ['flags only, kebab-case', ['--server-type', 'grpc', '--log-level=debug']],
    ['skr.sh: base64 SkrSideCarArgs and Port', [b64(sidecarArgs), '8080']],
    ['skr.sh: base64url, unpadded', [Buffer.from(JSON.stringify(sidecarArgs)).toString('base64url'), '8080']],
    ['skr.sh: base64 of JSON with leading whitespace', [b64('x').slice(0, 0) + Buffer.from(' \n{"certcache":{}}').toString('base64')]],
    ['skr.sh: raw JSON', [JSON.stringify(sidecarArgs), '8080']],
    ['skr.sh: base64 of {} is all lowercase (e30), and still a value', ['e30', '8080']],
    ['skr.sh: empty $1 (SkrSideCarArgs from the environment) and a port', ['', '8080']],
    ['skr.sh: a port where SkrSideCarArgs belongs (refused later, by the config)', ['8080']],
    ['base64 that is not JSON (refused later as "not base64-encoded JSON", as before)', ['SGVsbG8sIHdvcmxk']],
    ['-- then positionals', ['--', b64(sidecarArgs)]]
  ]
  for (const [name, argv] of rows) t.same(resolveCommand(argv), serve(argv), name)
})

t.test('-infile anywhere means wrap, as the reference binary does', async t => {
  for (const argv of [['-infile', 'a', '-keypath', 'k', '-outfile', 'o'], ['-keypath', 'k', '--infile=a', '-outfile', 'o'], ['-INFILE', 'a']]) {
    t.same(resolveCommand(argv), { kind: 'run', name: 'wrap', args: argv }, argv.join(' '))
  }
})

t.test('a command name runs that command with the rest', async t => {
  t.same(resolveCommand(['demo', '--json']), { kind: 'run', name: 'demo', args: ['--json'] })
  t.same(resolveCommand(['serve', '-port', '1']), serve(['-port', '1']))
  t.same(resolveCommand(['emulate']), { kind: 'run', name: 'emulate', args: [] })
  t.same(resolveCommand(['wrap', '-infile', 'a']), { kind: 'run', name: 'wrap', args: ['-infile', 'a'] }, 'wrap by name keeps -infile for itself')
  for (const name of Object.keys(COMMANDS)) t.same(resolveCommand([name]), { kind: 'run', name, args: [] }, name)
})

t.test('help and version', async t => {
  for (const first of ['-h', '-help', '--help', 'help']) t.same(resolveCommand([first]), { kind: 'help', topic: null }, first)
  t.same(resolveCommand(['--help', 'demo']), { kind: 'help', topic: null }, 'a flag asks for the general help whatever follows')
  t.same(resolveCommand(['help', 'emulate']), { kind: 'help', topic: 'emulate' })
  t.same(resolveCommand(['help', 'nope']), unknown('nope', null))
  for (const first of ['-v', '-version', '--version', 'version']) t.same(resolveCommand([first]), { kind: 'version' }, first)
})

t.test('a word that cannot be skr.sh\'s $1 is an unknown command, with a suggestion when one is close', async t => {
  const rows: Array<[string[], CommandName | null]> = [
    [['bogus'], null],
    [['emulat'], 'emulate'],
    [['emualte'], 'emulate'],
    [['healthchek'], 'healthcheck'],
    [['imp'], 'import-key'],
    [['import'], 'import-key'],
    [['Demo'], 'demo'],
    [['SERVE'], 'serve'],
    [['start'], null],
    [['my-command-2'], null],
    [['bogus', '-infile', 'a'], null],
    [['bogus', '8080'], null]
  ]
  for (const [argv, suggestion] of rows) t.same(resolveCommand(argv), unknown(argv[0] as string, suggestion), argv.join(' '))
})

t.test('isCommandWord: no base64 or JSON form of an object is a command word', async t => {
  const objects = [{}, { certcache: {} }, sidecarArgs, { identity: { client_id: 'abc' } }, { maaconfig: { user_agent: 'x' } }]
  const spellings = (o: unknown): string[] => {
    const json = JSON.stringify(o)
    return [json, ` ${json}`, `\n${json}`, JSON.stringify(o, null, 2)].flatMap(text => [
      text, Buffer.from(text).toString('base64'), Buffer.from(text).toString('base64url'), Buffer.from(text).toString('base64').replace(/=+$/, '')
    ])
  }
  for (const o of objects) {
    for (const s of spellings(o)) t.notOk(isCommandWord(s), `${s.slice(0, 30)}… stays a positional`)
  }
  for (const s of ['', '8080', '0', '-port', '--help']) t.notOk(isCommandWord(s), JSON.stringify(s))
  for (const name of Object.keys(COMMANDS)) t.ok(isCommandWord(name), name)
})

t.test('suggestCommand', async t => {
  t.equal(suggestCommand('verfy'), 'verify')
  t.equal(suggestCommand('polcy'), 'policy')
  t.equal(suggestCommand('tokn'), 'token')
  t.equal(suggestCommand('xyzzy'), null)
  t.equal(suggestCommand('zz'), null)
  t.equal(suggestCommand('ex'), null, 'two letters are too few for a prefix guess (explain? emulate?)')
  t.equal(suggestCommand('exp'), 'explain')
})

t.test('the unknown-command message', async t => {
  t.equal(unknownCommandMessage('emulat', 'emulate'), 'skr: unknown command "emulat". Did you mean `skr emulate`? Run `skr --help` for the commands.')
  t.equal(unknownCommandMessage('bogus', null), 'skr: unknown command "bogus". Run `skr --help` for the commands.')
  t.equal(unknownCommandMessage('a'.repeat(50), null), `skr: unknown command "${'a'.repeat(40)}…". Run \`skr --help\` for the commands.`)
})

t.test('--help lists every command with its module\'s own summary', async t => {
  const text = usage()
  t.match(text, /^usage: skr \[command\] \[flags\]\n/)
  for (const [name, entry] of Object.entries(COMMANDS)) {
    const mod = await entry.load()
    t.equal(entry.summary, mod.summary, `${name}: the table's summary is the module's`)
    t.type(mod.run, 'function', `${name} exports run`)
    t.match(text, new RegExp(`^  ${name} +${entry.summary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'), `${name} listed`)
  }
  t.match(text, /skr -port 8080 -base64 <SkrSideCarArgs>/, 'and the reference\'s invocations')
})

t.test('every command module in src/cli is registered', async t => {
  const dir = join(repoRoot, 'src', 'cli')
  for (const file of readdirSync(dir).filter(f => f.endsWith('.ts'))) {
    const mod = await import(pathToFileURL(join(dir, file)).href) as Record<string, unknown>
    if (typeof mod.run !== 'function' || typeof mod.summary !== 'string') continue
    t.ok(Object.hasOwn(COMMANDS, file.replace(/\.ts$/, '')), `${file} exports run and summary: it is a command`)
  }
})

t.test('the version is package.json\'s', async t => {
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }
  t.equal(versionLine(), `skr ${pkg.version} (Node.js ${process.version})`)
})
