#!/usr/bin/env node
// Writes docs/api.md from the OpenAPI document the server generates from its route schemas.
// `--check` writes nothing and exits 1 when docs/api.md is stale (test/unit/server/openapi.test.ts
// runs the same comparison). Run under Node 24 so the TypeScript sources load directly:
//   node scripts/node24.mjs scripts/gen-api-doc.mjs [--check]
import { readFile, writeFile } from 'node:fs/promises'
import { buildApiDocument, renderApiMarkdown } from '../src/server/api-doc.ts'

const target = new URL('../docs/api.md', import.meta.url)
const markdown = renderApiMarkdown(await buildApiDocument())

if (process.argv.includes('--check')) {
  const current = await readFile(target, 'utf8').catch(() => '')
  if (current !== markdown) {
    process.stderr.write('docs/api.md is stale: run node scripts/node24.mjs scripts/gen-api-doc.mjs\n')
    process.exit(1)
  }
} else {
  await writeFile(target, markdown)
  process.stdout.write(`wrote docs/api.md (${markdown.length} bytes)\n`)
}
