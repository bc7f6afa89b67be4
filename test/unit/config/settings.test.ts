// config/settings.ts is the one list of skr's settings: SERVE_FLAGS is derived from it, every
// environment variable loadConfig reads is declared in it (by a scan of config.ts's source and by
// watching what loadConfig actually reads; the standard egress-proxy variables excepted), the
// defaults it shows match loadConfig's, and the README's configuration table is rendered from it
// (the drift check; scripts/gen-config-doc.mjs rewrites it, and test/process/config/settings.test.ts
// runs its --check).
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig, SERVE_FLAGS, type Config } from '../../../src/config/config.ts'
import { envName, flagName, SETTING_BY_KEY, SETTINGS, type SettingKey } from '../../../src/config/settings.ts'
import type { Setting } from '../../../src/config/setting.ts'
import { serveFlags } from '../../../src/config/serve-flags.ts'
import { renderSettingsTable, replaceSettingsBlock, SETTINGS_BEGIN, SETTINGS_END } from '../../../src/config/settings-table.ts'
import { PROXY_ENV_VARIABLES } from '../../../src/http/proxy.ts'
import { repoRoot } from '../../helpers/vectors.ts'

const declaredEnv = new Set(SETTINGS.map((s: Setting) => s.env).filter((e): e is string => e !== undefined))

/** Every environment variable name config.ts's source reads as env.NAME or env['NAME']. */
function envNamesInSource (): Set<string> {
  const source = readFileSync(join(repoRoot, 'src/config/config.ts'), 'utf8')
  const names = new Set<string>()
  for (const m of source.matchAll(/\benv\.([A-Za-z_][A-Za-z0-9_]*)\b/g)) names.add(m[1] as string)
  for (const m of source.matchAll(/\benv\[\s*['"]([^'"]+)['"]\s*\]/g)) names.add(m[1] as string)
  return names
}

/** The names loadConfig looks up in the environment it is given. */
function envNamesRead (argv: readonly string[] = []): Set<string> {
  const seen = new Set<string>()
  const env = new Proxy<Record<string, string | undefined>>({}, {
    get: (_target, name) => {
      if (typeof name === 'string') seen.add(name)
      return undefined
    }
  })
  loadConfig(argv, env)
  return seen
}

t.test('keys, flags, aliases and variables are unique; every setting is described', async t => {
  const keys = SETTINGS.map(s => s.key)
  t.equal(new Set(keys).size, keys.length, 'keys unique')
  const envs = SETTINGS.flatMap((s: Setting) => (s.env === undefined ? [] : [s.env]))
  t.equal(new Set(envs).size, envs.length, 'environment variables unique')
  const spellings = SETTINGS.flatMap((s: Setting) => (s.flag === undefined ? [] : [s.flag, ...(s.aliases ?? [])])).map(n => n.toLowerCase())
  t.equal(new Set(spellings).size, spellings.length, 'flag spellings unique (case-insensitively, as the parser matches them)')
  for (const s of SETTINGS as readonly Setting[]) {
    t.ok(s.env !== undefined || s.flag !== undefined, `${s.key} can be set somehow`)
    t.ok(s.default.trim() !== '', `${s.key} shows a default`)
    t.ok(s.description.trim() !== '', `${s.key} is described`)
    t.notMatch(s.description, /\n/, `${s.key}: one line`)
    if (s.flag !== undefined) t.ok((s.help ?? '').trim() !== '', `${s.key} has --help text`)
    t.equal(SETTING_BY_KEY[s.key as SettingKey], s)
  }
})

t.test('SERVE_FLAGS is derived from the settings: same flags, aliases and types', async t => {
  t.same(SERVE_FLAGS, serveFlags(), 'no second list')
  const flagged = (SETTINGS as readonly Setting[]).filter(s => s.flag !== undefined)
  t.same(Object.keys(SERVE_FLAGS).sort(), flagged.map(s => s.flag).sort(), 'every setting flag is a serve flag and vice versa')
  for (const s of flagged) {
    const spec = SERVE_FLAGS[s.flag as string]
    t.equal(spec?.type, s.type ?? 'string', `${s.flag} type`)
    t.same(spec?.aliases ?? [], s.aliases ?? [], `${s.flag} aliases`)
    if (s.env !== undefined) t.match(spec?.help, `env ${s.env}`, `--help of ${s.flag} names ${s.env}`)
  }
  t.equal(SERVE_FLAGS.port?.help, 'TCP port to listen on (env Port; default 8080)')
  t.equal(SERVE_FLAGS.base64?.help, 'base64 JSON with certcache, identity and maaconfig (env SkrSideCarArgs)', 'no default shown when there is none')
  t.equal(flagName('serverType'), 'server_type')
  t.equal(envName('serverType'), 'ServerType')
  t.throws(() => flagName('tsmRoot'), TypeError)
})

t.test('every variable loadConfig reads is declared, and every declared one is read', async t => {
  const inSource = envNamesInSource()
  for (const name of inSource) t.ok(declaredEnv.has(name), `config.ts reads ${name}: declared in settings.ts`)
  const read = envNamesRead()
  t.ok(read.size > 0)
  // The egress-proxy variables are standard conventions parsed into config.proxy, not skr settings:
  // read, but deliberately absent from settings.ts and so from the README's table.
  const proxyVariables = new Set(PROXY_ENV_VARIABLES)
  for (const name of proxyVariables) {
    t.ok(read.has(name), `loadConfig reads the proxy variable ${name}`)
    t.notOk(declaredEnv.has(name), `${name} is not declared as a setting`)
  }
  for (const name of read) t.ok(declaredEnv.has(name) || proxyVariables.has(name), `loadConfig reads ${name}: declared in settings.ts`)
  for (const name of declaredEnv) t.ok(read.has(name), `${name} is declared: loadConfig reads it`)
  // Flags do not stop the environment being consulted for settings without one.
  const withFlags = envNamesRead(['--port', '1', '--host', '127.0.0.1'])
  for (const name of withFlags) t.ok(declaredEnv.has(name) || proxyVariables.has(name), `with flags, ${name} is declared`)
})

