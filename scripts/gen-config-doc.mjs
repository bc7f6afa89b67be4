#!/usr/bin/env node
// Rewrites the configuration table in README.md (between <!-- settings:begin --> and
// <!-- settings:end -->) from src/config/settings.ts, the one list of skr's flags and environment
// variables. `--check` writes nothing and exits 1 when README.md is stale
// (test/unit/config/settings.test.ts runs the same comparison). Run under Node 24 so the
// TypeScript sources load directly:
//   node scripts/node24.mjs scripts/gen-config-doc.mjs [--check]
import { readFile, writeFile } from 'node:fs/promises'
import { renderSettingsTable, replaceSettingsBlock } from '../src/config/settings-table.ts'

const target = new URL('../README.md', import.meta.url)
const current = await readFile(target, 'utf8')
let updated
try {
  updated = replaceSettingsBlock(current, renderSettingsTable())
} catch (err) {
  process.stderr.write(`gen-config-doc: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(2)
}

if (process.argv.includes('--check')) {
  if (current !== updated) {
    process.stderr.write('README.md configuration table is stale: run node scripts/node24.mjs scripts/gen-config-doc.mjs\n')
    process.exit(1)
  }
} else if (current === updated) {
  process.stdout.write('README.md configuration table is up to date\n')
} else {
  await writeFile(target, updated)
  process.stdout.write('rewrote the configuration table in README.md\n')
}
