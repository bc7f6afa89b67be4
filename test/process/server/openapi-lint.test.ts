// The OpenAPI document passes @redocly/cli's `recommended` ruleset with no problem at all
// (scripts/lint-openapi.mjs, also run by `npm run lint`), without the network, and the lint
// really fails a document with the faults the ruleset is there to catch. Every case runs redocly
// in a child process (lintOpenApi spawns it), hence test/process/.
import t from 'tap'
import { existsSync } from 'node:fs'
import { buildApiDocument } from '../../../src/server/api-doc.ts'
import { runChild } from '../../helpers/child-process.ts'
import { repoRoot } from '../../helpers/vectors.ts'

interface Report {
  version?: string
  totals: { errors: number, warnings: number }
  problems: Array<{ ruleId: string, severity: string, message: string }>
}
interface LintModule {
  REDOCLY_CLI: string
  lintOpenApi: (doc: unknown) => Report
}

// Loaded by URL: it is a plain .mjs script, which the type checker need not follow.
const scriptUrl: string = new URL('../../../scripts/lint-openapi.mjs', import.meta.url).href
const { REDOCLY_CLI, lintOpenApi } = await import(scriptUrl) as LintModule
const skip = existsSync(REDOCLY_CLI) ? false : 'SKIPPED: @redocly/cli is not installed (npm install installs the devDependency)'

t.test('the document passes redocly\'s recommended ruleset: no errors, no warnings', { skip }, async t => {
  const report = lintOpenApi(await buildApiDocument())
  t.same(report.problems.map(p => `${p.severity} ${p.ruleId}: ${p.message}`), [])
  t.same(report.totals, { errors: 0, warnings: 0, ignored: 0 })
})

t.test('the lint catches what the ruleset is for', { skip }, async t => {
  const doc = await buildApiDocument() as unknown as { servers?: unknown, info: { license?: unknown }, paths: Record<string, Record<string, { operationId?: string }>> }
  delete doc.servers
  delete doc.info.license
  const release = doc.paths['/key/release']?.post
  if (release !== undefined) delete release.operationId
  const rules = new Set(lintOpenApi(doc).problems.map(p => p.ruleId))
  for (const rule of ['no-empty-servers', 'info-license', 'operation-operationId']) t.ok(rules.has(rule), `${rule} is reported`)
})

// `unshare -n` runs the lint in a network namespace with no interface but loopback: proof that
// nothing (telemetry, update check, remote rules) needs the network. Needs the privilege to create one.
const unshare = await runChild(t, 'unshare', ['-n', 'true'])
const offline = unshare.error === undefined && unshare.status === 0

t.test('npm run lint\'s step runs with no network at all', {
  skip: skip !== false ? skip : offline ? false : 'SKIPPED: cannot create a network namespace here (unshare -n needs CAP_SYS_ADMIN); the offline run is not checked'
}, async t => {
  const r = await runChild(t, 'unshare', ['-n', process.execPath, 'scripts/lint-openapi.mjs'], { cwd: repoRoot })
  t.equal(r.status, 0, `${r.stdout}${r.stderr}`)
  t.match(r.stdout, /passes redocly .* recommended \(0 problems\)/)
})
