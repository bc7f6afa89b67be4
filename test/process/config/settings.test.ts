// scripts/gen-config-doc.mjs --check, as a person or CI runs it: it agrees that the README's
// configuration table is rendered from config/settings.ts (the in-process checks of the table:
// test/unit/config/settings.test.ts).
import t from 'tap'
import { join } from 'node:path'
import { runChild } from '../../helpers/child-process.ts'
import { repoRoot } from '../../helpers/vectors.ts'

t.test('gen-config-doc.mjs --check agrees', async t => {
  const r = await runChild(t, process.execPath, [join(repoRoot, 'scripts/gen-config-doc.mjs'), '--check'])
  t.equal(r.status, 0, r.stderr)
})