t.test('the defaults shown are the defaults loadConfig applies', async t => {
  const c = loadConfig([], {})
  const shown = (key: SettingKey): string => /`([^`]*)`/.exec(SETTING_BY_KEY[key].default)?.[1] ?? SETTING_BY_KEY[key].default
  const cases: Array<[SettingKey, unknown]> = [
    ['port', c.port],
    ['grpcPort', c.grpcPort],
    ['host', c.host],
    ['serverType', c.serverType],
    ['attestation', c.attestation],
    ['allowNonLoopback', c.allowNonLoopback],
    ['allowTestingMismatchedTcb', c.allowTestingMismatchedTcb],
    ['tsmRoot', c.tsmRoot],
    ['maaApiVersion', c.maa.apiVersion],
    ['maaVerifyToken', c.maa.verifyToken],
    ['akvApiVersion', c.akv.apiVersion],
    ['requestTimeoutMs', c.requestTimeoutMs],
    ['attestationTtlSeconds', c.performance.attestationTtlSeconds],
    ['keyPoolSize', c.performance.keyPoolSize],
    ['maxInFlight', c.performance.maxInFlight],
    ['maxEventLoopDelayMs', c.performance.maxEventLoopDelayMs],
    ['shutdownGraceMs', c.performance.shutdownGraceMs]
  ]
  for (const [key, value] of cases) t.equal(shown(key), String(value), `${key} default`)
  t.equal(shown('logLevel'), 'warning')
  t.equal(c.logLevel, 'warn', 'warning is pino warn')
  t.equal(SETTING_BY_KEY.maxRssBytes.default, '512 MiB')
  t.equal(c.performance.maxRssBytes, 512 * 1024 * 1024)
  t.equal(SETTING_BY_KEY.maxHeapUsedBytes.default, 'off')
  t.equal(c.performance.maxHeapUsedBytes, 0)
  const nulls: Array<[SettingKey, unknown]> = [
    ['sidecarArgs', c.azure.identity.clientId], ['unixSocket', c.unixSocket], ['extraCaFile', c.extraCaFile], ['uvmSecurityPolicy', c.env.uvmSecurityPolicy]
  ]
  for (const [key, value] of nulls) {
    t.equal(SETTING_BY_KEY[key].default, '–', `${key} has no default`)
    t.equal(value, null)
  }
  t.equal(SETTING_BY_KEY.releaseEnc.default, 'omitted')
  t.equal((c as Config).akv.enc, null)
})

t.test('the table: a header, then one row of four cells per setting, pipes escaped', async t => {
  const table = renderSettingsTable()
  const lines = table.trimEnd().split('\n')
  t.equal(lines[0], '| flag | environment | default | meaning |')
  t.equal(lines[1], '| --- | --- | --- | --- |')
  t.equal(lines.length, SETTINGS.length + 2)
  for (const line of lines) t.equal(line.replace(/\\\|/g, '').split('|').length, 6, `four cells: ${line.slice(0, 60)}`)
  t.match(table, '| `-port` | `Port` | `8080` | TCP port |')
  t.match(table, '| `-server_type`, `--server-type` | `ServerType` |', 'Go-style reference flags, then their aliases')
  t.match(table, '| | `SKR_TSM_ROOT` |', 'no flag: an empty first cell')
  t.match(table, '"AMD"\\|"AzCache"\\|"LocalTHIM"', 'pipes inside a cell are escaped')
  const custom = renderSettingsTable([{ key: 'x', flag: 'x-y', env: 'X_Y', default: 'a|b', description: 'one\ntwo' }])
  t.equal(custom.split('\n')[2], '| `--x-y` | `X_Y` | a\\|b | one two |')
})

t.test('replaceSettingsBlock replaces only what is between the markers', async t => {
  const doc = `# t\n\nbefore\n\n${SETTINGS_BEGIN}\nold\n${SETTINGS_END}\n\nafter\n`
  const out = replaceSettingsBlock(doc, '| a |\n')
  t.equal(out, `# t\n\nbefore\n\n${SETTINGS_BEGIN}\n\n| a |\n\n${SETTINGS_END}\n\nafter\n`)
  t.equal(replaceSettingsBlock(out, '| a |\n'), out, 'idempotent')
  t.throws(() => replaceSettingsBlock('# no markers\n'), /no <!-- settings:begin -->/)
  t.throws(() => replaceSettingsBlock(`${SETTINGS_END}\n${SETTINGS_BEGIN}\n`), /no <!-- settings:begin -->/)
})

t.test('README.md carries the generated table (run scripts/gen-config-doc.mjs)', async t => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8')
  t.equal(readme.split(SETTINGS_BEGIN).length, 2, 'one begin marker')
  t.equal(readme.split(SETTINGS_END).length, 2, 'one end marker')
  t.equal(readme, replaceSettingsBlock(readme, renderSettingsTable()), 'README.md is stale: node scripts/node24.mjs scripts/gen-config-doc.mjs')
  const section = readme.slice(readme.indexOf('## Configuration'), readme.indexOf(SETTINGS_BEGIN))
  t.match(section, /Flags win over environment variables/, 'the prose before the table is kept')
  t.match(readme.slice(readme.indexOf(SETTINGS_END)), /^<!-- settings:end -->\n\nThe UVM security context is read from/, 'the prose after the table is kept')
})
