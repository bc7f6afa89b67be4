#!/usr/bin/env node
// The OpenAPI document skr serves (GET /openapi.json, built from the route schemas) under
// @redocly/cli's `recommended` ruleset: `npm run lint` runs it (scripts/lint.mjs), and
// test/unit/server/openapi-lint.test.ts calls lintOpenApi. Any problem, warning or error, fails.
//
// Offline by construction: the ruleset is built into the CLI (no remote `extends`), the document
// has no external $ref, and the CLI's two network calls are turned off by its environment
// variables: usage telemetry (REDOCLY_TELEMETRY=off) and the npm "new version" check
// (REDOCLY_SUPPRESS_UPDATE_NOTICE=true). It runs in a scratch directory, so no redocly.yaml of the
// checkout (or its parents) can add rules or plugins. Run under Node 24 (the sources load as TypeScript):
//   node scripts/node24.mjs scripts/lint-openapi.mjs
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildApiDocument } from '../src/server/api-doc.ts'

/** Where the CLI is (a devDependency). */
export const REDOCLY_CLI = fileURLToPath(new URL('../node_modules/@redocly/cli/bin/cli.js', import.meta.url))

/**
 * Lints `doc` under redocly's recommended ruleset, offline.
 * @returns the CLI's JSON report: { totals: { errors, warnings }, problems: [{ ruleId, severity, message, location }] }
 */
export function lintOpenApi (doc) {
  const dir = mkdtempSync(join(tmpdir(), 'skr-openapi-'))
  try {
    const file = join(dir, 'openapi.json')
    writeFileSync(file, JSON.stringify(doc, null, 2))
    const r = spawnSync(process.execPath, [REDOCLY_CLI, 'lint', '--extends', 'recommended', '--format', 'json', '--max-problems', '1000', file], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' }
    })
    try {
      return JSON.parse(r.stdout)
    } catch {
      throw new Error(`@redocly/cli did not report (exit ${String(r.status)}): ${r.stderr}${r.stdout}`)
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

if (import.meta.main) {
  if (!existsSync(REDOCLY_CLI)) {
    console.error('lint-openapi: @redocly/cli is not installed (npm install)')
    process.exit(1)
  }
  const report = lintOpenApi(await buildApiDocument())
  for (const p of report.problems ?? []) {
    const where = p.location?.[0]?.pointer ?? ''
    console.error(`openapi: ${p.severity} ${p.ruleId}: ${p.message}${where === '' ? '' : ` (${where})`}`)
  }
  const { errors = 0, warnings = 0 } = report.totals ?? {}
  if (errors + warnings > 0) {
    console.error(`lint-openapi: ${errors} error(s) and ${warnings} warning(s) under redocly's recommended ruleset`)
    process.exit(1)
  }
  console.log(`lint-openapi: the OpenAPI document passes redocly ${report.version ?? ''} recommended (0 problems)`)
}
