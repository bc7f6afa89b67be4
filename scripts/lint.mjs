#!/usr/bin/env node
// `npm run lint`: eslint over TS/JS, the TypeScript type check, the OpenAPI document under
// redocly's recommended ruleset (scripts/lint-openapi.mjs, offline), and the C sources of the
// test shim compiled with warnings as errors (the addon itself builds with -Werror), and the
// allowed import directions of src/ (.dependency-cruiser.cjs, docs/architecture.md).
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'

const steps = [
  ['eslint', ['node_modules/.bin/eslint', '--max-warnings=0', '.']],
  ['tsc', ['node_modules/.bin/tsc', '--noEmit', '-p', 'tsconfig.json']],
  ['openapi', ['scripts/lint-openapi.mjs']],
  ['layers', ['node_modules/.bin/depcruise', 'src', '--config', '.dependency-cruiser.cjs', '--output-type', 'err']],
  ['folder cycles', ['scripts/check-folder-cycles.mjs']]
]
let failed = 0
for (const [name, [bin, ...args]] of steps) {
  const r = spawnSync(process.execPath, [bin, ...args], { stdio: 'inherit' })
  if (r.status !== 0) { failed++; console.error(`lint: ${name} failed`) }
}
if (existsSync('test/shim/sev_guest_shim.c')) {
  const r = spawnSync('cc', ['-fsyntax-only', '-Wall', '-Wextra', '-Werror', 'test/shim/sev_guest_shim.c'], { stdio: 'inherit' })
  if (r.error) console.warn('lint: cc not found; skipping the C shim check')
  else if (r.status !== 0) { failed++; console.error('lint: C shim check failed') }
}
process.exit(failed === 0 ? 0 : 1)
